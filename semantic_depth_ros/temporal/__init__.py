"""Temporal fusion of a camera's depth over frames (ROS-free, on the estimator's device).

:mod:`.settings` (``TemporalSettings``, the node parameters), :mod:`.odometry` (camera poses from odometry and
``camera_extrinsic``), :mod:`.warp` (forward warping of depth between views), :mod:`.filter` (``TemporalFilter``)
and :mod:`.stage` (``TemporalStage``, the filter behind ``pipeline.stages.FrameStage``).
"""

from .filter import TemporalFilter
from .odometry import CameraPoses, OdometryBuffer, parse_camera_extrinsic, world_from_camera
from .settings import FIELD_DOCS, MODE_CHOICES, MOVING_LABELS, TEMPORAL_MODES, TemporalSettings, temporal_mode
from .stage import TemporalStage
from .warp import WarpResult, forward_warp, project_depth

__all__ = [
    "FIELD_DOCS", "MODE_CHOICES", "MOVING_LABELS", "TEMPORAL_MODES", "CameraPoses", "OdometryBuffer", "TemporalFilter",
    "TemporalSettings", "TemporalStage", "WarpResult", "forward_warp", "parse_camera_extrinsic", "project_depth",
    "temporal_mode", "world_from_camera",
]

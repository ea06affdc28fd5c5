"""Metric scale from the road: the camera's known height over the plane fitted to the pixels labelled road.

:mod:`.plane` fits the plane, :mod:`.estimator` holds the settings and per-camera state (acceptance, smoothing,
holding, diagnostics) and :mod:`.stage` wraps it as a ``pipeline.stages.FrameStage`` for the node and ``infer-bag``.
"""

from semantic_depth_ros.roadscale.estimator import (ACCEPTED, REJECT_REASONS, SCALE_FROM_ROAD_MODES, SETTING_NAMES,
                                                    RoadMeasurement, RoadScale, RoadScaleSettings,
                                                    road_scale_settings)
from semantic_depth_ros.roadscale.plane import PlaneFit, fit_plane
from semantic_depth_ros.roadscale.stage import RoadScaleStage

__all__ = [
    "ACCEPTED", "REJECT_REASONS", "SCALE_FROM_ROAD_MODES", "SETTING_NAMES", "PlaneFit", "RoadMeasurement",
    "RoadScale", "RoadScaleSettings", "RoadScaleStage", "fit_plane", "road_scale_settings",
]

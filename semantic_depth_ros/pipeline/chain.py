"""The one order of the per-camera stages after the estimator, so the node and ``infer-bag`` build the same chain."""

from __future__ import annotations

from ..roadscale import RoadScaleSettings, RoadScaleStage
from .stages import FrameStage


def frame_stages(road_scale: RoadScaleSettings | None) -> list[FrameStage]:
    """A new chain of stages for one camera (each camera keeps its own state): the road scale when given."""
    return [] if road_scale is None else [RoadScaleStage(road_scale)]

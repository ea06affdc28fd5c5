"""The one order of the per-camera stages after the estimator, so the node and ``infer-bag`` build the same chain."""

from __future__ import annotations

from ..roadscale import RoadScaleSettings, RoadScaleStage
from ..temporal import TemporalSettings, TemporalStage
from .stages import FrameStage


def frame_stages(road_scale: RoadScaleSettings | None, temporal: TemporalSettings | None = None) -> list[FrameStage]:
    """A new chain of stages for one camera (each camera keeps its own state): the road scale when given, then
    the temporal filter when given (it fuses depth already at the road's scale; ``temporal_filter: off`` passes
    frames through, so the node can switch it on at run time)."""
    stages: list[FrameStage] = [] if road_scale is None else [RoadScaleStage(road_scale)]
    if temporal is not None:
        stages.append(TemporalStage(temporal))
    return stages

"""``RoadScaleStage``: scale from the road as a per-camera :class:`~semantic_depth_ros.pipeline.stages.FrameStage`.

It reads depth and semantic, multiplies depth by the camera's current road scale and leaves everything else as
it is: points follow because they are back-projected from the scaled depth afterwards, and the intrinsics (hence
``depth/camera_info``) do not change with a depth scale. NaN stays NaN. The estimator's depth range was applied
before the stage, so a scaled depth may lie outside ``min_depth``..``max_depth``.
"""

from __future__ import annotations

import dataclasses

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.inference.estimator import EstimatorOutputs
from semantic_depth_ros.pipeline.stages import FrameContext
from semantic_depth_ros.roadscale.estimator import RoadScale, RoadScaleSettings


class RoadScaleStage:
    """Per-camera metric scale from the road (see :mod:`semantic_depth_ros.roadscale.estimator`)."""

    name = "road_scale"
    needs: tuple[str, ...] = ("depth", "semantic")
    enabled = True  # the chain has this stage only when scale_from_road is on

    def __init__(self, settings: RoadScaleSettings) -> None:
        self.road = RoadScale(settings)

    @property
    def scale(self) -> float:
        """The scale applied to the last frame (1 before the first accepted frame)."""
        return self.road.scale

    def process(self, outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
        """``outputs`` with depth multiplied by the scale (the same object when the scale is exactly 1)."""
        if outputs.depth is None or outputs.semantic is None:
            missing = "depth" if outputs.depth is None else "semantic"
            raise InvalidInputError(f"scale from the road needs the {missing} output of every frame")
        scale = self.road.update(outputs.depth, outputs.semantic, outputs.intrinsics)
        if scale == 1.0:
            return outputs
        return dataclasses.replace(outputs, depth=outputs.depth * scale)

    def reset(self) -> None:
        self.road.reset()

    def diagnostics(self) -> dict[str, str]:
        return self.road.diagnostics()

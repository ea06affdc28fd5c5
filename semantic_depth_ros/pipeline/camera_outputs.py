"""One camera's path from the estimator's outputs to message fields, the same for the live node and bag replay.

Per frame: ``EstimatorOutputs`` -> the camera's stages in order (``FrameContext`` with the header stamp), at the
network's resolution when the camera's image is larger (``defers_upsampling``: the estimator stops there) -> one
upsampling to the output size of only what the plan's outputs need (``EstimatorOutputs.at_output_size``) -> the
plan's output tensors on the estimator's device (the cloud through this camera's ray grids, the colour maps) ->
the host (``HostStaging``: one copy each) -> message fields (``messages.frame_fields``). The node keeps one
:class:`CameraOutputs` per camera channel, ``infer-bag`` one per image topic; both publish exactly the fields it
returns, so replay equals the live node byte for byte. Not thread-safe: one worker thread per camera's frames.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..geometry.pointcloud import RayGrids, backproject_organised, cached_rays, ray_grids
from ..inference.colorize import colorize_depth, colorize_semantic
from ..inference.estimator import EstimatorOutputs
from ..messages import OutputFields, frame_fields
from .plan import OutputPlan
from .staging import HostStaging
from .stages import FrameContext, FrameStage


@dataclass(frozen=True)
class FrameMessages:
    """The message fields of one frame by output key (``OUTPUT_TOPICS`` order) and, when the plan publishes depth
    or asks for ``host_depth``, the HxW float32 host depth they were made from (metres, NaN = invalid).

    ``seconds``: how long each part took, by timing key: each enabled stage by its ``name``, then ``outputs``
    (the output tensors, their copy to the host and the message fields).
    """

    fields: dict[str, OutputFields]
    depth: np.ndarray | None
    seconds: dict[str, float] = field(default_factory=dict)


class CameraOutputs:
    """Message fields of one camera's frames under ``plan``, after ``stages`` (run in order on every frame).

    Owns the camera's ray-grid cache, its host staging and its stages' state; ``replan`` changes the plan (the
    caches stay). ``plan.estimator_outputs()`` includes what the stages need now (a stage switched off at run
    time needs nothing).
    """

    def __init__(self, plan: OutputPlan, stages: Sequence[FrameStage] = ()) -> None:
        self._stages = tuple(stages)
        self._rays = ray_grids()
        self._staging = HostStaging()
        self._base_plan = plan

    @property
    def stages(self) -> tuple[FrameStage, ...]:
        """The camera's stages, in the order they run."""
        return self._stages

    @property
    def plan(self) -> OutputPlan:
        """The plan in use, the stages' needs included."""
        return self._base_plan.with_needs([name for stage in self._stages for name in stage.needs])

    def replan(self, plan: OutputPlan) -> None:
        """Use ``plan`` from the next frame on (dynamic parameters, the outputs subscribed now)."""
        self._base_plan = plan

    def estimator_outputs(self, has_intrinsics: bool) -> tuple[str, ...]:
        """What to ask the estimator for a frame of this camera with or without intrinsics."""
        return self.plan.servable(has_intrinsics).estimator_outputs()

    @property
    def defers_upsampling(self) -> bool:
        """Whether to ask the estimator to stop at the network's resolution (``estimate_batch(defer=...)``): while
        a stage works on frames, it then runs on the network's pixels and the outputs are upsampled after it."""
        return any(stage.enabled for stage in self._stages)

    def messages(self, outputs: EstimatorOutputs, stamp_ns: int, *, depth_range: tuple[float, float],
                 pose: np.ndarray | None = None, staging: HostStaging | None = None) -> FrameMessages:
        """The fields of one frame: ``outputs`` (as ``estimator_outputs`` asked) through the stages, then the plan.

        ``stamp_ns``: the image header's stamp; ``depth_range``: (min, max) metres of the depth colour map (the
        estimator's ``depth_range()``); ``pose``: 4x4 ``world_from_camera`` at the stamp (metres) or None;
        ``staging``: where the host arrays live until the fields are consumed (default: this camera's, valid
        until its next frame; replay passes one per frame in flight).
        Without ``outputs.intrinsics`` the outputs that need them are left out.
        """
        context = FrameContext(stamp_ns=stamp_ns, pose=pose)
        seconds: dict[str, float] = {}
        device = outputs.depth.device if outputs.depth is not None else None
        for stage in self._stages:
            if not stage.enabled:
                outputs = stage.process(outputs, context)
                continue
            start = time.perf_counter()
            outputs = stage.process(outputs, context)
            _finish(device)
            seconds[stage.name] = time.perf_counter() - start
        start = time.perf_counter()
        plan = self._base_plan.servable(outputs.intrinsics is not None)
        outputs = outputs.at_output_size(plan.estimator_outputs())
        tensors = _output_tensors(plan, outputs, depth_range, self._rays)
        host = (staging or self._staging).fetch(tensors)
        depth = host.get("depth") if plan.host_depth or "depth" in plan.outputs else None
        fields = frame_fields(plan.outputs, host, outputs.intrinsics)
        seconds["outputs"] = time.perf_counter() - start
        return FrameMessages(fields, depth, seconds)

    def cache_sizes(self) -> dict[str, int]:
        """Entries in this camera's caches now (``rays`` <= ``geometry.pointcloud.RAY_GRID_CACHE_SIZE``)."""
        return {"rays": len(self._rays)}

    def reset(self) -> None:
        """Reset every stage (lifecycle deactivate and cleanup, a new replay)."""
        for stage in self._stages:
            stage.reset()

    def diagnostics(self) -> dict[str, str]:
        """The stages' diagnostic key/values, merged in stage order."""
        merged: dict[str, str] = {}
        for stage in self._stages:
            merged.update(stage.diagnostics())
        return merged


def _finish(device: torch.device | None) -> None:
    """Wait for the work queued on a CUDA ``device`` so that a stage's time is its work's, not its launch's."""
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


def _output_tensors(plan: OutputPlan, outputs: EstimatorOutputs, depth_range: tuple[float, float],
                    rays: RayGrids) -> dict[str, torch.Tensor]:
    """The plan's Image and cloud outputs (and, with ``host_depth``, the depth) as tensors on the estimator's
    device, each one packed buffer; ``points`` only with intrinsics, ``depth_info`` has none (``frame_fields``)."""
    wanted = plan.outputs
    depth = outputs.depth
    tensors: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        if "depth" in wanted or plan.host_depth:
            tensors["depth"] = depth
        if "points" in wanted and outputs.intrinsics is not None:
            cloud = plan.cloud
            grid = cached_rays(rays, outputs.intrinsics, cloud.stride, depth.device)
            tensors["points"] = backproject_organised(
                depth, grid, outputs.image, stride=cloud.stride, point_fields=cloud.fields, labels=outputs.semantic,
                confidence=outputs.confidence, drop_labels=cloud.drop_labels)
        if "semantic" in wanted:
            tensors["semantic"] = outputs.semantic
        if "semantic_color" in wanted:
            tensors["semantic_color"] = colorize_semantic(outputs.semantic)
        if "confidence" in wanted:
            tensors["confidence"] = outputs.confidence
        if "depth_color" in wanted:
            tensors["depth_color"] = colorize_depth(depth, *depth_range)
    return tensors

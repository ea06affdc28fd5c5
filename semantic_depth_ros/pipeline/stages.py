"""The seam for per-camera stages that run after ``DepthEstimator`` and before the message core.

A stage (temporal fusion, scale from the road) keeps per-camera state on the estimator's device and rewrites one
frame's ``EstimatorOutputs``. The node runs one chain of stages per camera channel, ``infer-bag`` one per image
topic; both feed frames in stamp order with the same context, so replay equals the live node byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..inference.estimator import EstimatorOutputs

# the parts of a frame's path that are timed for every frame (``/diagnostics`` ``<part>_ms_p50``, ``bench``): the
# input decoded and checked, the network (its batch), the output tensors to host fields, the messages published;
# a stage is timed by its ``FrameStage.name`` (``temporal``, ``road_scale``) while it works on frames
FRAME_PATH_PARTS: tuple[str, ...] = ("decode", "network", "outputs", "publish")


@dataclass(frozen=True)
class FrameContext:
    """What a stage knows about a frame besides its outputs.

    ``stamp_ns``: the image header's stamp (nanoseconds); ``pose``: 4x4 float64 ``world_from_camera`` (the image's
    optical frame in the odometry world frame, metres) at that stamp, or None when no pose is known.
    """

    stamp_ns: int
    pose: np.ndarray | None = None


class FrameStage(Protocol):
    """One per-camera stage. ``name``: its timing key in ``/diagnostics`` (``<name>_ms``); ``needs``: the estimator
    outputs it reads (``depth``, ``semantic``, ``confidence``); ``enabled``: whether it changes frames now (a stage
    switched off at run time passes them through and is not timed)."""

    name: str
    needs: tuple[str, ...]

    @property
    def enabled(self) -> bool:
        """Whether the stage works on frames now."""
        ...

    def process(self, outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
        """This frame's outputs after the stage (same sizes and device; NaN stays invalid)."""
        ...

    def reset(self) -> None:
        """Forget all state (lifecycle deactivate/cleanup, a new replay)."""
        ...

    def diagnostics(self) -> dict[str, str]:
        """Key/values for ``/diagnostics`` (strings, as DiagnosticStatus wants)."""
        ...

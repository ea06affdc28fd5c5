"""``EstimatorOutputs``: what ``DepthEstimator`` gives per image, and the one way from the network's resolution to
the output size (``at_output_size``) for outputs that stopped there for per-frame stages."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import torch

from ..geometry.intrinsics import Intrinsics
from .postprocess import ESTIMATOR_OUTPUTS, Upsampling, check_outputs, upsample_outputs


@dataclass
class EstimatorOutputs:
    """Outputs of one image, torch tensors on the estimator's device; None when not requested.

    With ``upsampling`` (``estimate_batch(..., defer=True)``) depth, semantic, confidence and intrinsics are at the
    network's resolution (for per-frame stages, which cost less there) and ``at_output_size`` takes them to the
    output size; ``image`` is always at the output size.
    """

    depth: torch.Tensor | None  # HxW float32 metres, NaN where invalid
    semantic: torch.Tensor | None  # HxW uint8 Cityscapes train ids
    confidence: torch.Tensor | None  # HxW float32 in [0, 1]
    intrinsics: Intrinsics | None  # pinhole intrinsics of these outputs (input K scaled to HxW, D = 0) or None
    image: torch.Tensor | None = None  # HxWx3 uint8 RGB input at the output size (point colours), uploaded once
    upsampling: Upsampling | None = None  # set while the maps are at the network's resolution

    def at_output_size(self, needed: Collection[str] = ESTIMATOR_OUTPUTS) -> "EstimatorOutputs":
        """These outputs at the output size, only those in ``needed`` (the others None); itself when already
        there. One upsampling, on the outputs' device (``postprocess.upsample_outputs``)."""
        if self.upsampling is None:
            return self
        wanted = check_outputs(needed)
        depth, semantic, confidence = upsample_outputs(
            self.upsampling, *(getattr(self, name) if name in wanted else None
                               for name in ("depth", "semantic", "confidence")))
        return EstimatorOutputs(depth, semantic, confidence, self.upsampling.intrinsics,
                                image=self.image if "image" in wanted else None)

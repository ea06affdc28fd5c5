"""Training losses: pure functions of network outputs and targets that return dicts of scalar tensors.

Every dict has ``loss`` (the weighted total to back-propagate) and one entry per term. Losses are computed in
float32 whatever the autocast precision. A batch without a single labelled pixel gives a zero loss that is still
connected to the graph (so the step is a no-op instead of NaN); no host synchronisation is needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..labels import IGNORE_LABEL
from ..model.bins import IGNORE_INDEX, DepthBins
from .config import LossConfig

SEMANTIC_IGNORE = IGNORE_LABEL


def depth_classification_loss(logits: torch.Tensor, depth: torch.Tensor, bins: DepthBins,
                              sigma: float = 0.0) -> torch.Tensor:
    """Cross-entropy over depth bins on valid pixels: logits BxKxHxW, depth Bx1xHxW metres (0 = invalid).

    ``sigma`` = 0: hard targets (the bin holding the depth). ``sigma`` > 0 (in bins): soft targets, a Gaussian
    over bin indices centred on the depth's continuous position in the log-spaced bins (the information-gain
    weighting of Cao et al. 2017), which rewards near-miss bins and keeps the expected depth unbiased.
    """
    depth = sample_at(depth, logits.shape[-2:])
    target = bins.depth_to_index(depth[:, 0])
    valid = target != IGNORE_INDEX
    if sigma <= 0:
        total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
        return total / valid.sum().clamp_min(1)
    position = soft_bin_position(depth[:, 0], bins)
    index = torch.arange(bins.num_bins, device=logits.device, dtype=torch.float32).view(1, -1, 1, 1)
    weights = torch.softmax(-((index - position.unsqueeze(1)) ** 2) / (2.0 * sigma**2), dim=1)
    per_pixel = -(weights * torch.log_softmax(logits.float(), dim=1)).sum(dim=1)
    return torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum() / valid.sum().clamp_min(1)


def sample_at(depth: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """Depth Bx1xHxW at ``size`` (the logits' stride) by nearest sampling: no averaging across a depth edge."""
    if depth.shape[-2:] == size:
        return depth
    return F.interpolate(depth, size=tuple(size), mode="nearest")


def depth_gradient_loss(pred: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
    """Mean |grad ln(pred) - grad ln(depth)| over horizontal and vertical neighbour pairs that both have depth:
    pred, depth Bx1xHxW metres (0 = invalid). Scale-invariant, and zero only where the predicted depth edges
    have the true edges' place and height: the term that sharpens objects beyond what L1 alone asks."""
    valid = torch.isfinite(depth) & (depth > 0)
    residual = torch.log(pred.float().clamp_min(1e-3)) - torch.log(torch.where(valid, depth, torch.ones_like(depth)))
    total = torch.zeros((), device=depth.device)
    count = torch.zeros((), device=depth.device)
    for axis in (-1, -2):
        both = valid.narrow(axis, 1, valid.shape[axis] - 1) & valid.narrow(axis, 0, valid.shape[axis] - 1)
        step = residual.diff(dim=axis).abs()
        total = total + torch.where(both, step, torch.zeros_like(step)).sum()
        count = count + both.sum()
    return total / count.clamp_min(1)


def soft_bin_position(depth: torch.Tensor, bins: DepthBins) -> torch.Tensor:
    """Continuous bin coordinate of each depth (bin k's centre is k), clamped to [0, K-1]; invalid -> 0."""
    valid = torch.isfinite(depth) & (depth > 0)
    safe = torch.where(valid, depth, torch.ones_like(depth)).float()
    log_min = float(bins.log_centers[0])
    log_step = float(bins.log_centers[1] - bins.log_centers[0])
    position = (torch.log(safe) - log_min) / log_step
    return torch.where(valid, position.clamp(0, bins.num_bins - 1), torch.zeros_like(position))


def semantic_loss(logits: torch.Tensor, labels: torch.Tensor, balance: float = 0.0) -> torch.Tensor:
    """Cross-entropy over classes, ignoring label 255: logits BxCxHxW, labels BxHxW int64.

    ``balance`` p > 0 weighs each pixel by its class's share of the batch's labelled pixels to the power -p,
    normalised so the weights average 1 over those pixels (p = 0: the plain mean).
    """
    labels = labels.long()
    labelled = labels != SEMANTIC_IGNORE
    if balance <= 0:
        total = F.cross_entropy(logits.float(), labels, ignore_index=SEMANTIC_IGNORE, reduction="sum")
        return total / labelled.sum().clamp_min(1)
    counts = torch.bincount(labels[labelled], minlength=logits.shape[1]).float()
    share = counts / counts.sum().clamp_min(1)
    class_weight = torch.where(counts > 0, share.clamp_min(1e-12).pow(-balance), torch.zeros_like(share))
    per_pixel = F.cross_entropy(logits.float(), labels, ignore_index=SEMANTIC_IGNORE, reduction="none")
    pixel_weight = class_weight[labels.clamp(0, logits.shape[1] - 1)] * labelled
    return (per_pixel * pixel_weight).sum() / pixel_weight.sum().clamp_min(1e-12)


def depth_l1_loss(pred: torch.Tensor, depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Mean absolute error (metres) on valid pixels: pred, depth Bx1xHxW; targets clamped to the model's range."""
    return _mean_depth_error(pred, depth, min_depth, max_depth, relative=False)


def depth_relative_loss(pred: torch.Tensor, depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """Mean relative error |pred - depth| / depth on valid pixels (the Eigen abs rel as a loss): pred, depth
    Bx1xHxW metres, targets clamped to the model's range. Metric L1 weighs a pixel by its distance, so a car at
    7 m counts a tenth of a facade at 70 m; this term weighs them alike, as abs rel does."""
    return _mean_depth_error(pred, depth, min_depth, max_depth, relative=True)


def _mean_depth_error(pred: torch.Tensor, depth: torch.Tensor, min_depth: float, max_depth: float, *,
                      relative: bool) -> torch.Tensor:
    """Mean |pred - target| (metres), or that over the target, on the pixels with depth (finite, > 0)."""
    valid = torch.isfinite(depth) & (depth > 0)
    target = torch.where(valid, depth, torch.ones_like(depth)).clamp(min_depth, max_depth)
    error = (pred.float() - target).abs()
    if relative:
        error = error / target
    return torch.where(valid, error, torch.zeros_like(error)).sum() / valid.sum().clamp_min(1)


def depth_losses(outputs: dict[str, torch.Tensor], depth: torch.Tensor, bins: DepthBins, phase: int,
                 weights: LossConfig) -> dict[str, torch.Tensor]:
    """Loss of a depth batch. Phase 1: DC cross-entropy. Phase 2: DRN L1 (+ optional relative error, gradient
    and DC cross-entropy terms)."""
    if phase == 1:
        ce = depth_classification_loss(outputs["depth_logits"], depth, bins, weights.depth_label_sigma)
        return {"loss": weights.depth_ce * ce, "depth_ce": ce.detach()}
    terms: dict[str, torch.Tensor] = {}
    total = torch.zeros((), device=depth.device)
    if weights.depth_l1 > 0:
        l1 = depth_l1_loss(outputs["depth"], depth, bins.min_depth, bins.max_depth)
        total = total + weights.depth_l1 * l1
        terms["depth_l1"] = l1.detach()
    if weights.depth_relative > 0:
        relative = depth_relative_loss(outputs["depth"], depth, bins.min_depth, bins.max_depth)
        total = total + weights.depth_relative * relative
        terms["depth_relative"] = relative.detach()
    if weights.depth_gradient > 0:
        gradient = depth_gradient_loss(outputs["depth"], depth)
        total = total + weights.depth_gradient * gradient
        terms["depth_gradient"] = gradient.detach()
    if weights.phase2_depth_ce > 0:
        ce = depth_classification_loss(outputs["depth_logits"], depth, bins, weights.depth_label_sigma)
        total = total + weights.phase2_depth_ce * ce
        terms["depth_ce"] = ce.detach()
    return {"loss": total, **terms}


def semantic_losses(outputs: dict[str, torch.Tensor], labels: torch.Tensor, weights: LossConfig
                    ) -> dict[str, torch.Tensor]:
    """Loss of a semantic batch (either phase): SC cross-entropy."""
    ce = semantic_loss(outputs["semantic_logits"], labels, weights.semantic_balance)
    return {"loss": weights.semantic_ce * ce, "semantic_ce": ce.detach()}

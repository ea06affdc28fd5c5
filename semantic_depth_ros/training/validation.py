"""Validation during training with the evaluation metrics (``evaluation.metrics``, the same numbers as evaluate).

Depth datasets: the network's canonical depth (DRN when the model has it, else the DC expected depth) is turned
into metric depth for each sample's camera, ``depth = pred * fx / focal_px``, and scored with the Eigen metrics
(per-image means). Semantic datasets: the argmax labels give a confusion matrix, mIoU and pixel accuracy.
Under torchrun each rank scores its share and the accumulators are merged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from ..evaluation.metrics import DepthMetricAccumulator, SemanticConfusion
from ..model.network import SemanticDepthNet
from .datasets import ValidationSet
from .distributed import DistContext, gather, shard


def predict_metric_depth(model: SemanticDepthNet, images: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
    """Metric depth Bx1xHxW (metres) for images Bx3xHxW whose cameras have focal ``fx`` (B,) px at this size."""
    use_drn = model.config.use_drn
    outputs = model(images, heads=("drn",) if use_drn else ("dc",))
    canonical = outputs["depth"] if use_drn else outputs["dc_depth"]
    return canonical.float() * (fx.to(canonical.device, torch.float32) / model.config.focal_px).view(-1, 1, 1, 1)


@torch.no_grad()
def validate(model: SemanticDepthNet, sets: Sequence[ValidationSet], *, device: torch.device,
             autocast: Callable[[], AbstractContextManager[Any]], batch_size: int, crop: str, min_depth: float,
             max_depth: float, ctx: DistContext, num_workers: int = 0) -> dict[str, float]:
    """Metrics per set (``<name>/<metric>``) and overall (``abs_rel``..``a3`` over all depth sets' images,
    ``miou``/``pixel_accuracy`` over all semantic sets' pixels). Leaves the model in eval mode."""
    model.eval()
    results: dict[str, float] = {}
    all_depth = DepthMetricAccumulator(min_depth=min_depth, max_depth=max_depth, crop=crop)
    all_semantic = SemanticConfusion(model.config.num_classes)
    for entry in sets:
        loader = DataLoader(Subset(entry.dataset, shard(len(entry.dataset), ctx)), batch_size=batch_size,
                            num_workers=num_workers)
        if entry.task == "depth":
            local: Any = DepthMetricAccumulator(min_depth=min_depth, max_depth=max_depth, crop=crop)
        else:
            local = SemanticConfusion(model.config.num_classes)
        for batch in loader:
            images = batch["image"].to(device)
            with autocast():
                if entry.task == "depth":
                    local.add(predict_metric_depth(model, images, batch["fx"]), batch["depth"])
                else:
                    labels = model(images, heads=("sc",))["semantic_logits"].argmax(dim=1)
                    local.add(labels.cpu(), batch["semantic"])
        merged = _merge(gather(local, ctx))
        results.update(_summary(entry.name, merged))
        (all_depth if entry.task == "depth" else all_semantic).merge(merged)
    if all_depth.count:
        results.update({k: v for k, v in all_depth.result().items() if k != "count"})
    if all_semantic.matrix.sum():
        results.update(miou=all_semantic.miou(), pixel_accuracy=all_semantic.pixel_accuracy())
    return results


def _merge(parts: list[Any]) -> Any:
    first = parts[0]
    for other in parts[1:]:
        first.merge(other)
    return first


def _summary(name: str, accumulator: Any) -> dict[str, float]:
    if isinstance(accumulator, DepthMetricAccumulator):
        return {f"{name}/{k}": float(v) for k, v in accumulator.result().items()}
    return {f"{name}/miou": accumulator.miou(), f"{name}/pixel_accuracy": accumulator.pixel_accuracy()}


@torch.no_grad()
def preview(model: SemanticDepthNet, sets: Sequence[ValidationSet], count: int, device: torch.device
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """First ``count`` images of the first validation set with their metric depth and labels, or None."""
    if count <= 0 or not sets or len(sets[0].dataset) == 0:
        return None
    dataset = sets[0].dataset
    batch = next(iter(DataLoader(Subset(dataset, range(min(count, len(dataset)))), batch_size=count)))
    images = batch["image"].to(device)
    model.eval()
    depth = predict_metric_depth(model, images, batch["fx"])
    labels = model(images, heads=("sc",))["semantic_logits"].argmax(dim=1)
    return images, depth, labels

"""One optimiser step of the conditional flow: the batch's task picks the heads that run and get gradients.

A depth batch runs the trunk and the DC head (phase 1) or the DC and DRN heads (phase 2); a semantic batch the trunk
and the SC head. The head that did not run has no gradient (``zero_grad(set_to_none=True)``), and AdamW skips
parameters without gradient, so its weights, optimiser moments and batch-norm statistics stay bit-identical.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..model.bins import DepthBins
from .config import LossConfig
from .losses import depth_losses, semantic_losses


def heads_for(task: str, phase: int) -> tuple[str, ...]:
    """Heads a batch of ``task`` runs: semantic -> SC; depth -> DC (phase 1) or DRN (phase 2, implies DC)."""
    if task == "semantic":
        return ("sc",)
    return ("dc",) if phase == 1 else ("drn",)



@dataclass
class StepParts:
    """Everything one optimiser step needs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    bins: DepthBins
    phase: int
    loss: LossConfig
    grad_clip: float
    device: torch.device
    autocast: Callable[[], AbstractContextManager[Any]]


def train_step(parts: StepParts, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    """One update on one batch of ``task``: only that task's head runs and gets gradients.

    Returns detached scalar tensors: ``loss``, its terms, ``lr`` and ``grad_norm`` (before clipping).
    """
    parts.optimizer.zero_grad(set_to_none=True)
    images = batch["image"].to(parts.device, non_blocking=True, memory_format=torch.channels_last)
    with parts.autocast():
        outputs = parts.model(images, heads=heads_for(task, parts.phase),
                              logits_at_stride=task == "depth" and parts.loss.depth_ce_at_stride)
    if task == "depth":
        losses = depth_losses(outputs, batch["depth"].to(parts.device, non_blocking=True), parts.bins, parts.phase,
                              parts.loss)
    else:
        losses = semantic_losses(outputs, batch["semantic"].to(parts.device, non_blocking=True), parts.loss)
    parts.scaler.scale(losses["loss"]).backward()
    parts.scaler.unscale_(parts.optimizer)
    trainable = [p for p in parts.model.parameters() if p.grad is not None]
    max_norm = parts.grad_clip if parts.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm)
    lr = parts.optimizer.param_groups[0]["lr"]
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    with warnings.catch_warnings():  # fp16: a step the scaler skipped (inf/NaN gradients) still advances the LR
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        parts.scheduler.step()
    stats = {k: v.detach() for k, v in losses.items()}
    stats.update(lr=torch.tensor(lr), grad_norm=grad_norm.detach())
    return stats

"""Learning-rate schedule: linear warm-up, then cosine or polynomial decay to ``min_lr_ratio`` of the base rate."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR

from .config import ScheduleConfig


def lr_factor(step: int, total_steps: int, schedule: ScheduleConfig) -> float:
    """Multiplier of the base learning rate for the update made at (0-based) ``step`` of ``total_steps``.

    Warm-up: ``(step + 1) / warmup_steps`` for the first ``warmup_steps`` updates. Decay over the remaining
    updates with progress ``p`` in [0, 1]: cosine ``m + (1 - m) * (1 + cos(pi p)) / 2``, poly
    ``m + (1 - m) * (1 - p) ** power``, constant ``1``; ``m = min_lr_ratio``.
    """
    warmup = schedule.warmup_steps
    if step < warmup:
        return (step + 1) / warmup
    if schedule.decay == "constant":
        return 1.0
    span = max(1, total_steps - warmup - 1)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    floor = schedule.min_lr_ratio
    if schedule.decay == "cosine":
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    return floor + (1.0 - floor) * (1.0 - progress) ** schedule.power


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, schedule: ScheduleConfig) -> LambdaLR:
    """A LambdaLR stepped once per optimiser update; its state dict is plain data (saved in run checkpoints)."""

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, schedule)

    return LambdaLR(optimizer, factor)

"""Rank-0 run output: a tqdm progress bar, printed lines, TensorBoard scalars and images.

On other ranks (and with ``enabled=False``) every method does nothing, so the training loop calls them freely.
Images logged at validation: the input, the predicted depth in colour and the predicted labels in colour
(``inference.colorize``), stacked vertically per sample.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ..inference.colorize import colorize_depth, colorize_semantic


class RunLogger:
    """Progress bar + TensorBoard writer of one run (rank 0 only)."""

    def __init__(self, run_dir: Path, *, enabled: bool, tensorboard: bool, progress: bool, total: int,
                 initial: int) -> None:
        self.enabled = enabled
        self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                         file=sys.stderr) if enabled and progress else None
        self._writer = None
        if enabled and tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # imported lazily: tensorboard is slow to import

            self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=initial or None)

    def print(self, message: str) -> None:
        """A line on stdout that does not break the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(message)
        else:
            print(message, flush=True)

    def advance(self, step: int, postfix: Mapping[str, float] | None = None) -> None:
        """Move the bar to ``step`` (completed updates), optionally showing ``postfix`` values."""
        if self._bar is None:
            return
        self._bar.update(step - self._bar.n)
        if postfix:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def scalars(self, step: int, prefix: str, values: Mapping[str, Any]) -> None:
        """``<prefix>/<key>`` scalars at ``step`` (non-numeric values skipped)."""
        if self._writer is None:
            return
        for key, value in values.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._writer.add_scalar(f"{prefix}/{key}", float(value), step)

    def prediction_images(self, step: int, tag: str, images: torch.Tensor, depth: torch.Tensor | None,
                          labels: torch.Tensor | None, min_depth: float, max_depth: float) -> None:
        """Log input (Bx3xHxW in [0, 1]), depth colour (Bx1xHxW metres) and label colour (BxHxW ids) images."""
        if self._writer is None:
            return
        for index in range(images.shape[0]):
            rows = [(images[index].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).cpu()]
            if depth is not None:
                rows.append(colorize_depth(depth[index, 0].float(), min_depth, max_depth).cpu())
            if labels is not None:
                rows.append(colorize_semantic(labels[index]).cpu())
            self._writer.add_image(f"{tag}/{index}", torch.cat(rows, dim=0), step, dataformats="HWC")

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Close the bar and the writer."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

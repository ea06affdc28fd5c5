"""Depth discretisation: the one source of truth for the depth bins of the classification head (DC).

Bins are log-spaced between ``min_depth`` and ``max_depth`` (metres), so relative resolution is constant
over the range. The bin centre is the geometric mean of its two edges.
"""

from __future__ import annotations

import math

import torch

IGNORE_INDEX = -100  # torch.nn.functional.cross_entropy's default ignore_index


class DepthBins:
    """K log-spaced depth bins; all methods are vectorised and device-agnostic."""

    def __init__(self, min_depth: float, max_depth: float, num_bins: int) -> None:
        if not (0 < min_depth < max_depth) or num_bins < 2:
            raise ValueError(f"invalid depth bins: min {min_depth}, max {max_depth}, count {num_bins}")
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.num_bins = int(num_bins)
        self._log_min = math.log(self.min_depth)
        self._log_step = (math.log(self.max_depth) - self._log_min) / self.num_bins

    @property
    def edges(self) -> torch.Tensor:
        """(K+1,) float32 bin edges in metres."""
        return torch.exp(self._log_min + self._log_step * torch.arange(self.num_bins + 1, dtype=torch.float64)).float()

    @property
    def log_centers(self) -> torch.Tensor:
        """(K,) float32 natural log of the bin centres."""
        return (self._log_min + self._log_step * (torch.arange(self.num_bins, dtype=torch.float64) + 0.5)).float()

    @property
    def centers(self) -> torch.Tensor:
        """(K,) float32 bin centres in metres."""
        return torch.exp(self.log_centers)

    def depth_to_index(self, depth: torch.Tensor) -> torch.Tensor:
        """Bin index (int64, same shape) of each depth; depths outside the range fall in the end bins.

        Invalid depths (<= 0 or non-finite) get ``IGNORE_INDEX``.
        """
        valid = torch.isfinite(depth) & (depth > 0)
        safe = torch.where(valid, depth, torch.ones_like(depth))
        index = torch.floor((torch.log(safe) - self._log_min) / self._log_step).long()
        index = index.clamp_(0, self.num_bins - 1)
        return torch.where(valid, index, torch.full_like(index, IGNORE_INDEX))

    def index_to_depth(self, index: torch.Tensor) -> torch.Tensor:
        """Centre depth (metres) of each bin index."""
        return torch.exp(self._log_min + self._log_step * (index.to(torch.float32) + 0.5))


def expected_log_depth(probs: torch.Tensor, log_centers: torch.Tensor) -> torch.Tensor:
    """Probability-weighted mean of log bin centres: BxKxHxW -> Bx1xHxW (natural log of metres)."""
    return torch.einsum("bkhw,k->bhw", probs, log_centers.to(probs.dtype)).unsqueeze(1)


def confidence_from_probs(probs: torch.Tensor) -> torch.Tensor:
    """Per-pixel confidence in [0, 1] from the bin distribution: 1 - entropy / log(K). BxKxHxW -> Bx1xHxW."""
    num_bins = probs.shape[1]
    entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1, keepdim=True)
    return (1.0 - entropy / math.log(num_bins)).clamp_(0.0, 1.0)

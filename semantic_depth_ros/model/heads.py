"""Task heads on the shared trunk: depth classification (DC), semantics (SC), depth regression (DRN)."""

from __future__ import annotations

import torch
from torch import nn

from .decoder import conv_block


class ClassifierHead(nn.Module):
    """3x3 conv block then a 1x1 classifier: BxCxhxw features -> BxNxhxw logits (used by DC and SC)."""

    def __init__(self, in_ch: int, num_outputs: int) -> None:
        super().__init__()
        self.block = conv_block(in_ch, in_ch)
        self.classifier = nn.Conv2d(in_ch, num_outputs, kernel_size=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.block(features))


class RegressionHead(nn.Module):
    """DRN: refines the DC expected log-depth into metric depth.

    Input: bin probabilities (BxKxhxw), expected log-depth (Bx1xhxw, natural log of metres, normalised inside)
    and trunk features (BxCxhxw). Output: a log-depth correction Bx1xhxw. The last layer starts at zero, so
    a freshly added DRN reproduces the DC expected depth exactly and fine-tuning starts from phase 1's answer.
    """

    def __init__(self, num_bins: int, feature_ch: int, hidden_ch: int) -> None:
        super().__init__()
        self.block1 = conv_block(num_bins + 1 + feature_ch, hidden_ch)
        self.block2 = conv_block(hidden_ch, hidden_ch)
        self.out = nn.Conv2d(hidden_ch, 1, kernel_size=3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, probs: torch.Tensor, log_depth_normalised: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        x = torch.cat([probs, log_depth_normalised, features], dim=1)
        return self.out(self.block2(self.block1(x)))

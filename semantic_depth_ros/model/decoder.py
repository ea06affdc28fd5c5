"""The shared decoder of the DSC trunk: up-sampling stages joined to equal-size encoder stages by skips."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """3x3 convolution + batch norm + ReLU (batch norm folds into the conv for inference)."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class UpStage(nn.Module):
    """Reduce channels, up-sample x2 to the skip's size, concatenate the skip, fuse."""

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int) -> None:
        super().__init__()
        self.reduce = conv_block(in_ch, out_ch)
        self.fuse = conv_block(out_ch + skip_ch, out_ch)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.reduce(x)
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.fuse(torch.cat([x, skip], dim=1))


class SkipDecoder(nn.Module):
    """Decoder over encoder features [stride 2, 4, 8, 16, 32]; ``len(channels)`` stages from stride 32 upward.

    Returns the feature map of the last stage (``channels[-1]`` channels at stride 32 / 2**len(channels)).
    """

    def __init__(self, encoder_channels: tuple[int, ...], channels: tuple[int, ...]) -> None:
        super().__init__()
        stages = []
        in_ch = encoder_channels[-1]
        for index, out_ch in enumerate(channels):
            skip_ch = encoder_channels[-2 - index]
            stages.append(UpStage(in_ch, skip_ch, out_ch))
            in_ch = out_ch
        self.stages = nn.ModuleList(stages)
        self.out_channels = in_ch

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for index, stage in enumerate(self.stages):
            x = stage(x, features[-2 - index])
        return x

"""SemanticDepthNet: the shared DSC trunk with the DC, SC and DRN heads of Gurram et al. (2021)."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .bins import DepthBins, expected_log_depth
from .config import ModelConfig
from .decoder import SkipDecoder
from .heads import ClassifierHead, RegressionHead
from .resnet import ResNetEncoder

HEADS = ("dc", "sc", "drn")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SemanticDepthNet(nn.Module):
    """Bx3xHxW RGB in [0, 1] -> dict of outputs for the requested heads.

    Output keys (all at the input size when ``upsample`` is true, else at the decoder's stride):
    ``depth_logits`` BxKxHxW and ``depth_probs`` BxKxHxW and ``dc_depth`` Bx1xHxW metres (for "dc" or "drn"),
    ``semantic_logits`` BxCxHxW (for "sc"), ``depth`` Bx1xHxW metres (for "drn").
    Depths are canonical: for the camera of focal ``config.focal_px`` at the input size.
    ``logits_at_stride`` (training): ``depth_logits``, ``depth_probs`` and ``dc_depth`` stay at the decoder's
    stride even when ``upsample`` is true (64 bins at the input size cost as much as the trunk on a CPU).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.bins = DepthBins(config.min_depth, config.max_depth, config.num_depth_bins)
        self.encoder = ResNetEncoder(config.encoder, config.encoder_widths)
        self.decoder = SkipDecoder(self.encoder.channels, config.decoder_channels)
        features = self.decoder.out_channels
        self.dc_head = ClassifierHead(features, config.num_depth_bins)
        self.sc_head = ClassifierHead(features, config.num_classes)
        self.drn_head = RegressionHead(config.num_depth_bins, features, max(features, 32)) if config.use_drn else None
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("log_centers", self.bins.log_centers, persistent=False)
        self._log_min = math.log(config.min_depth)
        self._log_max = math.log(config.max_depth)

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by part: ``trunk`` (encoder + decoder), ``dc``, ``sc``, ``drn`` (empty without DRN)."""
        return {
            "trunk": list(self.encoder.parameters()) + list(self.decoder.parameters()),
            "dc": list(self.dc_head.parameters()),
            "sc": list(self.sc_head.parameters()),
            "drn": list(self.drn_head.parameters()) if self.drn_head is not None else [],
        }

    def trunk(self, images: torch.Tensor) -> torch.Tensor:
        """Shared features BxFxhxw from images Bx3xHxW in [0, 1]."""
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        return self.decoder(self.encoder(x))

    def forward(self, images: torch.Tensor, heads: Iterable[str] = HEADS,
                upsample: bool = True, logits_at_stride: bool = False) -> dict[str, torch.Tensor]:
        wanted = self._check_heads(heads)
        features = self.trunk(images)
        out: dict[str, torch.Tensor] = {}
        size = images.shape[-2:]
        if "dc" in wanted or "drn" in wanted:
            logits = self.dc_head(features)
            probs = torch.softmax(logits.float(), dim=1)
            log_dc = expected_log_depth(probs, self.log_centers)
            if "drn" in wanted:
                out["depth"] = self._regress(probs, log_dc, features, size if upsample else None)
            if upsample and not logits_at_stride:
                logits = _resize(logits, size)
                probs = torch.softmax(logits.float(), dim=1)
                log_dc = expected_log_depth(probs, self.log_centers)
            out.update(depth_logits=logits, depth_probs=probs, dc_depth=torch.exp(log_dc))
        if "sc" in wanted:
            semantic = self.sc_head(features)
            out["semantic_logits"] = _resize(semantic, size) if upsample else semantic
        return out

    def _regress(self, probs: torch.Tensor, log_dc: torch.Tensor, features: torch.Tensor,
                 size: torch.Size | None) -> torch.Tensor:
        """DRN metric depth Bx1xhxw (metres), clamped to the bins' range."""
        normalised = (log_dc - self._log_min) / (self._log_max - self._log_min) * 2.0 - 1.0
        dtype = features.dtype
        delta = self.drn_head(probs.to(dtype), normalised.to(dtype), features).float()
        log_depth = log_dc + delta
        if size is not None:
            log_depth = _resize(log_depth, size)
        return torch.exp(log_depth.clamp(self._log_min, self._log_max))

    def _check_heads(self, heads: Iterable[str]) -> frozenset[str]:
        wanted = frozenset(heads)
        unknown = wanted - set(HEADS)
        if unknown or not wanted:
            raise ConfigError(f"unknown or empty heads {sorted(unknown) or '[]'}: choose from {', '.join(HEADS)}")
        if "drn" in wanted and self.drn_head is None:
            raise ConfigError(f"model '{self.config.name}' has no DRN head (use_drn is false)")
        return wanted


def _resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if x.shape[-2:] == size:
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

"""Batch-norm folding: no BatchNorm2d left where a conv precedes it, and identical outputs (1e-4 relative)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from semantic_depth_ros.model.config import ModelConfig
from semantic_depth_ros.model.fuse import fold_batchnorm
from semantic_depth_ros.model.network import SemanticDepthNet


def _randomise_batchnorm(model: nn.Module, seed: int) -> None:
    """Give every batch norm non-trivial statistics and affine parameters (fresh ones are the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("encoder", ["resnet18", "resnet50"])
def test_folded_model_matches_original(encoder: str) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = ModelConfig(name="t", encoder=encoder, input_height=64, input_width=96, num_depth_bins=16,
                         decoder_channels=(32, 16, 16))
    model = SemanticDepthNet(config).eval()
    _randomise_batchnorm(model, seed=1)
    images = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        reference = model(images)
        batch_norms_before = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        returned = fold_batchnorm(model)
        folded = model(images)
    assert returned is model
    assert not model.training
    assert batch_norms_before > 0
    assert [name for name, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)] == []
    for key in ("depth", "dc_depth", "depth_logits", "semantic_logits", "depth_probs"):
        assert _relative_error(folded[key], reference[key]) < 1e-4, key


def test_every_batchnorm_site_is_folded_into_a_biased_conv() -> None:
    config = ModelConfig(name="t", input_height=64, input_width=96, num_depth_bins=8, decoder_channels=(16,))
    model = fold_batchnorm(SemanticDepthNet(config))
    block = model.encoder.layer2[0]
    assert isinstance(block.bn1, nn.Identity) and isinstance(block.bn2, nn.Identity)
    assert isinstance(block.downsample[1], nn.Identity) and block.downsample[0].bias is not None
    assert isinstance(model.encoder.bn1, nn.Identity) and model.encoder.conv1.bias is not None
    assert isinstance(model.decoder.stages[0].fuse[1], nn.Identity)
    for head in (model.dc_head, model.sc_head):
        assert isinstance(head.block[1], nn.Identity) and head.block[0].bias is not None
    assert isinstance(model.drn_head.block2[1], nn.Identity)


def test_batchnorm_not_after_a_conv_is_left_alone() -> None:
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 1), nn.ReLU(), nn.BatchNorm2d(4))
    fold_batchnorm(model)
    assert isinstance(model[0], nn.BatchNorm2d)
    assert isinstance(model[3], nn.BatchNorm2d)

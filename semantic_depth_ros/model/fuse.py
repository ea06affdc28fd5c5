"""Inference-time folding of batch normalisation into the preceding convolution.

In eval mode ``BatchNorm2d(Conv2d(x))`` is an affine map per output channel, so it can be absorbed into the
convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``). Folding removes one memory pass
per convolution and gives identical outputs up to float rounding. The folded model is for inference only:
its state dict no longer matches the checkpoint layout (``bn*`` entries are gone), so never save it.
"""

from __future__ import annotations

import re

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONV_NAME = re.compile(r"conv(\d*)$")


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d that directly follows a Conv2d into that conv, in place; returns ``model`` (eval).

    Two layouts are recognised, which cover the encoder, decoder and heads of ``SemanticDepthNet``:
    consecutive ``Conv2d, BatchNorm2d`` entries of an ``nn.Sequential`` (``conv_block``, ResNet ``downsample``) and
    sibling attributes ``convN`` / ``bnN`` (ResNet stem and blocks, whose ``forward`` applies ``bnN`` right after
    ``convN``). Folded batch norms become ``nn.Identity``.
    """
    model.eval()
    for module in list(model.modules()):
        if isinstance(module, nn.Sequential):
            _fold_sequential(module)
        else:
            _fold_named_pairs(module)
    return model


def _fold_sequential(seq: nn.Sequential) -> int:
    """Fold ``Conv2d`` at index i with ``BatchNorm2d`` at index i+1 for every such pair in ``seq``."""
    count = 0
    names = list(seq._modules.keys())
    for first, second in zip(names, names[1:]):
        conv, bn = seq._modules[first], seq._modules[second]
        if _foldable(conv, bn):
            seq._modules[first] = fuse_conv_bn_eval(conv, bn)
            seq._modules[second] = nn.Identity()
            count += 1
    return count


def _fold_named_pairs(module: nn.Module) -> int:
    """Fold children named ``convN`` into their siblings ``bnN`` (N may be empty: ``conv`` / ``bn``)."""
    count = 0
    for name, child in list(module.named_children()):
        match = _CONV_NAME.match(name)
        if match is None:
            continue
        bn_name = f"bn{match.group(1)}"
        bn = getattr(module, bn_name, None)
        if _foldable(child, bn):
            setattr(module, name, fuse_conv_bn_eval(child, bn))
            setattr(module, bn_name, nn.Identity())
            count += 1
    return count


def _foldable(conv: nn.Module | None, bn: nn.Module | None) -> bool:
    """A plain 2-D conv followed by a batch norm with running statistics of matching width."""
    return (isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d and bn.track_running_stats
            and bn.running_mean is not None and bn.num_features == conv.out_channels)

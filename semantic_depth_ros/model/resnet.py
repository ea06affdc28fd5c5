"""ResNet-18/34/50 encoders in plain torch, with torchvision's parameter names.

A torchvision ImageNet state dict (``resnet18-f37072fd.pth`` and friends) loads into these modules
unchanged; its ``fc.*`` entries are ignored because the encoder has no classifier.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .config import TORCHVISION_WIDTHS


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (ResNet-18/34)."""

    expansion = 1

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(in_ch, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 bottleneck with a residual connection (ResNet-50), stride on the 3x3 as torchvision."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


_LAYOUTS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class ResNetEncoder(nn.Module):
    """ResNet trunk returning five feature maps at strides 2, 4, 8, 16, 32 (Bx3xHxW normalised input).

    ``widths``: the four stages' widths (the stem has the first one); torchvision's by default, the only ones
    ImageNet weights fit.
    """

    def __init__(self, name: str, widths: tuple[int, ...] = TORCHVISION_WIDTHS) -> None:
        super().__init__()
        block, counts = _LAYOUTS[name]
        self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        in_ch = widths[0]
        layers = []
        for index, (width, count) in enumerate(zip(widths, counts)):
            stride = 1 if index == 0 else 2
            blocks = []
            for block_index in range(count):
                blocks.append(block(in_ch, width, stride if block_index == 0 else 1))
                in_ch = width * block.expansion
            layers.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.channels: tuple[int, ...] = (widths[0],) + tuple(w * block.expansion for w in widths)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        stem = self.relu(self.bn1(self.conv1(x)))
        f1 = self.layer1(self.maxpool(stem))
        f2 = self.layer2(f1)
        f3 = self.layer3(f2)
        f4 = self.layer4(f3)
        return [stem, f1, f2, f3, f4]


def load_imagenet_weights(encoder: ResNetEncoder, path: str | Path) -> None:
    """Load a torchvision ImageNet state dict file into ``encoder`` (``fc.*`` ignored)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ImageNet weights {path}: file not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is reported the same way
        raise CheckpointError(f"ImageNet weights {path}: cannot be read ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"ImageNet weights {path}: expected a state dict, got {type(state).__name__}")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    try:
        missing, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"ImageNet weights {path}: {str(exc).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        names = ", ".join((missing + unexpected)[:4])
        raise CheckpointError(f"ImageNet weights {path}: does not match the {len(missing)} missing / "
                              f"{len(unexpected)} unexpected parameters (e.g. {names})")

"""The model configuration: one dataclass, loaded from a YAML preset and saved inside every checkpoint."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..cameras import KITTI_FOCAL_AT_620  # KITTI's fx at a 620 px wide network input
from ..config_io import convert_fields, convert_value
from ..errors import ConfigError
from ..resources import find_data_file, list_data_files

ENCODERS = ("resnet18", "resnet34", "resnet50")
TORCHVISION_WIDTHS = (64, 128, 256, 512)  # the encoder stages' widths that ImageNet weights have
PRESET_SUBDIR = "models"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a network; sizes in pixels, depths in metres.

    ``focal_px`` is the horizontal focal length, in pixels at the network input size, of the camera the model
    was trained for (the canonical camera): depth predicted for another camera is rescaled by f_eff / focal_px.
    ``encoder_widths`` are the four encoder stages' widths (torchvision's, the only ones ImageNet weights fit, by
    default). ``decoder_channels`` has one entry per up-sampling stage (at most 4); the heads run at stride
    ``32 / 2**len(decoder_channels)`` and their outputs are up-sampled to the input size.
    """

    name: str = "resnet18"
    encoder: str = "resnet18"
    encoder_widths: tuple[int, ...] = TORCHVISION_WIDTHS
    input_height: int = 188
    input_width: int = 620
    num_depth_bins: int = 64
    min_depth: float = 1.0
    max_depth: float = 80.0
    num_classes: int = 19
    decoder_channels: tuple[int, ...] = (256, 128, 64, 32)
    focal_px: float = KITTI_FOCAL_AT_620
    use_drn: bool = True
    imagenet_weights: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.decoder_channels = convert_value(self.decoder_channels, tuple[int, ...], "decoder_channels",
                                              "model config")
        self.encoder_widths = convert_value(self.encoder_widths, tuple[int, ...], "encoder_widths", "model config")
        self.validate()

    @property
    def output_stride(self) -> int:
        """Stride of the decoder's last stage relative to the input (2 with four stages)."""
        return 32 // (2 ** len(self.decoder_channels))

    def validate(self) -> None:
        """Raise ConfigError naming the first invalid field."""
        if self.encoder not in ENCODERS:
            raise ConfigError(f"model encoder '{self.encoder}' is not one of {', '.join(ENCODERS)}")
        if len(self.encoder_widths) != 4 or any(not 1 <= w <= 4096 for w in self.encoder_widths):
            raise ConfigError(f"model encoder_widths = {list(self.encoder_widths)} must list 4 widths between 1 "
                              "and 4096")
        if self.imagenet_weights and self.encoder_widths != TORCHVISION_WIDTHS:
            raise ConfigError(f"model encoder_widths = {list(self.encoder_widths)} cannot load imagenet_weights: "
                              f"ImageNet weights have the widths {list(TORCHVISION_WIDTHS)}")
        for name in ("input_height", "input_width"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 32 <= value <= 8192:
                raise ConfigError(f"model {name} = {value!r} must be an integer between 32 and 8192")
        if not 2 <= int(self.num_depth_bins) <= 1024:
            raise ConfigError(f"model num_depth_bins = {self.num_depth_bins!r} must be between 2 and 1024")
        if not (math.isfinite(self.min_depth) and self.min_depth > 0):
            raise ConfigError(f"model min_depth = {self.min_depth!r} must be positive")
        if not (math.isfinite(self.max_depth) and self.max_depth > self.min_depth):
            raise ConfigError(f"model max_depth = {self.max_depth!r} must be larger than "
                              f"min_depth = {self.min_depth!r}")
        if not 1 <= int(self.num_classes) <= 255:
            raise ConfigError(f"model num_classes = {self.num_classes!r} must be between 1 and 255")
        if not 1 <= len(self.decoder_channels) <= 4 or any(c < 1 for c in self.decoder_channels):
            raise ConfigError(f"model decoder_channels = {list(self.decoder_channels)} must list 1 to 4 "
                              "positive widths")
        if not (math.isfinite(self.focal_px) and self.focal_px > 0):
            raise ConfigError(f"model focal_px = {self.focal_px!r} must be positive")

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (YAML/JSON/torch.load(weights_only=True) safe)."""
        data = dataclasses.asdict(self)
        data["decoder_channels"] = list(self.decoder_channels)
        data["encoder_widths"] = list(self.encoder_widths)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "model config", prefix: str = "") -> "ModelConfig":
        """Build from a dict with the strict ``config_io`` rules: unknown keys and badly typed values (e.g. a
        fraction for an int field) are refused naming ``prefix`` + the key; then the value checks of ``validate``."""
        kwargs = convert_fields(cls, data, source=source, prefix=prefix)
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    def replace(self, **changes: Any) -> "ModelConfig":
        """A validated copy with some fields changed."""
        return ModelConfig.from_dict({**self.to_dict(), **changes})


def available_presets() -> list[str]:
    """Names of the installed presets (``models/*.yaml``)."""
    return [p.stem for p in list_data_files(PRESET_SUBDIR, "*.yaml")]


def load_preset(name_or_path: str | Path) -> ModelConfig:
    """Load a preset by name (``resnet18``) or from a YAML file path."""
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") or path.exists()):
        found = find_data_file(PRESET_SUBDIR, f"{name_or_path}.yaml")
        if found is None:
            names = ", ".join(available_presets()) or "none installed"
            raise ConfigError(f"model preset '{name_or_path}' not found (available: {names})")
        path = found
    if not path.is_file():
        raise ConfigError(f"model preset file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"model preset {path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    return ModelConfig.from_dict(data or {}, source=f"model preset {path}")

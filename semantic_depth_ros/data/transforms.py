"""Training and validation transforms of dataset samples (torch, CPU).

A sample is the dict every dataset returns (see PLAN conventions)::

    {"image": float32 3xHxW in [0, 1], "depth": float32 1xHxW metres (0 = invalid, optional),
     "semantic": int64 HxW train ids (255 = ignore, optional), "fx": float (px at this sample's HxW)}

Other keys are passed through untouched. Every transform is called as ``transform(sample, generator)`` and
returns a new dict (the input is not modified). All randomness comes from ``generator`` (a ``torch.Generator``,
an int seed, or None for torch's global generator) and each random transform draws a fixed number of values
per call, so a sample's augmentation is reproducible from its seed (see :func:`make_generator`), which is what
an exact resume needs.

Resizing rules: the image is resized bilinearly (antialiased when shrinking); depth and semantic labels with
nearest-neighbour sampling (``nearest-exact``, pixel centres), so a depth value is never averaged with the 0 of an
invalid neighbour or with another depth: every output depth is one of the input values, and 0 stays 0. Label
ids are sampled through float32, exact for ids below 2**24. ``fx`` scales by ``new_width / old_width``, the ``sx``
of ``geometry.intrinsics.scale_intrinsics``; crops and flips leave it unchanged (cx is not tracked).
"""

from __future__ import annotations

import math
from typing import Any, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from semantic_depth_ros.errors import ConfigError, InvalidInputError

Sample = dict[str, Any]
GeneratorLike = torch.Generator | int | None

GRAY_WEIGHTS = (0.299, 0.587, 0.114)
"""ITU-R 601 luma weights (R, G, B) used by the contrast and saturation jitter."""


class Transform(Protocol):
    """Anything called as ``transform(sample, generator) -> sample``."""

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample: ...


def make_generator(seed: int, *keys: int) -> torch.Generator:
    """A ``torch.Generator`` seeded from ``(seed, *keys)``, e.g. (run seed, epoch, sample index).

    Independent of worker count and process, so a resumed run augments every sample exactly as before.
    """
    if seed < 0 or any(key < 0 for key in keys):
        raise ConfigError(f"generator seed and keys must be non-negative, got {(seed, *keys)}")
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    generator = torch.Generator()
    generator.manual_seed((int(state[0]) << 31) ^ int(state[1]))
    return generator


def _generator(generator: GeneratorLike) -> torch.Generator | None:
    """``generator`` as a torch.Generator (an int is a seed); None means torch's global generator."""
    if generator is None or isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        return make_generator(int(generator))
    raise InvalidInputError(f"generator must be a torch.Generator, an int seed or None, got {type(generator).__name__}")


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    """One float drawn uniformly from [low, high]."""
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """One int drawn uniformly from 0..high-1."""
    return int(torch.randint(high, (1,), generator=generator))


def _check_sample(sample: Sample) -> tuple[int, int]:
    """Validate a sample's tensors; return the image (height, width)."""
    if not isinstance(sample, dict) or "image" not in sample:
        raise InvalidInputError("sample must be a dict with an 'image' tensor")
    image = sample["image"]
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
        raise InvalidInputError(f"sample['image'] must be a float 3xHxW tensor, got {_describe(image)}")
    height, width = int(image.shape[1]), int(image.shape[2])
    if height == 0 or width == 0:
        raise InvalidInputError(f"sample['image'] is empty: {_describe(image)}")
    depth = sample.get("depth")
    if depth is not None and (
        not isinstance(depth, torch.Tensor) or tuple(depth.shape) != (1, height, width) or not depth.is_floating_point()
    ):
        raise InvalidInputError(f"sample['depth'] must be a float 1x{height}x{width} tensor, got {_describe(depth)}")
    semantic = sample.get("semantic")
    if semantic is not None and (
        not isinstance(semantic, torch.Tensor)
        or tuple(semantic.shape) != (height, width)
        or semantic.is_floating_point()
        or semantic.is_complex()
    ):
        raise InvalidInputError(
            f"sample['semantic'] must be an integer {height}x{width} tensor, got {_describe(semantic)}"
        )
    return height, width


def _describe(value: Any) -> str:
    """Short description of a sample field for error messages."""
    if isinstance(value, torch.Tensor):
        return f"shape {tuple(value.shape)} dtype {value.dtype}"
    return type(value).__name__


def _check_size(height: int, width: int) -> tuple[int, int]:
    """Validate an output size in pixels (ConfigError naming it)."""
    if isinstance(height, bool) or isinstance(width, bool) or int(height) != height or int(width) != width:
        raise ConfigError(f"output size must be integers, got {height}x{width}")
    if height <= 0 or width <= 0:
        raise ConfigError(f"output size must be positive, got {height}x{width}")
    return int(height), int(width)


def _nearest(tensor: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Nearest-neighbour (pixel-centre) resize of a ...xHxW tensor; integer tensors go through float32."""
    leading = tensor.shape[:-2]
    flat = tensor.reshape(1, -1, tensor.shape[-2], tensor.shape[-1])
    values = flat if flat.is_floating_point() else flat.to(torch.float32)
    resized = F.interpolate(values, size=(height, width), mode="nearest-exact")
    return resized.to(tensor.dtype).reshape(*leading, height, width)


def resize_sample(sample: Sample, height: int, width: int) -> Sample:
    """Resize a sample to height x width px: image bilinear, depth/semantic nearest, ``fx *= width / W``."""
    in_height, in_width = _check_sample(sample)
    height, width = _check_size(height, width)
    out = dict(sample)
    if (height, width) == (in_height, in_width):
        return out
    shrinking = height < in_height or width < in_width
    image = F.interpolate(
        sample["image"][None], size=(height, width), mode="bilinear", align_corners=False, antialias=shrinking
    )
    out["image"] = image[0].clamp_(0.0, 1.0)
    if sample.get("depth") is not None:
        out["depth"] = _nearest(sample["depth"], height, width)
    if sample.get("semantic") is not None:
        out["semantic"] = _nearest(sample["semantic"], height, width)
    if "fx" in sample:
        out["fx"] = float(sample["fx"]) * width / in_width
    return out


def crop_sample(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Crop every image-shaped field to rows top..top+height-1, cols left..left+width-1 (fx unchanged)."""
    in_height, in_width = _check_sample(sample)
    if top < 0 or left < 0 or top + height > in_height or left + width > in_width or height <= 0 or width <= 0:
        raise InvalidInputError(
            f"crop {height}x{width} at (top={top}, left={left}) does not fit a {in_height}x{in_width} sample"
        )
    out = dict(sample)
    rows, cols = slice(top, top + height), slice(left, left + width)
    out["image"] = sample["image"][:, rows, cols]
    if sample.get("depth") is not None:
        out["depth"] = sample["depth"][:, rows, cols]
    if sample.get("semantic") is not None:
        out["semantic"] = sample["semantic"][rows, cols]
    return out


def canonical_depth(depth: torch.Tensor, fx: float, focal_px: float) -> torch.Tensor:
    """Depth as the canonical camera would see it: ``depth * focal_px / fx`` (metres; 0 stays 0).

    ``fx`` is the sample's focal length (px) at its current size, ``focal_px`` the model's ``ModelConfig.focal_px``.
    """
    return depth * (_positive_px("focal_px", focal_px) / _positive_px("fx", fx))


def _positive_px(name: str, value: Any) -> float:
    """``value`` as a positive finite float (pixels), else InvalidInputError naming it."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise InvalidInputError(f"{name} must be a positive finite number of pixels, got {value}")
    return number


class Resize:
    """Deterministic resize to out_height x out_width px (validation), same depth/semantic/fx rules."""

    def __init__(self, out_height: int, out_width: int) -> None:
        self.out_height, self.out_width = _check_size(out_height, out_width)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        return resize_sample(sample, self.out_height, self.out_width)


class RandomScaleCrop:
    """Scale so the image covers out_height x out_width, times a factor from ``scale_range``, then crop at random.

    The scale is ``max(out_h / H, out_w / W) * u`` with ``u ~ U(scale_range)``, ``scale_range[0] >= 1``, so the
    resized image always covers the crop and no padding is ever needed. ``fx`` follows the resized width.
    """

    def __init__(self, out_height: int, out_width: int, scale_range: tuple[float, float] = (1.0, 1.5)) -> None:
        self.out_height, self.out_width = _check_size(out_height, out_width)
        low, high = (float(value) for value in scale_range)
        if not (math.isfinite(high) and 1.0 <= low <= high):
            raise ConfigError(f"scale_range must satisfy 1 <= low <= high, got {tuple(scale_range)}")
        self.scale_range = (low, high)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        in_height, in_width = _check_sample(sample)
        g = _generator(generator)
        cover = max(self.out_height / in_height, self.out_width / in_width)
        scale = cover * _uniform(*self.scale_range, g)
        height = max(self.out_height, round(in_height * scale))
        width = max(self.out_width, round(in_width * scale))
        top_fraction, left_fraction = (float(value) for value in torch.rand(2, generator=g, dtype=torch.float64))
        top = min(int(top_fraction * (height - self.out_height + 1)), height - self.out_height)
        left = min(int(left_fraction * (width - self.out_width + 1)), width - self.out_width)
        resized = resize_sample(sample, height, width)
        return crop_sample(resized, top, left, self.out_height, self.out_width)


class RandomHorizontalFlip:
    """Mirror image, depth and semantic together with probability ``p`` (fx unchanged; cx is not tracked)."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"flip probability must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        _check_sample(sample)
        draw = _uniform(0.0, 1.0, _generator(generator))
        out = dict(sample)
        if draw < self.p:
            for key in ("image", "depth", "semantic"):
                if sample.get(key) is not None:
                    out[key] = sample[key].flip(-1)
        return out


def _factor_range(name: str, value: float | tuple[float, float]) -> tuple[float, float]:
    """A jitter strength ``s`` as the factor range ``(max(0, 1 - s), 1 + s)``, or an explicit (low, high)."""
    low, high = (max(0.0, 1.0 - float(value)), 1.0 + float(value)) if isinstance(value, (int, float)) else value
    if not (0.0 <= float(low) <= float(high) and math.isfinite(float(high))):
        raise ConfigError(f"colour jitter {name} must be >= 0 or a range 0 <= low <= high, got {value}")
    return float(low), float(high)


def _gray(image: torch.Tensor) -> torch.Tensor:
    """Luma of a 3xHxW RGB image, 1xHxW."""
    weights = torch.tensor(GRAY_WEIGHTS, dtype=image.dtype, device=image.device)
    return (image * weights[:, None, None]).sum(dim=0, keepdim=True)


def hue_rotation(turns: float) -> torch.Tensor:
    """3x3 matrix rotating RGB colours by ``turns`` of a full turn about the grey axis (1, 1, 1): greys stay,
    red goes towards green at 1/3 turn (Rodrigues' formula)."""
    angle = 2.0 * math.pi * turns
    cos, sin = math.cos(angle), math.sin(angle)
    third, root = (1.0 - cos) / 3.0, sin / math.sqrt(3.0)
    return torch.tensor([[cos + third, third - root, third + root],
                         [third + root, cos + third, third - root],
                         [third - root, third + root, cos + third]], dtype=torch.float64)


class ColorJitter:
    """Random brightness, contrast, saturation and hue (in that order) of the image only, clamped to [0, 1].

    Each strength ``s`` draws a factor from ``[max(0, 1 - s), 1 + s]`` (or give an explicit ``(low, high)``):
    brightness ``x * f``; contrast ``f * x + (1 - f) * mean(luma)``; saturation ``f * x + (1 - f) * luma``.
    ``hue`` (turns, 0 to 0.5) rotates the colours about the grey axis by an angle from ``[-hue, hue]``; at 0
    (the default) no fourth number is drawn, so existing augmentation streams are unchanged.
    """

    def __init__(
        self,
        brightness: float | tuple[float, float] = 0.2,
        contrast: float | tuple[float, float] = 0.2,
        saturation: float | tuple[float, float] = 0.2,
        hue: float = 0.0,
    ) -> None:
        self.brightness = _factor_range("brightness", brightness)
        self.contrast = _factor_range("contrast", contrast)
        self.saturation = _factor_range("saturation", saturation)
        if not 0.0 <= float(hue) <= 0.5:
            raise ConfigError(f"colour jitter hue must be in [0, 0.5] turns, got {hue}")
        self.hue = float(hue)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        _check_sample(sample)
        g = _generator(generator)
        bright, contrast, saturation = (_uniform(*r, g) for r in (self.brightness, self.contrast, self.saturation))
        image = (sample["image"] * bright).clamp(0.0, 1.0)
        image = (contrast * image + (1.0 - contrast) * _gray(image).mean()).clamp(0.0, 1.0)
        image = (saturation * image + (1.0 - saturation) * _gray(image)).clamp(0.0, 1.0)
        if self.hue > 0.0:
            rotation = hue_rotation(_uniform(-self.hue, self.hue, g)).to(image.dtype)
            image = torch.einsum("ij,jhw->ihw", rotation, image).clamp(0.0, 1.0)
        out = dict(sample)
        out["image"] = image
        return out


class CanonicalDepth:
    """Turn the sample's metric depth into canonical depth for a camera of ``focal_px`` (apply after cropping)."""

    def __init__(self, focal_px: float) -> None:
        if not (math.isfinite(focal_px) and focal_px > 0):
            raise ConfigError(f"focal_px must be a positive finite number of pixels, got {focal_px}")
        self.focal_px = float(focal_px)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        _check_sample(sample)
        out = dict(sample)
        if sample.get("depth") is None:
            return out
        if "fx" not in sample:
            raise InvalidInputError("sample has 'depth' but no 'fx'; canonical depth needs the sample's focal length")
        out["depth"] = canonical_depth(sample["depth"], sample["fx"], self.focal_px)
        return out


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, generator: GeneratorLike = None) -> Sample:
        g = _generator(generator)
        for transform in self.transforms:
            sample = transform(sample, g)
        return sample

"""File formats shared by the dataset readers and the rosbag extraction.

- RGB images: 8-bit PNG/JPEG, returned as HxWx3 uint8 RGB.
- Depth maps: the KITTI depth-completion convention, a single-channel uint16 PNG holding
  ``round(metres * 256)``, 0 = no measurement (largest depth 65535 / 256 = 255.996 m).
- JSON: strict (RFC 8259) everywhere: NaN and infinities are written as ``null``, so ``jq``, browsers and other
  languages read every file; numpy and torch values become plain numbers and lists.
- Every written file is written atomically (``semantic_depth_ros.files.write_atomic``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from semantic_depth_ros.errors import DatasetError, InvalidInputError
from semantic_depth_ros.files import write_atomic

DEPTH_PNG_SCALE = 256.0
"""uint16 value per metre in depth PNGs (KITTI depth-completion convention)."""

DEPTH_PNG_MAX = 65535 / DEPTH_PNG_SCALE
"""Largest depth a uint16 PNG can hold, metres."""


def read_image_file(path: str | os.PathLike[str], flags: int) -> np.ndarray:
    """Read an image with OpenCV ``flags``; DatasetError naming the path if missing or undecodable."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing file: {path}")
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DatasetError(f"cannot decode image: {path}")
    return image


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an 8-bit colour image as HxWx3 uint8 RGB."""
    bgr = read_image_file(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_label_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a single-channel 8-bit label image as HxW uint8."""
    label = read_image_file(path, cv2.IMREAD_UNCHANGED)
    if label.ndim != 2 or label.dtype != np.uint8:
        raise DatasetError(f"label image must be single-channel 8-bit, got {label.dtype} {label.shape}: {path}")
    return label


def read_depth_png(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a uint16 depth PNG as HxW float32 metres (value / 256, 0 = invalid)."""
    raw = read_image_file(path, cv2.IMREAD_UNCHANGED)
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise DatasetError(f"depth PNG must be single-channel uint16, got {raw.dtype} {raw.shape}: {path}")
    return raw.astype(np.float32) / DEPTH_PNG_SCALE


def depth_to_uint16(depth: np.ndarray) -> np.ndarray:
    """HxW metres -> uint16 ``round(m * 256)``; non-finite or <= 0 -> 0, deeper than 255.996 m -> 65535."""
    depth = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    scaled = np.where(valid, np.rint(depth * DEPTH_PNG_SCALE), 0.0)
    return np.clip(scaled, 0, 65535).astype(np.uint16)


def encode_png(image: np.ndarray) -> bytes:
    """Encode a uint8/uint16 image as PNG bytes (3-channel input is taken as RGB)."""
    image = np.ascontiguousarray(image)  # views (reversed channels, broadcast grey) become plain arrays
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise DatasetError(f"PNG encoding failed for an image of shape {image.shape} and dtype {image.dtype}")
    return buffer.tobytes()


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> float32 3xHxW tensor in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float().div_(255.0)


def depth_to_tensor(depth: np.ndarray) -> torch.Tensor:
    """HxW float metres -> float32 1xHxW tensor."""
    return torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32))[None]


def to_json_data(value: Any, where: str = "") -> Any:
    """``value`` as strict JSON data: mappings (keys as str), lists, numbers, str, bool, None; numpy and torch
    scalars/arrays to Python, paths to str, NaN and infinities to None. InvalidInputError naming the field
    (``where``, dotted) for anything else."""
    if isinstance(value, Mapping):
        return {str(key): to_json_data(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_data(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return to_json_data(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise InvalidInputError(f"field {where or '<root>'} has type {type(value).__name__}, which JSON cannot hold")


def dumps_json(value: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` (see :func:`to_json_data`); never ``NaN`` or ``Infinity``."""
    return json.dumps(to_json_data(value), indent=indent, ensure_ascii=False, allow_nan=False)


def write_json(path: str | os.PathLike[str], value: Any, *, indent: int | None = 2) -> Path:
    """Write ``value`` as strict JSON (UTF-8, trailing newline) atomically; returns the path."""
    path = Path(path)
    write_atomic(path, (dumps_json(value, indent=indent) + "\n").encode("utf-8"))
    return path

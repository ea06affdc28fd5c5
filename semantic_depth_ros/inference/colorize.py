"""Colour images of semantic labels and depth for quick viewing.

The colouring functions take torch tensors on any device and return uint8 HxWx3 RGB tensors on the same device,
through a small look-up table built once per device. Numpy wrappers are provided for tools and tests.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch

from semantic_depth_ros.cache import BoundedCache, device_key
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.labels import CITYSCAPES_PALETTE, NUM_CLASSES


def _turbo_lut_numpy() -> np.ndarray:
    """256x3 uint8 RGB of OpenCV's turbo colour map (index 0 = dark blue, 255 = dark red)."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(256, 1), cv2.COLORMAP_TURBO)
    return np.ascontiguousarray(bgr.reshape(256, 3)[:, ::-1])


_TURBO_LUT = _turbo_lut_numpy()
_TURBO_LUT.setflags(write=False)


_LUTS: BoundedCache[tuple[str, torch.device], torch.Tensor] = BoundedCache(8, "colour table cache")


def _semantic_lut(device: torch.device) -> torch.Tensor:
    """(256, 3) uint8 on ``device``: the palette, then black for ignore / out-of-range ids (every uint8 id has a
    row, so uint8 ids index it directly)."""
    return _LUTS.get(("semantic", device_key(device)),
                     lambda: _table(CITYSCAPES_PALETTE, device, rows=256))


def _depth_lut(device: torch.device) -> torch.Tensor:
    """(257, 3) uint8 on ``device``: turbo for indices 0..255, then black for invalid depth."""
    return _LUTS.get(("depth", device_key(device)), lambda: _table(_TURBO_LUT, device))


def _table(colours: np.ndarray, device: torch.device, rows: int | None = None) -> torch.Tensor:
    """Nx3 uint8 ``colours`` and black rows after them (one, or up to ``rows``), on ``device``."""
    black = np.zeros((1 if rows is None else rows - len(colours), 3), dtype=np.uint8)
    return torch.from_numpy(np.concatenate((colours, black))).to(device)


def _look_up(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for an integer ``index`` of any shape -> ``(*index.shape, 3)``, by ``index_select`` (several
    times faster than advanced indexing on a CPU)."""
    return torch.index_select(table, 0, index.reshape(-1).to(torch.int32)).view(*index.shape, table.shape[1])


def colorize_semantic(ids: torch.Tensor) -> torch.Tensor:
    """HxW train ids (any integer dtype) -> HxWx3 uint8 Cityscapes colours; ignore/out-of-range ids are black."""
    if ids.dtype == torch.uint8:  # the node's labels: every value has its row (ids >= NUM_CLASSES are black)
        return _look_up(_semantic_lut(ids.device), ids)
    index = ids.long()
    index = torch.where((index >= 0) & (index < NUM_CLASSES), index, torch.full_like(index, NUM_CLASSES))
    return _look_up(_semantic_lut(ids.device), index)


def _check_depth_range(min_depth: float, max_depth: float) -> None:
    """Raise unless ``0 < min_depth < max_depth`` (metres)."""
    if not (0.0 < min_depth < max_depth < float("inf")):
        raise ConfigError(f"depth colour range min_depth = {min_depth}, max_depth = {max_depth}: need 0 < min < max")


def colorize_depth(depth: torch.Tensor, min_depth: float, max_depth: float) -> torch.Tensor:
    """HxW depth in metres -> HxWx3 uint8 turbo colours, normalised in log depth so near is warm (red).

    Log depth spreads a street scene (a few metres to the cap) over the whole colour map; inverse depth would
    paint everything beyond a few metres the same blue. Depth at or below ``min_depth`` is the warmest colour,
    at or above ``max_depth`` the coldest; NaN, infinite and non-positive depth are black.
    """
    _check_depth_range(min_depth, max_depth)
    depth = depth.float()
    invalid = ~(torch.isfinite(depth) & (depth > 0))
    log_far = math.log(max_depth)
    # (log_far - log(clamped)) / (log_far - log_near) * 255, rounded: in place on one temporary
    index = depth.clamp(min=min_depth, max=max_depth).log_().neg_().add_(log_far)
    index = index.div_(log_far - math.log(min_depth)).mul_(255.0).round_().masked_fill_(invalid, 256.0)
    return _look_up(_depth_lut(depth.device), index)


def colorize_semantic_numpy(ids: np.ndarray) -> np.ndarray:
    """Numpy version of ``colorize_semantic``: HxW integer ids -> HxWx3 uint8 RGB."""
    return colorize_semantic(torch.from_numpy(np.asarray(ids).astype(np.int64, copy=False))).numpy()


def colorize_depth_numpy(depth: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Numpy version of ``colorize_depth``: HxW metres -> HxWx3 uint8 RGB."""
    return colorize_depth(torch.from_numpy(np.asarray(depth, dtype=np.float32)), min_depth, max_depth).numpy()

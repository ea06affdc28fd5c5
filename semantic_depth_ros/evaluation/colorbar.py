"""A colour scale in metres for depth pictures a person looks at (files on disk, the demo's summary sheet).

The bar is drawn with :func:`semantic_depth_ros.inference.colorize.colorize_depth_numpy` itself, so its colours are
exactly those of the picture: column ``x`` of a bar ``width`` wide shows the depth
``min_depth * (max_depth / min_depth) ** (x / (width - 1))`` (log scale, near = warm on the left, far = cold on
the right), with tick marks and labels in metres. The ``depth/color`` topic carries no bar.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.inference.colorize import colorize_depth_numpy

GRADIENT_HEIGHT = 14
LABEL_HEIGHT = 22
_NICE_STEPS = (1.0, 2.0, 5.0)


def _check(width: int, min_depth: float, max_depth: float) -> None:
    if int(width) < 2:
        raise ConfigError(f"colour bar width must be at least 2 px, got {width}")
    if not (0.0 < min_depth < max_depth < math.inf):
        raise ConfigError(f"colour bar range {min_depth}..{max_depth} m: need 0 < min < max")


def depth_at_columns(width: int, min_depth: float, max_depth: float) -> np.ndarray:
    """Depth (metres, float32) shown by each of the ``width`` columns of the bar, log-spaced."""
    _check(width, min_depth, max_depth)
    fraction = np.arange(width, dtype=np.float64) / (width - 1)
    return (min_depth * (max_depth / min_depth) ** fraction).astype(np.float32)


def column_of_depth(depth: float, width: int, min_depth: float, max_depth: float) -> int:
    """The bar column (0..width-1) showing ``depth`` metres."""
    _check(width, min_depth, max_depth)
    fraction = math.log(depth / min_depth) / math.log(max_depth / min_depth)
    return int(round(min(max(fraction, 0.0), 1.0) * (width - 1)))


def depth_scale_ticks(min_depth: float, max_depth: float) -> list[float]:
    """Tick values in metres: both ends and the 1-2-5 values in between (e.g. 1, 2, 5, 10, 20, 50, 80)."""
    _check(2, min_depth, max_depth)
    ticks = [float(min_depth)]
    decade = 10.0 ** math.floor(math.log10(min_depth))
    while decade <= max_depth:
        for step in _NICE_STEPS:
            value = step * decade
            if min_depth * 1.15 < value < max_depth / 1.15:
                ticks.append(value)
        decade *= 10.0
    return ticks + [float(max_depth)]


def _tick_label(value: float) -> str:
    return f"{value:.3g}"


def depth_scale_bar(width: int, min_depth: float, max_depth: float) -> np.ndarray:
    """HxWx3 uint8 RGB colour bar ``width`` px wide: the gradient, tick marks and labels ``<value>`` and ``m``."""
    gradient = colorize_depth_numpy(depth_at_columns(width, min_depth, max_depth)[None, :], min_depth, max_depth)
    bar = np.full((GRADIENT_HEIGHT + LABEL_HEIGHT, width, 3), 255, dtype=np.uint8)
    bar[:GRADIENT_HEIGHT] = gradient
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.4
    ticks = depth_scale_ticks(min_depth, max_depth)
    drawn: list[tuple[int, int]] = []  # (left, right) of the labels drawn; the ends first, so they always show
    for index in [0, len(ticks) - 1, *range(1, len(ticks) - 1)]:
        column = column_of_depth(ticks[index], width, min_depth, max_depth)
        bar[GRADIENT_HEIGHT:GRADIENT_HEIGHT + 4, column] = 0
        text = _tick_label(ticks[index]) + (" m" if index == len(ticks) - 1 else "")
        (text_width, _), _ = cv2.getTextSize(text, font, scale, 1)
        left = int(min(max(column - text_width // 2, 0), width - text_width))
        if any(left < right + 4 and other_left < left + text_width + 4 for other_left, right in drawn):
            continue  # a label that would overlap another keeps only its tick mark
        drawn.append((left, left + text_width))
        cv2.putText(bar, text, (left, GRADIENT_HEIGHT + 17), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return bar


def with_depth_scale(image: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """``image`` (HxWx3 uint8, coloured by ``colorize_depth`` over ``min_depth``..``max_depth`` m) with its colour
    bar below it: (H + bar height) x W x 3."""
    return np.concatenate([image, depth_scale_bar(image.shape[1], min_depth, max_depth)], axis=0)

"""The colour scale in metres drawn under depth pictures: its colours are the colour map's own."""

from __future__ import annotations

import numpy as np
import pytest

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.evaluation.colorbar import (
    GRADIENT_HEIGHT,
    column_of_depth,
    depth_at_columns,
    depth_scale_bar,
    depth_scale_ticks,
    with_depth_scale,
)
from semantic_depth_ros.inference.colorize import colorize_depth_numpy


def test_bar_columns_show_the_colour_of_their_depth_in_metres() -> None:
    width, low, high = 300, 1.0, 80.0
    depths = depth_at_columns(width, low, high)
    assert depths[0] == pytest.approx(1.0) and depths[-1] == pytest.approx(80.0)
    assert depths[column_of_depth(10.0, width, low, high)] == pytest.approx(10.0, rel=0.02)
    bar = depth_scale_bar(width, low, high)
    assert bar.dtype == np.uint8 and bar.shape[1] == width and bar.shape[0] > GRADIENT_HEIGHT
    for metres in (1.0, 2.0, 10.0, 50.0, 80.0):
        column = column_of_depth(metres, width, low, high)
        expected = colorize_depth_numpy(np.array([[depths[column]]]), low, high)[0, 0]
        np.testing.assert_array_equal(bar[0, column], expected)
    assert not np.array_equal(bar[0, 0], bar[0, -1])  # near and far differ
    labels = bar[GRADIENT_HEIGHT + 5:]
    assert (labels < 128).any()  # tick labels are drawn


def test_ticks_are_the_ends_and_round_values_between() -> None:
    assert depth_scale_ticks(1.0, 80.0) == [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 80.0]
    assert depth_scale_ticks(0.5, 10.0) == [0.5, 1.0, 2.0, 5.0, 10.0]
    with pytest.raises(ConfigError, match=r"colour bar range 5\.0\.\.1\.0 m"):
        depth_scale_ticks(5.0, 1.0)


def test_image_with_scale_keeps_the_picture_on_top() -> None:
    picture = colorize_depth_numpy(np.linspace(1, 80, 40 * 64).reshape(40, 64), 1.0, 80.0)
    out = with_depth_scale(picture, 1.0, 80.0)
    assert out.shape == (40 + depth_scale_bar(64, 1.0, 80.0).shape[0], 64, 3)
    np.testing.assert_array_equal(out[:40], picture)

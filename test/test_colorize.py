"""Cityscapes names and palette, semantic and depth colouring."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.labels import CITYSCAPES_PALETTE, CITYSCAPES_TRAIN_ID_NAMES, IGNORE_LABEL, SKY_TRAIN_ID
from semantic_depth_ros.inference.colorize import (
    colorize_depth,
    colorize_depth_numpy,
    colorize_semantic,
    colorize_semantic_numpy,
)

NAN = float("nan")


def _turbo(index: int) -> list[int]:
    """RGB of OpenCV's turbo map at ``index``, computed independently of the module."""
    bgr = cv2.applyColorMap(np.array([[index]], dtype=np.uint8), cv2.COLORMAP_TURBO)[0, 0]
    return bgr[::-1].tolist()


def test_names_and_special_ids() -> None:
    assert CITYSCAPES_TRAIN_ID_NAMES == (
        "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation",
        "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
    )  # fmt: skip
    assert CITYSCAPES_TRAIN_ID_NAMES[SKY_TRAIN_ID] == "sky"
    assert IGNORE_LABEL == 255


def test_palette_is_the_official_cityscapes_one() -> None:
    assert CITYSCAPES_PALETTE.shape == (19, 3) and CITYSCAPES_PALETTE.dtype == np.uint8
    assert CITYSCAPES_PALETTE[0].tolist() == [128, 64, 128]  # road
    assert CITYSCAPES_PALETTE[8].tolist() == [107, 142, 35]  # vegetation
    assert CITYSCAPES_PALETTE[SKY_TRAIN_ID].tolist() == [70, 130, 180]
    assert CITYSCAPES_PALETTE[11].tolist() == [220, 20, 60]  # person
    assert CITYSCAPES_PALETTE[13].tolist() == [0, 0, 142]  # car
    assert CITYSCAPES_PALETTE[18].tolist() == [119, 11, 32]  # bicycle
    assert len({tuple(colour) for colour in CITYSCAPES_PALETTE.tolist()}) == 19
    with pytest.raises(ValueError):
        CITYSCAPES_PALETTE[0, 0] = 1


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.int32])
def test_colorize_semantic(dtype: torch.dtype) -> None:
    ids = torch.tensor([[0, 10, 18], [19, 255, 13]], dtype=dtype)
    colours = colorize_semantic(ids)
    assert colours.shape == (2, 3, 3) and colours.dtype == torch.uint8 and colours.device == ids.device
    assert colours[0].tolist() == [[128, 64, 128], [70, 130, 180], [119, 11, 32]]
    assert colours[1].tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 142]]


def test_colorize_semantic_negative_ids_are_black() -> None:
    assert colorize_semantic(torch.tensor([[-1, 1]])).tolist() == [[[0, 0, 0], [244, 35, 232]]]


def test_colorize_semantic_every_class() -> None:
    ids = np.arange(19, dtype=np.uint8).reshape(1, 19)
    np.testing.assert_array_equal(colorize_semantic_numpy(ids)[0], CITYSCAPES_PALETTE)


def test_colorize_depth_near_is_warm_far_is_cold_invalid_is_black() -> None:
    # Range 1..4 m: log depth t = (log 4 - log d) / (log 4 - log 1); d = 2 -> t = 1/2 -> round(127.5) = 128.
    depth = torch.tensor([[0.5, 1.0, 2.0, 4.0, 10.0], [NAN, float("inf"), 0.0, -1.0, 1.25]])
    colours = colorize_depth(depth, 1.0, 4.0)
    assert colours.shape == (2, 5, 3) and colours.dtype == torch.uint8
    assert colours[0].tolist() == [_turbo(255), _turbo(255), _turbo(128), _turbo(0), _turbo(0)]
    assert colours[1, :4].tolist() == [[0, 0, 0]] * 4
    # d = 1.25 -> t = log(3.2) / log(4) = 0.83904 -> round(213.96) = 214.
    assert colours[1, 4].tolist() == _turbo(214)
    red, _, blue = _turbo(255)
    assert red > blue  # the near end of turbo is red


def test_colorize_depth_accepts_half_and_matches_numpy_wrapper() -> None:
    depth = np.array([[1.0, 2.0], [4.0, NAN]], dtype=np.float32)
    expected = colorize_depth_numpy(depth, 1.0, 4.0)
    assert expected.shape == (2, 2, 3) and expected.dtype == np.uint8
    half = colorize_depth(torch.from_numpy(depth).half(), 1.0, 4.0)
    np.testing.assert_array_equal(half.numpy(), expected)


@pytest.mark.parametrize(("low", "high"), [(0.0, 4.0), (4.0, 4.0), (5.0, 4.0), (1.0, float("inf"))])
def test_colorize_depth_rejects_bad_range(low: float, high: float) -> None:
    with pytest.raises(ConfigError, match=r"depth colour range min_depth = .*: need 0 < min < max"):
        colorize_depth(torch.ones(2, 2), low, high)

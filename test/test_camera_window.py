"""REP 104 binning and ROI, and rectified input, in the one camera_info parser (geometry.intrinsics).

Expected values are computed by hand from image_geometry's rule (``PinholeCameraModel::fromCameraInfo`` and
``cameramodels.py``): ``fx' = fx / binning_x``, ``cx' = (cx - roi.x_offset) / binning_x`` (likewise y), image size
``roi.width // binning_x`` x ``roi.height // binning_y``; a rectified image's camera is P's.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics, camera_from_info, input_is_rectified

K = (1800.0, 0.0, 1224.5, 0.0, 1790.0, 1023.5, 0.0, 0.0, 1.0)
P = (1700.0, 0.0, 1230.0, 0.0, 0.0, 1700.0, 1020.0, 0.0, 0.0, 0.0, 1.0, 0.0)
D = [-0.25, 0.08, 0.001, -0.0005, 0.0]


def info(binning=(0, 0), roi=(0, 0, 0, 0), width=2448, height=2048) -> SimpleNamespace:
    """A 2448x2048 Blackfly-style calibration with ``binning`` and ``roi`` (x_offset, y_offset, width, height)."""
    x_offset, y_offset, roi_width, roi_height = roi
    return SimpleNamespace(k=K, d=D, p=P, width=width, height=height, distortion_model="plumb_bob",
                           binning_x=binning[0], binning_y=binning[1],
                           roi=SimpleNamespace(x_offset=x_offset, y_offset=y_offset, width=roi_width,
                                               height=roi_height, do_rectify=False))


@pytest.mark.parametrize(
    ("binning", "roi", "expected"),
    [
        ((0, 0), (0, 0, 0, 0), Intrinsics(1800.0, 1790.0, 1224.5, 1023.5, 2448, 2048)),
        ((1, 1), (0, 0, 0, 0), Intrinsics(1800.0, 1790.0, 1224.5, 1023.5, 2448, 2048)),
        ((2, 2), (0, 0, 0, 0), Intrinsics(900.0, 895.0, 612.25, 511.75, 1224, 1024)),
        ((1, 2), (0, 0, 0, 0), Intrinsics(1800.0, 895.0, 1224.5, 511.75, 2448, 1024)),
        ((0, 0), (400, 300, 1600, 1200), Intrinsics(1800.0, 1790.0, 824.5, 723.5, 1600, 1200)),
        ((2, 2), (400, 300, 1600, 1200), Intrinsics(900.0, 895.0, 412.25, 361.75, 800, 600)),
        ((4, 4), (0, 0, 0, 0), Intrinsics(450.0, 447.5, 306.125, 255.875, 612, 512)),
    ],
)
def test_binning_and_roi_give_image_geometry_intrinsics(binning, roi, expected) -> None:
    camera = camera_from_info(info(binning, roi), expected.width, expected.height)
    assert camera.intrinsics == expected
    assert camera.d == tuple(D)  # raw image: the lens model applies to the image received, with the adjusted K
    assert camera_from_info(info(binning, roi)).intrinsics == expected  # without an image: the window's size


@pytest.mark.parametrize(
    ("binning", "roi", "expected"),
    [
        ((0, 0), (0, 0, 0, 0), Intrinsics(1700.0, 1700.0, 1230.0, 1020.0, 2448, 2048)),
        ((2, 2), (0, 0, 0, 0), Intrinsics(850.0, 850.0, 615.0, 510.0, 1224, 1024)),
        ((2, 1), (100, 50, 2000, 1800), Intrinsics(850.0, 1700.0, 565.0, 970.0, 1000, 1800)),
    ],
)
def test_a_rectified_image_takes_p_and_no_distortion(binning, roi, expected) -> None:
    camera = camera_from_info(info(binning, roi), expected.width, expected.height, rectified=True)
    assert camera.intrinsics == expected
    assert camera.d == () and not camera.has_distortion


def test_odd_roi_sizes_round_down_as_image_geometry() -> None:
    camera = camera_from_info(info((2, 2), (1, 1, 1001, 801)), 500, 400)
    assert camera.intrinsics == Intrinsics(900.0, 895.0, 611.75, 511.25, 500, 400)


@pytest.mark.parametrize(
    ("fields", "image_size", "message"),
    [
        ({"binning": (2, 2)}, (2448, 2048),
         "camera_info size 2448x2048 with binning 2x2 gives 1224x1024, which does not match image size 2448x2048"),
        ({"binning": (2, 2), "roi": (400, 300, 1600, 1200)}, (1224, 1024),
         "camera_info size 2448x2048 with binning 2x2 and roi 400,300 1600x1200 gives 800x600, which does not "
         "match image size 1224x1024"),
        ({}, (1224, 1024), "camera_info size 2448x2048 does not match image size 1224x1024"),
        ({"roi": (2000, 0, 1000, 2048)}, (1000, 2048),
         "camera_info.roi 2000,0 1000x2048 lies outside the calibrated image 2448x2048"),
        ({"binning": (-1, 1)}, None, "camera_info.binning_x = -1 must not be negative"),
        ({"binning": (1.5, 1)}, None, "camera_info.binning_x = 1.5 is not an integer"),
        ({"binning": (4096, 1)}, None, "camera_info with binning 4096x1 gives an empty image 0x2048"),
    ],
)  # fmt: skip
def test_windows_that_do_not_fit_are_one_line_rejections(fields, image_size, message) -> None:
    with pytest.raises(InvalidInputError) as error:
        camera_from_info(info(**fields), *(image_size or ()))
    assert str(error.value) == message


def test_rectified_needs_a_usable_p() -> None:
    no_p = SimpleNamespace(**{**vars(info()), "p": ()})
    with pytest.raises(InvalidInputError, match=r"^camera_info.p has 0 values, expected 12 .*camera is P$"):
        camera_from_info(no_p, 2448, 2048, rectified=True)
    zero_p = SimpleNamespace(**{**vars(info()), "p": (0.0,) * 12})
    with pytest.raises(InvalidInputError, match=r"^camera_info.p\[0\] \(fx\) = 0.0 must be positive and finite$"):
        camera_from_info(zero_p, 2448, 2048, rectified=True)


def test_ros1_spelling_of_p_is_read() -> None:
    ros1 = SimpleNamespace(K=K, D=D, P=P, width=2448, height=2048, distortion_model="plumb_bob", binning_x=2,
                           binning_y=2, roi=info().roi)
    assert camera_from_info(ros1, 1224, 1024, rectified=True).intrinsics == Intrinsics(850.0, 850.0, 615.0, 510.0,
                                                                                       1224, 1024)


@pytest.mark.parametrize(
    ("mode", "topic", "expected"),
    [
        ("auto", "/front/image_rect", True),
        ("auto", "/front/image_rect_color", True),
        ("auto", "image_rect", True),
        ("auto", "/front/image_rect/compressed", True),
        ("auto", "/front/image_raw", False),
        ("auto", "/front/image", False),
        ("auto", "/rect/image_raw", False),
        ("auto", "/front/image_rectified", False),
        ("true", "/front/image_raw", True),
        ("false", "/front/image_rect", False),
    ],
)
def test_the_one_rectified_rule(mode: str, topic: str, expected: bool) -> None:
    assert input_is_rectified(mode, topic) is expected


def test_the_rectified_rule_rejects_unknown_modes() -> None:
    with pytest.raises(InvalidInputError, match=r"^input_rectified = 'yes' must be one of auto, true, false$"):
        input_is_rectified("yes", "/image")

"""The message core without ROS: every output message's fields from host arrays, and their decoding back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.messages import (
    OUTPUT_ENCODINGS,
    OUTPUT_TOPICS,
    PointFieldSpec,
    RegionOfInterest,
    camera_info_fields,
    cloud_array,
    cloud_fields,
    image_array,
    image_fields,
)

LITTLE = sys.byteorder == "little"


def test_depth_image_fields_are_packed_float32_rows() -> None:
    depth = np.array([[1.5, np.nan, 3.0], [4.0, 5.0, 80.0]], dtype=np.float32)
    fields = image_fields(depth, "32FC1")
    assert (fields.height, fields.width, fields.encoding, fields.step) == (2, 3, "32FC1", 12)
    assert fields.is_bigendian is (not LITTLE)
    assert fields.data.dtype == np.uint8 and bytes(fields.data) == depth.tobytes()
    assert np.shares_memory(fields.data, depth)  # no copy until a wrapper copies it into its message
    np.testing.assert_array_equal(image_array(fields), depth)


@pytest.mark.parametrize(("encoding", "pixels", "step"), [
    ("mono8", np.arange(6, dtype=np.uint8).reshape(2, 3), 3),
    ("rgb8", np.arange(18, dtype=np.uint8).reshape(2, 3, 3), 9),
])
def test_byte_image_fields(encoding: str, pixels: np.ndarray, step: int) -> None:
    fields = image_fields(pixels, encoding)
    assert (fields.height, fields.width, fields.step, bytes(fields.data)) == (2, 3, step, pixels.tobytes())
    np.testing.assert_array_equal(image_array(fields), pixels)


@pytest.mark.parametrize(("pixels", "encoding", "error"), [
    (np.zeros((2, 3), np.float64), "32FC1", "cannot be published as 32FC1"),
    (np.zeros((2, 3, 3), np.uint8), "mono8", "cannot be published as mono8"),
    (np.zeros((2, 6, 3), np.uint8)[:, ::2], "rgb8", "cannot be published as rgb8"),  # not contiguous
    (np.zeros((2, 3), np.uint8), "bgr8", "output encoding 'bgr8' is not one of"),
])
def test_image_fields_refuse_arrays_that_do_not_fit_the_encoding(pixels: np.ndarray, encoding: str,
                                                                 error: str) -> None:
    with pytest.raises(InvalidInputError, match=error):
        image_fields(pixels, encoding)


def test_image_array_honours_a_padded_step_and_refuses_short_data() -> None:
    class Padded:
        height, width, encoding, step = 2, 2, "mono8", 4
        data = bytes([1, 2, 0, 0, 3, 4, 0, 0])

    np.testing.assert_array_equal(image_array(Padded), [[1, 2], [3, 4]])
    Padded.data = Padded.data[:-1]
    with pytest.raises(InvalidInputError, match="cannot hold 7 bytes"):
        image_array(Padded)


def test_cloud_fields_are_the_organised_xyzrgb_layout() -> None:
    points = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    points[0, 1, :3] = np.nan
    fields = cloud_fields(points)
    assert (fields.height, fields.width, fields.point_step, fields.row_step) == (2, 3, 16, 48)
    assert fields.fields == (PointFieldSpec("x", 0, 7, 1), PointFieldSpec("y", 4, 7, 1),
                             PointFieldSpec("z", 8, 7, 1), PointFieldSpec("rgb", 12, 7, 1))
    assert (fields.is_dense, fields.is_bigendian) == (False, not LITTLE)
    assert bytes(fields.data) == points.tobytes() and len(fields.data) == fields.height * fields.row_step
    np.testing.assert_array_equal(cloud_array(fields), points)
    with pytest.raises(InvalidInputError, match=r"are not an \(h, w, n\) float32 cloud"):
        cloud_fields(points[..., :3].copy())


def test_camera_info_fields_are_complete_for_an_undistorted_image() -> None:
    fields = camera_info_fields(Intrinsics(fx=150.0, fy=140.0, cx=79.5, cy=23.5, width=160, height=48))
    assert (fields.width, fields.height, fields.distortion_model) == (160, 48, "plumb_bob")
    assert fields.d == (0.0,) * 5
    assert fields.k == (150.0, 0.0, 79.5, 0.0, 140.0, 23.5, 0.0, 0.0, 1.0)
    assert fields.r == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    assert fields.p == (150.0, 0.0, 79.5, 0.0, 0.0, 140.0, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert (fields.binning_x, fields.binning_y, fields.roi) == (0, 0, RegionOfInterest(0, 0, 0, 0, False))


def test_output_tables_cover_every_output() -> None:
    assert list(OUTPUT_TOPICS) == ["depth", "depth_info", "points", "semantic", "semantic_color", "confidence",
                                   "depth_color"]
    assert set(OUTPUT_ENCODINGS) == set(OUTPUT_TOPICS) - {"depth_info", "points"}

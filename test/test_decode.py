"""Decoding and validation of raw and compressed camera images and of camera_info intrinsics."""

from __future__ import annotations

import array
import math
import struct

import cv2
import numpy as np
import pytest

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics, camera_from_fields
from semantic_depth_ros.messages.decode import (
    MAX_IMAGE_SIDE,
    SUPPORTED_ENCODINGS,
    compressed_image_size,
    decode_compressed_image,
    decode_raw_image,
)

HEIGHT, WIDTH = 3, 5


@pytest.fixture
def rgb() -> np.ndarray:
    """A 3x5 RGB image with distinct values in every channel."""
    return np.arange(HEIGHT * WIDTH * 3, dtype=np.uint8).reshape(HEIGHT, WIDTH, 3) * 3


def camera_intrinsics(k, width, height, image_width, image_height):
    """The intrinsics the one camera_info parser gives for loose CameraInfo fields."""
    return camera_from_fields(k, (), "", width, height, image_width, image_height).intrinsics


def _padded(pixels: np.ndarray, pad: int) -> tuple[int, bytes]:
    """(step, data) of ``pixels`` (HxWxC) with ``pad`` junk bytes at the end of every row."""
    rows = pixels.reshape(pixels.shape[0], -1)
    junk = np.full((rows.shape[0], pad), 0xEE, dtype=np.uint8)
    return rows.shape[1] + pad, np.concatenate((rows, junk), axis=1).tobytes()


# --- raw images ---------------------------------------------------------------------------------------------


def test_supported_encodings() -> None:
    assert SUPPORTED_ENCODINGS[:5] == ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")  # the rest: test_decode_encodings
    assert MAX_IMAGE_SIDE == 16384


def test_rgb8_is_a_zero_copy_view(rgb: np.ndarray) -> None:
    data = bytearray(rgb.tobytes())
    image = decode_raw_image("rgb8", HEIGHT, WIDTH, WIDTH * 3, data)
    assert image.shape == (HEIGHT, WIDTH, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, rgb)
    assert np.shares_memory(image, np.frombuffer(data, dtype=np.uint8))
    data[0] = 200  # the view sees changes to the message buffer
    assert image[0, 0, 0] == 200


def test_rgb8_from_rclpy_style_array(rgb: np.ndarray) -> None:
    data = array.array("B", rgb.tobytes())
    image = decode_raw_image("rgb8", HEIGHT, WIDTH, WIDTH * 3, data)
    np.testing.assert_array_equal(image, rgb)
    assert np.shares_memory(image, np.frombuffer(data, dtype=np.uint8))


def test_row_padding_is_skipped(rgb: np.ndarray) -> None:
    step, data = _padded(rgb, pad=3)
    image = decode_raw_image("rgb8", HEIGHT, WIDTH, step, memoryview(data))
    np.testing.assert_array_equal(image, rgb)
    assert np.shares_memory(image, np.frombuffer(data, dtype=np.uint8))


@pytest.mark.parametrize("pad", [0, 2])
def test_bgr8_is_reordered_to_rgb(rgb: np.ndarray, pad: int) -> None:
    step, data = _padded(np.ascontiguousarray(rgb[..., ::-1]), pad)
    image = decode_raw_image("bgr8", HEIGHT, WIDTH, step, data)
    np.testing.assert_array_equal(image, rgb)
    assert np.shares_memory(image, np.frombuffer(data, dtype=np.uint8))


def test_rgba8_and_bgra8_drop_alpha(rgb: np.ndarray) -> None:
    alpha = np.full((HEIGHT, WIDTH, 1), 99, dtype=np.uint8)
    rgba = np.concatenate((rgb, alpha), axis=2)
    bgra = np.concatenate((rgb[..., ::-1], alpha), axis=2)
    np.testing.assert_array_equal(decode_raw_image("rgba8", HEIGHT, WIDTH, WIDTH * 4, rgba.tobytes()), rgb)
    step, data = _padded(bgra, pad=4)
    np.testing.assert_array_equal(decode_raw_image("bgra8", HEIGHT, WIDTH, step, data), rgb)


def test_mono8_is_repeated_to_three_channels() -> None:
    grey = np.arange(HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH) * 11
    step, data = _padded(grey[..., None], pad=1)
    image = decode_raw_image("mono8", HEIGHT, WIDTH, step, data)
    assert image.shape == (HEIGHT, WIDTH, 3)
    np.testing.assert_array_equal(image, np.repeat(grey[..., None], 3, axis=2))
    assert np.ascontiguousarray(image).flags["C_CONTIGUOUS"]


def test_longer_data_than_needed_is_accepted(rgb: np.ndarray) -> None:
    image = decode_raw_image("rgb8", HEIGHT, WIDTH, WIDTH * 3, rgb.tobytes() + b"\x00" * 7)
    np.testing.assert_array_equal(image, rgb)


@pytest.mark.parametrize(
    ("encoding", "height", "width", "step", "data", "message"),
    [
        ("yuv444", 2, 2, 4, b"\x00" * 8, "image.encoding = 'yuv444' is not supported (supported: rgb8, bgr8, rgba8, "
         "bgra8, mono8, rgb16"),
        ("16UC1", 2, 2, 4, b"\x00" * 8, "image.encoding = '16UC1' is a generic OpenCV type with no colour order"),
        ("rgb8", 0, 2, 6, b"", "image.height = 0 is outside 1..16384"),
        ("rgb8", 2, 0, 6, b"", "image.width = 0 is outside 1..16384"),
        ("rgb8", 2, 16385, 49155, b"", "image.width = 16385 is outside 1..16384"),
        ("rgb8", 100000, 2, 6, b"", "image.height = 100000 is outside 1..16384"),
        ("bgr8", 1, 621, 10, b"\x00" * 1863, "image.step = 10 is smaller than width*3 bytes = 1863 for bgr8"),
        ("rgba8", 2, 3, 9, b"\x00" * 24, "image.step = 9 is smaller than width*4 bytes = 12 for rgba8"),
        ("rgb8", 2, 2, 6, b"\x00" * 11, "len(image.data) = 11 is smaller than height*step = 12"),
        # Huge declared sizes with tiny data fail on the length check, before anything is allocated.
        ("rgb8", 16384, 16384, 49152, b"\x00" * 3,
         "len(image.data) = 3 is smaller than height*step = 805306368"),
        ("rgb8", 2, 2, 6, [0] * 12, "image.data of type list is not a byte buffer"),
    ],
)  # fmt: skip
def test_bad_raw_images_name_the_field(
    encoding: str, height: int, width: int, step: int, data: object, message: str
) -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_raw_image(encoding, height, width, step, data)  # type: ignore[arg-type]
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


# --- compressed images --------------------------------------------------------------------------------------


def _encode(extension: str, rgb: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(extension, np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    return encoded.tobytes()


def _png_with_size(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring ``width`` x ``height`` (nothing else)."""
    ihdr = struct.pack(">II5B", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\x00" * 4


def _jpeg_with_size(width: int, height: int) -> bytes:
    """A JPEG SOI, an APP0 segment and a SOF0 header declaring ``width`` x ``height``."""
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof0 = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof0


def test_compressed_image_size_reads_headers() -> None:
    image = np.zeros((7, 13, 3), dtype=np.uint8)
    assert compressed_image_size(_encode(".png", image)) == (13, 7)
    assert compressed_image_size(_encode(".jpg", image)) == (13, 7)
    assert compressed_image_size(_png_with_size(40000, 3)) == (40000, 3)
    assert compressed_image_size(_jpeg_with_size(640, 65535)) == (640, 65535)
    # Fill bytes before a marker are allowed.
    assert compressed_image_size(b"\xff\xd8\xff" + _jpeg_with_size(9, 4)[2:]) == (9, 4)


@pytest.mark.parametrize("fmt", ["png", "rgb8; png compressed bgr8"])
def test_png_decodes_exactly(rgb: np.ndarray, fmt: str) -> None:
    image = decode_compressed_image(fmt, _encode(".png", rgb))
    assert image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(image, rgb)


@pytest.mark.parametrize("fmt", ["jpeg", "rgb8; jpeg compressed bgr8", "JPG"])
def test_jpeg_decodes_to_rgb(fmt: str) -> None:
    colour = np.zeros((16, 24, 3), dtype=np.uint8)
    colour[...] = (200, 30, 10)  # clearly red: channel order errors would show up as blue
    image = decode_compressed_image(fmt, array.array("B", _encode(".jpg", colour)))
    assert image.shape == (16, 24, 3)
    assert np.abs(image.astype(int) - colour).max() <= 4


def test_grey_png_becomes_three_channels() -> None:
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    ok, encoded = cv2.imencode(".png", grey)
    image = decode_compressed_image("mono8; png compressed mono8", encoded.tobytes())
    np.testing.assert_array_equal(image, np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("bmp", b"BM\x00\x00", "compressed_image.format = 'bmp' is not supported (jpeg or png)"),
        ("", b"\xff\xd8", "compressed_image.format = '' is not supported (jpeg or png)"),
        ("jpeg", b"GIF89a\x00\x00", "compressed_image.data starts with b'GIF89a\\x00\\x00', which is neither PNG"),
        ("png", _png_with_size(20000, 10), "compressed_image size 20000x10 (from its header) is outside 1..16384"),
        ("png", _png_with_size(0, 10), "compressed_image size 0x10 (from its header) is outside 1..16384"),
        ("jpeg", _jpeg_with_size(640, 65535), "compressed_image size 640x65535 (from its header) is outside"),
        ("jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF", "compressed_image.data is a JPEG without a frame header (SOF)"),
        ("jpeg", b"\xff\xd8\x00\x00\x00\x00", "compressed_image.data is a corrupt JPEG: no marker at byte 2"),
        ("png", b"\x89PNG\r\n\x1a\n\x00\x00", "compressed_image.data is a PNG without an IHDR chunk at byte 12"),
        ("png", _png_with_size(5, 3), "compressed_image.data ('png', 5x3) is corrupt and cannot be decoded"),
        ("jpeg", _jpeg_with_size(5, 3), "compressed_image.data ('jpeg', 5x3) is corrupt and cannot be decoded"),
    ],
)
def test_bad_compressed_images_name_the_problem(fmt: str, data: bytes, message: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_compressed_image(fmt, data)
    assert str(error.value).startswith(message)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(("fmt", "extension"), [("png", ".png"), ("jpeg", ".jpg")])
def test_truncated_data_is_rejected(fmt: str, extension: str) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    encoded = _encode(extension, noise)
    with pytest.raises(InvalidInputError, match=rf"compressed_image.data \('{fmt}', 32x32\) is corrupt"):
        decode_compressed_image(fmt, encoded[: len(encoded) // 2])


# --- camera_info --------------------------------------------------------------------------------------------

K = [500.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0]


def test_camera_info_gives_image_intrinsics() -> None:
    assert camera_intrinsics(K, 640, 480, 640, 480) == Intrinsics(500.0, 400.0, 320.0, 240.0, 640, 480)


def test_camera_info_without_size_means_image_size() -> None:
    assert camera_intrinsics(array.array("d", K), 0, 0, 1242, 375) == Intrinsics(
        500.0, 400.0, 320.0, 240.0, 1242, 375
    )


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (0, 0.0, "camera_info.k[0] (fx) = 0.0 must be positive and finite"),
        (0, -5.0, "camera_info.k[0] (fx) = -5.0 must be positive and finite"),
        (0, math.nan, "camera_info.k[0] (fx) = nan must be positive and finite"),
        (4, math.inf, "camera_info.k[4] (fy) = inf must be positive and finite"),
        (4, 0.0, "camera_info.k[4] (fy) = 0.0 must be positive and finite"),
        (2, math.nan, "camera_info.k[2] (cx) = nan must be finite"),
        (5, -math.inf, "camera_info.k[5] (cy) = -inf must be finite"),
    ],
)
def test_camera_info_rejects_bad_k(index: int, value: float, message: str) -> None:
    k = list(K)
    k[index] = value
    with pytest.raises(InvalidInputError) as error:
        camera_intrinsics(k, 640, 480, 640, 480)
    assert str(error.value) == message


def test_camera_info_rejects_wrong_k_length() -> None:
    with pytest.raises(InvalidInputError, match=r"^camera_info.k has 4 values, expected 9"):
        camera_intrinsics([1.0, 0.0, 0.0, 1.0], 640, 480, 640, 480)


@pytest.mark.parametrize(("width", "height"), [(1242, 375), (640, 0), (0, 480)])
def test_camera_info_size_must_match_image(width: int, height: int) -> None:
    with pytest.raises(InvalidInputError) as error:
        camera_intrinsics(K, width, height, 640, 480)
    assert str(error.value) == f"camera_info size {width}x{height} does not match image size 640x480"

"""Every raw encoding real camera drivers publish, decoded with cv_bridge's semantics (messages.decode_packed).

Images of known colours are encoded here by hand (mosaicked, YUV-packed, 16-bit, big-endian) so that each
mapping is pinned by what comes back, not by a table: a red, a green and a blue patch must come back red, green
and blue.
"""

from __future__ import annotations

import numpy as np
import pytest

from image_encodings import encode, message_bytes, mosaic, to_16, yuv422

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.messages.decode import SUPPORTED_ENCODINGS, decode_raw_image

PATCHES = ((220, 30, 30), (30, 220, 30), (30, 30, 220), (200, 200, 60))  # red, green, blue, yellow
PATCH = 6  # pixels per patch side (even, so that Bayer and 4:2:2 cells never straddle two patches)


def patches(rows: int = 2) -> np.ndarray:
    """``rows`` x 4 patches of ``PATCHES`` colours (uint8 HxWx3 RGB), each PATCH x PATCH pixels."""
    row = np.concatenate([np.broadcast_to(np.array(c, np.uint8), (PATCH, PATCH, 3)) for c in PATCHES], axis=1)
    return np.ascontiguousarray(np.concatenate([np.roll(row, PATCH * i, axis=1) for i in range(rows)], axis=0))


def patch_centres(rgb: np.ndarray) -> np.ndarray:
    """The mean colour of each patch's 2x2 centre (away from demosaicing's borders), (rows*4)x3 float."""
    centres = []
    for top in range(0, rgb.shape[0], PATCH):
        for left in range(0, rgb.shape[1], PATCH):
            middle = rgb[top + PATCH // 2 - 1: top + PATCH // 2 + 1, left + PATCH // 2 - 1: left + PATCH // 2 + 1]
            centres.append(middle.reshape(-1, 3).mean(axis=0))
    return np.array(centres)


def decode(encoding: str, samples: np.ndarray, width: int, pad: int = 0, bigendian: bool = False) -> np.ndarray:
    step, data = message_bytes(samples, pad, bigendian)
    return decode_raw_image(encoding, samples.shape[0], width, step, data, bigendian)


def test_the_supported_list_names_every_encoding_drivers_publish() -> None:
    bayer = [f"bayer_{p}{b}" for b in (8, 16) for p in ("rggb", "bggr", "gbrg", "grbg")]
    assert set(SUPPORTED_ENCODINGS) == {"rgb8", "bgr8", "rgba8", "bgra8", "mono8", "rgb16", "bgr16", "rgba16",
                                        "bgra16", "mono16", "yuv422", "yuv422_yuy2", *bayer}


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("pattern", ["rggb", "bggr", "gbrg", "grbg"])
@pytest.mark.parametrize("pad", [0, 6])
def test_bayer_patches_come_back_in_their_colours(pattern: str, bits: int, pad: int) -> None:
    rgb = patches()
    samples = mosaic(rgb if bits == 8 else to_16(rgb), pattern)
    image = decode(f"bayer_{pattern}{bits}", samples, rgb.shape[1], pad=pad)
    assert image.shape == rgb.shape and image.dtype == np.uint8
    # flat patches: bilinear demosaicing is exact away from the patch borders
    np.testing.assert_allclose(patch_centres(image), patch_centres(rgb), atol=1.0)
    # the whole image, borders included, stays close (mean error bound of demosaicing across sharp edges)
    assert np.abs(image.astype(float) - rgb).mean() < 40.0


def test_bayer_of_a_smooth_image_is_close_everywhere() -> None:
    yy, xx = np.mgrid[0:24, 0:32]
    rgb = np.stack([40 + 5 * xx, 60 + 6 * yy, 200 - 3 * xx - 2 * yy], axis=-1).astype(np.uint8)
    for pattern in ("rggb", "bggr", "gbrg", "grbg"):
        image = decode(f"bayer_{pattern}8", mosaic(rgb, pattern), 32)
        inner = (slice(2, -2), slice(2, -2))
        assert np.abs(image[inner].astype(float) - rgb[inner]).mean() < 1.5, pattern


@pytest.mark.parametrize("bigendian", [False, True])
@pytest.mark.parametrize(("encoding", "channels"), [("rgb16", "rgb"), ("bgr16", "bgr"), ("rgba16", "rgba"),
                                                    ("bgra16", "bgra")])
def test_16_bit_colour_is_exact(encoding: str, channels: str, bigendian: bool) -> None:
    rgb = patches()
    alpha = np.full(rgb.shape[:2], 77, np.uint8)
    planes = {"r": rgb[..., 0], "g": rgb[..., 1], "b": rgb[..., 2], "a": alpha}
    samples = to_16(np.stack([planes[c] for c in channels], axis=-1))
    np.testing.assert_array_equal(decode(encoding, samples, rgb.shape[1], pad=4, bigendian=bigendian), rgb)


@pytest.mark.parametrize("bigendian", [False, True])
def test_mono16_scales_as_cv_bridge(bigendian: bool) -> None:
    # cv_bridge: convertTo(255/65535), rounded: 128 -> 0, 129 -> 1, 257 -> 1, 65535 -> 255
    values = np.array([[0, 128, 129, 257, 32896, 65535]], np.uint16)
    image = decode("mono16", values, 6, bigendian=bigendian)
    expected = np.array([0, 0, 1, 1, 128, 255], np.uint8)
    np.testing.assert_array_equal(image, np.repeat(expected[None, :, None], 3, axis=2))


@pytest.mark.parametrize(("encoding", "order"), [("yuv422", "uyvy"), ("yuv422_yuy2", "yuyv")])
def test_yuv422_patches_come_back_in_their_colours(encoding: str, order: str) -> None:
    rgb = patches()
    image = decode(encoding, yuv422(rgb, order), rgb.shape[1], pad=2)
    assert image.shape == rgb.shape and image.dtype == np.uint8
    # chroma pairs never straddle a patch: exact up to the BT.601 rounding
    assert np.abs(image.astype(float) - rgb).max() <= 3.0


def test_yuv422_orders_are_not_interchangeable() -> None:
    rgb = patches()
    swapped = decode("yuv422", yuv422(rgb, "yuyv"), rgb.shape[1])
    assert np.abs(swapped.astype(float) - rgb).mean() > 40.0


@pytest.mark.parametrize(
    ("encoding", "message"),
    [
        ("8UC3", "image.encoding = '8UC3' is a generic OpenCV type with no colour order, which cv_bridge refuses"),
        ("16UC1", "image.encoding = '16UC1' is a generic OpenCV type with no colour order"),
        ("32FC1", "image.encoding = '32FC1' is a generic OpenCV type with no colour order"),
        ("8U", "image.encoding = '8U' is a generic OpenCV type with no colour order"),
        ("nv21", "image.encoding = 'nv21' is not supported (cv_bridge has no conversion for it) (supported: rgb8"),
        ("bayer_rggb32", "image.encoding = 'bayer_rggb32' is not supported (supported: rgb8"),
    ],
)
def test_encodings_without_a_colour_conversion_are_refused_in_one_line(encoding: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_raw_image(encoding, 2, 2, 8, b"\x00" * 64)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("encoding", "height", "width", "step", "size", "message"),
    [
        ("yuv422", 2, 3, 6, 12, "image.width = 3 is odd; yuv422 packs pixels in pairs"),
        ("yuv422_yuy2", 2, 5, 10, 20, "image.width = 5 is odd; yuv422_yuy2 packs pixels in pairs"),
        ("yuv422", 2, 4, 7, 14, "image.step = 7 is smaller than width*2 bytes = 8 for yuv422"),
        ("yuv422_yuy2", 2, 4, 8, 15, "len(image.data) = 15 is smaller than height*step = 16"),
        ("bayer_rggb8", 4, 4, 3, 16, "image.step = 3 is smaller than width*1 bytes = 4 for bayer_rggb8"),
        ("bayer_grbg8", 4, 4, 4, 15, "len(image.data) = 15 is smaller than height*step = 16"),
        ("bayer_bggr16", 4, 4, 8, 31, "len(image.data) = 31 is smaller than height*step = 32"),
        ("bayer_gbrg16", 4, 4, 9, 36, "image.step = 9 is not a multiple of 2 bytes (bayer_gbrg16)"),
        ("mono16", 2, 3, 5, 10, "image.step = 5 is smaller than width*2 bytes = 6 for mono16"),
        ("rgb16", 2, 2, 12, 23, "len(image.data) = 23 is smaller than height*step = 24"),
        ("bgra16", 2, 2, 15, 30, "image.step = 15 is smaller than width*8 bytes = 16 for bgra16"),
        ("rgba16", 16384, 16384, 131072, 8, "len(image.data) = 8 is smaller than height*step = 2147483648"),
    ],
)  # fmt: skip
def test_bad_packed_images_name_the_field(encoding: str, height: int, width: int, step: int, size: int,
                                          message: str) -> None:
    with pytest.raises(InvalidInputError) as error:
        decode_raw_image(encoding, height, width, step, b"\x00" * size)
    assert str(error.value) == message


@pytest.mark.parametrize("encoding", sorted(SUPPORTED_ENCODINGS))
def test_the_shared_test_encoder_round_trips_through_the_decoder(encoding: str) -> None:
    """What the node tests send (image_encodings.encode) decodes to what they compare with."""
    rgb = patches()
    image = decode(encoding, encode(rgb, encoding), rgb.shape[1])
    expected = rgb if not encoding.startswith("mono") else np.repeat(encode(rgb, "mono8")[..., None], 3, axis=2)
    if encoding.startswith("bayer"):  # demosaicing is exact inside flat patches, not across their edges
        np.testing.assert_allclose(patch_centres(image), patch_centres(expected), atol=1.0)
    else:
        assert np.abs(image.astype(float) - expected).max() <= (3.0 if "yuv" in encoding else 0.0)


@pytest.mark.parametrize("encoding", [e for e in SUPPORTED_ENCODINGS if e not in ("rgb8", "bgr8", "rgba8", "bgra8",
                                                                                   "mono8")])
def test_short_data_of_every_new_encoding_is_refused_before_decoding(encoding: str) -> None:
    step, data = message_bytes(encode(patches(), encoding))
    with pytest.raises(InvalidInputError) as error:
        decode_raw_image(encoding, 2 * PATCH, 4 * PATCH, step, data[:-1])
    assert str(error.value) == f"len(image.data) = {len(data) - 1} is smaller than height*step = {len(data)}"


def test_odd_sized_bayer_decodes_as_opencv_does() -> None:
    rgb = patches()[:11, :23]
    image = decode("bayer_rggb8", mosaic(rgb, "rggb"), 23)
    assert image.shape == (11, 23, 3)
    np.testing.assert_allclose(image[3, 3], PATCHES[0], atol=1.0)


def test_the_decode_benchmark_times_every_case(tmp_path, capsys) -> None:
    """`semantic-depth bench-decode` (figures in the README): one row per camera case, the same in its JSON."""
    import json

    from semantic_depth_ros.cli import run_command

    out = tmp_path / "decode.json"
    assert run_command("bench-decode", ["--iters", "1", "--warmup", "0", "--no-network", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["decode"]
    assert [(row["encoding"], row["size"]) for row in rows] == [
        ("bayer_rggb8", "2448x2048"), ("bayer_rggb16", "2448x2048"), ("yuv422_yuy2", "1920x1080"),
        ("rgb8", "1242x375")]
    assert all(row["p50_ms"] >= 0.0 and f"{row['encoding']}" in printed for row in rows)

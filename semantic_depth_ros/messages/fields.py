"""The fields of every output message, computed once from host arrays, without ROS.

The live node wraps these into rclpy messages (``ros.messages``) and offline replay into ``rosbags`` messages;
both take every field from here, so their outputs are byte-identical. Headers are not part of the fields: each
wrapper passes the input image's header through. ``data`` is a zero-copy uint8 view of the C-contiguous host
array (the wrapper copies it once into its message).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, Union

import numpy as np

from ..errors import InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..geometry.pointcloud import DEFAULT_POINT_FIELDS, POINT_LAYOUTS, check_point_fields

IS_BIGENDIAN = sys.byteorder == "big"
# encoding of a published image -> (numpy dtype, channels) of its pixels
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "32FC1": (np.dtype(np.float32), 1),
    "mono8": (np.dtype(np.uint8), 1),
    "rgb8": (np.dtype(np.uint8), 3),
}
DISTORTION_MODEL = "plumb_bob"
PLUMB_BOB_COEFFICIENTS = 5
IDENTITY_3X3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True, eq=False)
class ImageFields:
    """``sensor_msgs/Image`` without its header: ``height`` x ``width`` pixels, packed rows of ``step`` bytes."""

    height: int
    width: int
    encoding: str
    is_bigendian: bool
    step: int
    data: np.ndarray  # uint8, height * step bytes


class PointFieldSpec(NamedTuple):
    """One ``sensor_msgs/PointField``: name, byte offset in the point, datatype code, element count."""

    name: str
    offset: int
    datatype: int
    count: int


# point_fields layout name -> its PointFields (``geometry.pointcloud.POINT_LAYOUTS``)
CLOUD_LAYOUT_FIELDS: dict[str, tuple[PointFieldSpec, ...]] = {
    layout: tuple(PointFieldSpec(name, offset, datatype, 1) for name, offset, datatype in fields)
    for layout, fields in POINT_LAYOUTS.items()}
CLOUD_FIELDS: tuple[PointFieldSpec, ...] = CLOUD_LAYOUT_FIELDS[DEFAULT_POINT_FIELDS]
# number of 4-byte fields per point -> layout name (each layout has its own count)
_LAYOUT_BY_WIDTH: dict[int, str] = {len(fields): layout for layout, fields in POINT_LAYOUTS.items()}


@dataclass(frozen=True, eq=False)
class CloudFields:
    """``sensor_msgs/PointCloud2`` without its header: organised ``height`` x ``width`` points (NaN = invalid)."""

    height: int
    width: int
    fields: tuple[PointFieldSpec, ...]
    is_bigendian: bool
    point_step: int
    row_step: int
    data: np.ndarray  # uint8, height * row_step bytes
    is_dense: bool


@dataclass(frozen=True)
class RegionOfInterest:
    """``sensor_msgs/RegionOfInterest``; all zeros means the full image."""

    x_offset: int = 0
    y_offset: int = 0
    height: int = 0
    width: int = 0
    do_rectify: bool = False


@dataclass(frozen=True)
class CameraInfoFields:
    """``sensor_msgs/CameraInfo`` without its header (K, R, P row-major; D of ``distortion_model``)."""

    height: int
    width: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    binning_x: int = 0
    binning_y: int = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


OutputFields = Union[ImageFields, CloudFields, CameraInfoFields]


def _bytes_view(array: np.ndarray) -> np.ndarray:
    """The bytes of a C-contiguous array as a flat uint8 view (no copy)."""
    return array.reshape(-1).view(np.uint8)


def image_fields(pixels: np.ndarray, encoding: str) -> ImageFields:
    """HxW (``32FC1`` float32, ``mono8`` uint8) or HxWx3 (``rgb8`` uint8) C-contiguous host array -> fields.

    Raises InvalidInputError for an unknown encoding or an array that does not have its dtype and shape.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise InvalidInputError(f"output encoding {encoding!r} is not one of {', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    dims = 2 if channels == 1 else 3
    if (pixels.dtype != dtype or pixels.ndim != dims or (channels > 1 and pixels.shape[2] != channels)
            or not pixels.flags.c_contiguous):
        raise InvalidInputError(f"array {pixels.dtype} of shape {pixels.shape} cannot be published as {encoding}")
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    return ImageFields(height=height, width=width, encoding=encoding, is_bigendian=IS_BIGENDIAN,
                       step=width * channels * pixels.itemsize, data=_bytes_view(pixels))


def cloud_fields(points: np.ndarray, point_fields: str | None = None) -> CloudFields:
    """``(h, w, n)`` float32 host array from ``backproject_organised`` -> organised cloud fields.

    ``point_fields``: the layout (``xyzrgb`` n = 4, ``xyzrgbl`` n = 5, ``xyzrgblc`` n = 6); None takes it from n.
    """
    expected = None if point_fields is None else len(check_point_fields(point_fields))
    if (points.dtype != np.float32 or points.ndim != 3 or points.shape[2] not in _LAYOUT_BY_WIDTH
            or expected not in (None, points.shape[2]) or not points.flags.c_contiguous):
        wanted = "n" if expected is None else expected
        raise InvalidInputError(f"points {points.dtype} of shape {points.shape} are not an (h, w, {wanted}) "
                                f"float32 cloud")
    layout = point_fields or _LAYOUT_BY_WIDTH[points.shape[2]]
    height, width, step = int(points.shape[0]), int(points.shape[1]), 4 * int(points.shape[2])
    return CloudFields(height=height, width=width, fields=CLOUD_LAYOUT_FIELDS[layout], is_bigendian=IS_BIGENDIAN,
                       point_step=step, row_step=width * step, data=_bytes_view(points), is_dense=False)


def camera_info_fields(intrinsics: Intrinsics) -> CameraInfoFields:
    """CameraInfo of an undistorted (pinhole) image with ``intrinsics``: K, P = [K | 0], R = I, D = 0."""
    return CameraInfoFields(height=intrinsics.height, width=intrinsics.width, distortion_model=DISTORTION_MODEL,
                            d=(0.0,) * PLUMB_BOB_COEFFICIENTS, k=intrinsics.k(), r=IDENTITY_3X3, p=intrinsics.p())


class ImageLike(Protocol):
    """Any Image message (rclpy or rosbags) or ``ImageFields``."""

    height: int
    width: int
    encoding: str
    step: int
    data: object


class CloudLike(Protocol):
    """Any PointCloud2 message (rclpy or rosbags) or ``CloudFields`` in our layouts."""

    height: int
    width: int
    point_step: int
    row_step: int
    data: object


def image_array(msg: ImageLike) -> np.ndarray:
    """A published image (32FC1, mono8, rgb8) -> numpy copy, HxW or HxWx3; InvalidInputError if inconsistent."""
    if msg.encoding not in IMAGE_ENCODINGS:
        raise InvalidInputError(f"image encoding {msg.encoding!r} is not one of {', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.step < row_bytes or data.size != msg.height * msg.step:
        raise InvalidInputError(f"image of {msg.width}x{msg.height} {msg.encoding} with step {msg.step} cannot hold "
                                f"{data.size} bytes")
    pixels = data.reshape(msg.height, msg.step)[:, :row_bytes].copy().view(dtype)
    return pixels.reshape(msg.height, msg.width, channels) if channels > 1 else pixels.reshape(msg.height, msg.width)


def cloud_array(msg: CloudLike) -> np.ndarray:
    """An organised cloud in one of our layouts (point_step 16, 20 or 24) -> ``(h, w, n)`` float32 copy.

    ``label`` values are the uint32 bits of column 4: ``cloud_array(msg)[..., 4].view(np.uint32)``.
    """
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    step = int(getattr(msg, "point_step", msg.row_step // max(msg.width, 1)))
    if step % 4 or step // 4 not in _LAYOUT_BY_WIDTH or msg.row_step != msg.width * step \
            or data.size != msg.height * msg.row_step:
        raise InvalidInputError(f"cloud of {msg.width}x{msg.height} points, point_step {step}, row_step "
                                f"{msg.row_step}, {data.size} bytes is not in an x y z rgb [label [confidence]] "
                                f"layout")
    return data.view("<f4").reshape(msg.height, msg.width, step // 4).copy()

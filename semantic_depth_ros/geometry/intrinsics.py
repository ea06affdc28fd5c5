"""Pinhole camera intrinsics and the one place where they change with image size.

Conventions: all values are in pixels; pixel ``(u, v)`` has its centre at integer coordinates, so an image of width
``w`` spans ``[-0.5, w - 0.5]``. Under that convention resizing by a factor ``s`` maps a coordinate ``x`` to
``(x + 0.5) * s - 0.5`` (the same rule ``cv2.resize`` and ``torch.nn.functional.interpolate(align_corners=False)``
use), and pasting the resized image at ``offset`` pixels (padding: positive, cropping: negative) adds ``offset``.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from semantic_depth_ros.errors import InvalidInputError


def _positive_finite(name: str, value: float) -> float:
    """Return ``value`` as float, or raise naming ``name`` if it is not a positive finite number."""
    number = _finite(name, value)
    if number <= 0.0:
        raise InvalidInputError(f"intrinsics.{name} = {value!r} must be positive and finite")
    return number


def _finite(name: str, value: float) -> float:
    """Return ``value`` as float, or raise naming ``name`` if it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"intrinsics.{name} = {value!r} is not a number") from None
    if not math.isfinite(number):
        raise InvalidInputError(f"intrinsics.{name} = {value!r} must be finite")
    return number


def _size(name: str, value: int) -> int:
    """Return ``value`` as int, or raise naming ``name`` if it is not an integer >= 1."""
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidInputError(f"intrinsics.{name} = {value!r} is not an integer") from None
    if number < 1:
        raise InvalidInputError(f"intrinsics.{name} = {number} must be at least 1")
    return number


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels (focal lengths and principal point in pixels).

    Construction validates every field (``InvalidInputError`` naming the field): ``fx``/``fy`` positive and finite,
    ``cx``/``cy`` finite, ``width``/``height`` integers >= 1. Instances are hashable and usable as cache keys.
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "fx", _positive_finite("fx", self.fx))
        object.__setattr__(self, "fy", _positive_finite("fy", self.fy))
        object.__setattr__(self, "cx", _finite("cx", self.cx))
        object.__setattr__(self, "cy", _finite("cy", self.cy))
        object.__setattr__(self, "width", _size("width", self.width))
        object.__setattr__(self, "height", _size("height", self.height))

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> "Intrinsics":
        """Build from a row-major 3x3 camera matrix ``k`` (9 values, as in ``sensor_msgs/CameraInfo.k``)."""
        values = list(k)
        if len(values) != 9:
            raise InvalidInputError(f"intrinsics.k has {len(values)} values, expected 9 (row-major 3x3)")
        return cls(fx=values[0], fy=values[4], cx=values[2], cy=values[5], width=width, height=height)

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K as float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=np.float64)

    def k(self) -> tuple[float, ...]:
        """K as 9 row-major floats (``sensor_msgs/CameraInfo.k``)."""
        return (self.fx, 0.0, self.cx, 0.0, self.fy, self.cy, 0.0, 0.0, 1.0)

    def p(self) -> tuple[float, ...]:
        """Projection matrix P = [K | 0] as 12 row-major floats (``sensor_msgs/CameraInfo.p``, monocular)."""
        return (self.fx, 0.0, self.cx, 0.0, 0.0, self.fy, self.cy, 0.0, 0.0, 0.0, 1.0, 0.0)


def transform_intrinsics(
    intr: Intrinsics,
    scale: float | tuple[float, float],
    offset_x: float,
    offset_y: float,
    new_width: int,
    new_height: int,
) -> Intrinsics:
    """Intrinsics after resizing an image by ``scale`` and then placing it at ``(offset_x, offset_y)`` in a
    ``new_width`` x ``new_height`` canvas.

    ``scale`` is one factor for both axes or ``(scale_x, scale_y)``. The offsets are in pixels of the new image:
    positive for padding on the left/top, negative for cropping. Pixel-centre convention (module docstring):
    ``fx' = fx * sx``, ``cx' = (cx + 0.5) * sx - 0.5 + offset_x`` and likewise for y.
    """
    if isinstance(scale, (tuple, list)):
        scale_x, scale_y = scale
    else:
        scale_x = scale_y = scale
    scale_x = _positive_finite("scale_x", scale_x)
    scale_y = _positive_finite("scale_y", scale_y)
    return Intrinsics(
        fx=intr.fx * scale_x,
        fy=intr.fy * scale_y,
        cx=(intr.cx + 0.5) * scale_x - 0.5 + _finite("offset_x", offset_x),
        cy=(intr.cy + 0.5) * scale_y - 0.5 + _finite("offset_y", offset_y),
        width=new_width,
        height=new_height,
    )


def scale_intrinsics(intr: Intrinsics, new_width: int, new_height: int) -> Intrinsics:
    """Intrinsics of the image resized (stretched) to ``new_width`` x ``new_height``; THE function for resizing."""
    new_width = _size("width", new_width)
    new_height = _size("height", new_height)
    return transform_intrinsics(
        intr, (new_width / intr.width, new_height / intr.height), 0.0, 0.0, new_width, new_height
    )


@dataclass(frozen=True)
class CameraModel:
    """The lens model of a ``sensor_msgs/CameraInfo``: pinhole ``intrinsics``, the ``distortion_model`` name
    (e.g. ``"plumb_bob"``, empty when unset) and its coefficients ``d``. Nothing here undistorts an image."""

    intrinsics: Intrinsics
    distortion_model: str
    d: tuple[float, ...]

    @property
    def has_distortion(self) -> bool:
        """Whether any distortion coefficient is non-zero (the image is then not rectified for this K)."""
        return any(value != 0.0 for value in self.d)


def _camera_info_field(msg: Any, name: str) -> Any:
    """Field ``name`` of a ROS 2 CameraInfo (``k``, ``d``) or its ROS 1 spelling (``K``, ``D``)."""
    if hasattr(msg, name):
        return getattr(msg, name)
    if hasattr(msg, name.upper()):
        return getattr(msg, name.upper())
    raise InvalidInputError(f"camera_info has no field {name!r} ({type(msg).__name__} is not a CameraInfo)")


def _camera_info_k(k: Sequence[float], index: int, name: str, positive: bool) -> float:
    """``k[index]`` as float; raise naming ``camera_info.k[index] (name)`` if non-finite (or non-positive)."""
    value = float(k[index])
    if not math.isfinite(value) or (positive and value <= 0.0):
        requirement = "positive and finite" if positive else "finite"
        raise InvalidInputError(f"camera_info.k[{index}] ({name}) = {value!r} must be {requirement}")
    return value


def camera_from_fields(
    k: Sequence[float], d: Sequence[float], distortion_model: str, width: int, height: int,
    image_width: int | None = None, image_height: int | None = None,
) -> CameraModel:
    """THE camera_info parser: ``CameraInfo`` fields -> validated :class:`CameraModel` (one-line
    ``InvalidInputError`` naming the field and value).

    ``k`` is the row-major 3x3 camera matrix (9 values), ``d`` the distortion coefficients. With an image size, a
    camera_info size of 0x0 (left unset by some drivers) means "same as the image" and any other size must equal
    the image's; without one, the camera_info size must be at least 1x1.
    """
    k = list(k)
    if len(k) != 9:
        raise InvalidInputError(f"camera_info.k has {len(k)} values, expected 9 (row-major 3x3)")
    fx = _camera_info_k(k, 0, "fx", positive=True)
    fy = _camera_info_k(k, 4, "fy", positive=True)
    cx = _camera_info_k(k, 2, "cx", positive=False)
    cy = _camera_info_k(k, 5, "cy", positive=False)
    width, height = int(width), int(height)
    if image_width is not None and image_height is not None:
        if (width, height) != (0, 0) and (width, height) != (image_width, image_height):
            raise InvalidInputError(
                f"camera_info size {width}x{height} does not match image size {image_width}x{image_height}"
            )
        width, height = image_width, image_height
    elif width < 1 or height < 1:
        raise InvalidInputError(f"camera_info size {width}x{height} must be at least 1x1")
    coefficients = tuple(float(value) for value in d)
    if not all(math.isfinite(value) for value in coefficients):
        raise InvalidInputError(f"camera_info.d = {list(coefficients)} must be finite")
    if not isinstance(distortion_model, str):
        raise InvalidInputError(f"camera_info.distortion_model = {distortion_model!r} is not a string")
    intrinsics = Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
    return CameraModel(intrinsics=intrinsics, distortion_model=distortion_model, d=coefficients)


def camera_from_info(msg: Any, image_width: int | None = None, image_height: int | None = None) -> CameraModel:
    """:func:`camera_from_fields` of any CameraInfo-like object with ``k`` (or ``K``), ``d`` (or ``D``),
    ``width``, ``height`` and ``distortion_model``: rclpy messages, rosbags ROS 1 and ROS 2 messages alike."""
    return camera_from_fields(
        _camera_info_field(msg, "k"), _camera_info_field(msg, "d"), getattr(msg, "distortion_model", ""),
        msg.width, msg.height, image_width, image_height,
    )

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


def _integer(label: str, value: int, minimum: int) -> int:
    """Return ``value`` as int, or raise naming ``label`` if it is not an integer >= ``minimum``."""
    try:
        number = operator.index(value)
    except TypeError:
        raise InvalidInputError(f"{label} = {value!r} is not an integer") from None
    if number < minimum:
        bound = "must not be negative" if minimum == 0 else f"must be at least {minimum}"
        raise InvalidInputError(f"{label} = {number} {bound}")
    return number


def _size(name: str, value: int) -> int:
    """Return ``value`` as int, or raise naming ``intrinsics.<name>`` if it is not an integer >= 1."""
    return _integer(f"intrinsics.{name}", value, 1)


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


def _camera_info_entry(values: Sequence[float], index: int, field: str, name: str, positive: bool) -> float:
    """``values[index]`` as float; raise naming ``camera_info.<field>[index] (name)`` if non-finite (or
    non-positive)."""
    value = float(values[index])
    if not math.isfinite(value) or (positive and value <= 0.0):
        requirement = "positive and finite" if positive else "finite"
        raise InvalidInputError(f"camera_info.{field}[{index}] ({name}) = {value!r} must be {requirement}")
    return value


RECTIFIED_TOPIC_NAMES = ("image_rect", "image_rect_color")
"""Last names of image_proc's rectified image topics: ``input_rectified: auto`` takes these as rectified."""
INPUT_RECTIFIED_CHOICES = ("auto", "true", "false")


def input_is_rectified(mode: str, topic: str) -> bool:
    """THE rule for "this image is already rectified" (node, ``infer-bag`` and ``extract``): ``mode`` "true" or
    "false" decides; "auto" is true when the image topic's (resolved) name ends in one of
    ``RECTIFIED_TOPIC_NAMES`` (a trailing ``/compressed`` transport suffix aside)."""
    if mode not in INPUT_RECTIFIED_CHOICES:
        raise InvalidInputError(f"input_rectified = {mode!r} must be one of {', '.join(INPUT_RECTIFIED_CHOICES)}")
    if mode != "auto":
        return mode == "true"
    parts = [part for part in topic.split("/") if part]
    if parts and parts[-1] == "compressed":
        parts.pop()
    return bool(parts) and parts[-1] in RECTIFIED_TOPIC_NAMES


@dataclass(frozen=True)
class SensorWindow:
    """REP 104 binning and region of interest of a ``CameraInfo`` (image_geometry's reading): binning 0 means 1;
    an all-zero ROI means the full calibrated image. ROI in full-resolution pixels, before binning."""

    binning_x: int = 0
    binning_y: int = 0
    x_offset: int = 0
    y_offset: int = 0
    roi_width: int = 0
    roi_height: int = 0

    @property
    def is_full(self) -> bool:
        """No binning and no ROI: the calibration describes the image as it is."""
        return max(self.binning_x, 1) == max(self.binning_y, 1) == 1 and not self.has_roi

    @property
    def has_roi(self) -> bool:
        """Whether an ROI is set (all zero: none)."""
        return (self.x_offset, self.y_offset, self.roi_width, self.roi_height) != (0, 0, 0, 0)

    def image_size(self, width: int, height: int) -> tuple[int, int]:
        """Size of the image this window gives on a ``width`` x ``height`` calibration (image_geometry's
        ``reducedResolution``: ROI size divided by the binning, rounded down)."""
        roi_width, roi_height = self._roi(width, height)[2:]
        return roi_width // max(self.binning_x, 1), roi_height // max(self.binning_y, 1)

    def _roi(self, width: int, height: int) -> tuple[int, int, int, int]:
        if not self.has_roi:
            return 0, 0, width, height
        return self.x_offset, self.y_offset, self.roi_width, self.roi_height

    def apply(self, fx: float, fy: float, cx: float, cy: float) -> tuple[float, float, float, float]:
        """Full-resolution intrinsics -> those of the received image, as image_geometry's
        ``PinholeCameraModel::fromCameraInfo``: shift the principal point by the ROI offset, then divide focal
        lengths and principal point by the binning (``cx' = (cx - x_offset) / binning_x``)."""
        bx, by = max(self.binning_x, 1), max(self.binning_y, 1)
        return fx / bx, fy / by, (cx - self.x_offset) / bx, (cy - self.y_offset) / by

    def describe(self) -> str:
        """``" with binning 2x2 and roi 8,4 100x60"`` (empty for the full window), for error messages."""
        parts = []
        if max(self.binning_x, 1) > 1 or max(self.binning_y, 1) > 1:
            parts.append(f"binning {max(self.binning_x, 1)}x{max(self.binning_y, 1)}")
        if self.has_roi:
            parts.append(f"roi {self.x_offset},{self.y_offset} {self.roi_width}x{self.roi_height}")
        return f" with {' and '.join(parts)}" if parts else ""


def _window_of(binning: tuple[int, int], roi: tuple[int, int, int, int], width: int, height: int) -> SensorWindow:
    """Validated :class:`SensorWindow` (one-line InvalidInputError naming the field)."""
    names = ("binning_x", "binning_y", "roi.x_offset", "roi.y_offset", "roi.width", "roi.height")
    window = SensorWindow(*(_integer(f"camera_info.{name}", value, 0) for name, value in zip(names, (*binning, *roi))))
    x_offset, y_offset, roi_width, roi_height = window._roi(width, height)
    if (width, height) != (0, 0) and (x_offset + roi_width > width or y_offset + roi_height > height):
        raise InvalidInputError(f"camera_info.roi {x_offset},{y_offset} {roi_width}x{roi_height} lies outside the "
                                f"calibrated image {width}x{height}")
    return window


def camera_from_fields(
    k: Sequence[float], d: Sequence[float], distortion_model: str, width: int, height: int,
    image_width: int | None = None, image_height: int | None = None, *,
    p: Sequence[float] | None = None, binning: tuple[int, int] = (0, 0), roi: tuple[int, int, int, int] = (0, 0, 0, 0),
    rectified: bool = False,
) -> CameraModel:
    """THE camera_info parser: ``CameraInfo`` fields -> validated :class:`CameraModel` of the image received
    (one-line ``InvalidInputError`` naming the field and value).

    ``k`` is the row-major 3x3 camera matrix (9 values), ``d`` the distortion coefficients, ``p`` the 3x4
    projection matrix (12 values). ``rectified``: the image is already rectified (``input_is_rectified``), so its
    camera is P's (fx = P[0], fy = P[5], cx = P[2], cy = P[6]) and D is ignored; else K and D. REP 104 binning
    ``(binning_x, binning_y)`` and ``roi`` ``(x_offset, y_offset, width, height)`` apply as image_geometry applies
    them (``SensorWindow.apply``). With an image size, the calibration's size (0x0, left unset by some drivers,
    means "the image's"), binned and cropped, must equal the image's; without one, it must be at least 1x1.
    """
    width, height = int(width), int(height)
    window = _window_of(binning, roi, width, height)
    if rectified:
        field, values, indices = "p", list(p if p is not None else ()), (0, 5, 2, 6)
        if len(values) != 12:
            raise InvalidInputError(f"camera_info.p has {len(values)} values, expected 12 (row-major 3x4): a "
                                    "rectified image's camera is P")
    else:
        field, values, indices = "k", list(k), (0, 4, 2, 5)
        if len(values) != 9:
            raise InvalidInputError(f"camera_info.k has {len(values)} values, expected 9 (row-major 3x3)")
    fx, fy, cx, cy = window.apply(*(
        _camera_info_entry(values, index, field, name, positive=name in ("fx", "fy"))
        for index, name in zip(indices, ("fx", "fy", "cx", "cy"))))
    if image_width is not None and image_height is not None:
        if (width, height) != (0, 0):
            expected = window.image_size(width, height)
            if expected != (image_width, image_height):
                given = f"{width}x{height}{window.describe()}"
                gives = f" gives {expected[0]}x{expected[1]}, which" if not window.is_full else ""
                raise InvalidInputError(f"camera_info size {given}{gives} does not match image size "
                                        f"{image_width}x{image_height}")
        width, height = image_width, image_height
    else:
        if width < 1 or height < 1:
            raise InvalidInputError(f"camera_info size {width}x{height} must be at least 1x1")
        width, height = window.image_size(width, height)
        if width < 1 or height < 1:
            raise InvalidInputError(f"camera_info{window.describe()} gives an empty image {width}x{height}")
    coefficients = () if rectified else tuple(float(value) for value in d)
    if not all(math.isfinite(value) for value in coefficients):
        raise InvalidInputError(f"camera_info.d = {list(coefficients)} must be finite")
    if not isinstance(distortion_model, str):
        raise InvalidInputError(f"camera_info.distortion_model = {distortion_model!r} is not a string")
    intrinsics = Intrinsics(fx=fx, fy=fy, cx=cx, cy=cy, width=width, height=height)
    return CameraModel(intrinsics=intrinsics, distortion_model=distortion_model, d=coefficients)


def camera_from_info(msg: Any, image_width: int | None = None, image_height: int | None = None, *,
                     rectified: bool = False) -> CameraModel:
    """:func:`camera_from_fields` of any CameraInfo-like object with ``k`` (or ``K``), ``d`` (or ``D``), ``p`` (or
    ``P``), ``width``, ``height``, ``distortion_model``, ``binning_x``/``binning_y`` and ``roi`` (the last three
    optional): rclpy messages, rosbags ROS 1 and ROS 2 messages alike."""
    roi = getattr(msg, "roi", None)
    roi_fields = (0, 0, 0, 0) if roi is None else (roi.x_offset, roi.y_offset, roi.width, roi.height)
    p = getattr(msg, "p", getattr(msg, "P", None))
    return camera_from_fields(
        _camera_info_field(msg, "k"), _camera_info_field(msg, "d"), getattr(msg, "distortion_model", ""),
        msg.width, msg.height, image_width, image_height, p=p,
        binning=(getattr(msg, "binning_x", 0), getattr(msg, "binning_y", 0)), roi=roi_fields, rectified=rectified,
    )

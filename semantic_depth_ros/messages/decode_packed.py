"""The ``sensor_msgs/Image`` encodings and their conversion to 8-bit RGB, with cv_bridge's semantics.

Read from ros-perception/vision_opencv ``cv_bridge/src/cv_bridge.cpp`` (``getConversionCodes``, ``matFromImage``,
``toCvCopyImpl``): Bayer is demosaiced with OpenCV's bilinear ``COLOR_Bayer*2RGB``, whose pattern name is that of the
second row's second and third pixels, so ROS ``bayer_rggb`` is OpenCV ``BayerBG`` (``bggr`` -> ``BayerRG``, ``gbrg``
-> ``BayerGR``, ``grbg`` -> ``BayerGB``); ``yuv422`` is UYVY and ``yuv422_yuy2`` is YUYV, converted with OpenCV's
``COLOR_YUV2RGB_UYVY`` / ``_YUY2``; 16-bit samples become 8-bit scaled by 255/65535 and rounded (``convertTo``; for
Bayer before demosaicing, not after: see ``_cvt``); big-endian 16-bit data is byte-swapped first. The generic
``8UC3``-style encodings carry no channel order, and cv_bridge refuses to convert them to a colour encoding: so do we.
cv_bridge has no conversion for ``nv21``/``nv24`` (sensor_msgs names them), so they are refused too.

Converters take the message's pixels as an HxWxC array of native-endian uint8/uint16 samples (a view of the
message, possibly with row padding) and return uint8 HxWx3 RGB: a view where no arithmetic is needed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError


@dataclass(frozen=True)
class Layout:
    """How an encoding lays out one pixel: ``channels`` samples of ``sample_bytes`` bytes each (YUV 4:2:2: two
    bytes per pixel, one pixel pair per macropixel, hence ``even_width``)."""

    channels: int
    sample_bytes: int
    even_width: bool = False

    @property
    def pixel_bytes(self) -> int:
        """Bytes per pixel in a row."""
        return self.channels * self.sample_bytes


Converter = Callable[[np.ndarray], np.ndarray]


def _to_8bit(samples: np.ndarray) -> np.ndarray:
    """uint16 -> uint8 as cv_bridge's ``convertTo(..., 255. / 65535.)`` (rounded, saturated); uint8 unchanged."""
    if samples.dtype == np.uint8:
        return samples
    return cv2.convertScaleAbs(samples, alpha=255.0 / 65535.0)


def _picked(reverse: bool) -> Converter:
    """RGB(A) (``reverse`` False) or BGR(A) pixels -> RGB: a view for 8 bits, scaled (a copy) for 16 bits."""
    def convert(pixels: np.ndarray) -> np.ndarray:
        rgb = pixels[..., 2::-1] if reverse else pixels[..., :3]
        return _to_8bit(np.ascontiguousarray(rgb)) if rgb.dtype == np.uint16 else rgb
    return convert


def _mono(pixels: np.ndarray) -> np.ndarray:
    """HxWx1 grey -> HxWx3 (a broadcast view of the 8-bit grey: three equal channels, as ``GRAY2RGB``)."""
    grey = _to_8bit(pixels[..., 0])
    return np.broadcast_to(grey[..., None], (*grey.shape, 3))


def _cvt(code: int) -> Converter:
    """Converter scaling the message's samples to 8 bits, then running ``cv2.cvtColor(..., code)``.

    cv_bridge demosaics 16-bit Bayer first and scales after; scaling first gives the same colours within one grey
    level (measured on random 2448x2048 mosaics: max 1, mean 0.13) for a third of the time, since OpenCV's 16-bit
    demosaicing is about three times slower than its 8-bit one."""
    def convert(pixels: np.ndarray) -> np.ndarray:
        source = pixels[..., 0] if pixels.shape[2] == 1 else pixels
        return cv2.cvtColor(_to_8bit(source), code)
    return convert


# ROS Bayer name -> OpenCV code, as cv_bridge maps them (module docstring); pinned by colour-patch tests.
_BAYER_CODES = {"rggb": cv2.COLOR_BayerBG2RGB, "bggr": cv2.COLOR_BayerRG2RGB,
                "gbrg": cv2.COLOR_BayerGR2RGB, "grbg": cv2.COLOR_BayerGB2RGB}

ENCODINGS: dict[str, tuple[Layout, Converter]] = {
    "rgb8": (Layout(3, 1), _picked(reverse=False)),
    "bgr8": (Layout(3, 1), _picked(reverse=True)),
    "rgba8": (Layout(4, 1), _picked(reverse=False)),
    "bgra8": (Layout(4, 1), _picked(reverse=True)),
    "mono8": (Layout(1, 1), _mono),
    "rgb16": (Layout(3, 2), _picked(reverse=False)),
    "bgr16": (Layout(3, 2), _picked(reverse=True)),
    "rgba16": (Layout(4, 2), _picked(reverse=False)),
    "bgra16": (Layout(4, 2), _picked(reverse=True)),
    "mono16": (Layout(1, 2), _mono),
    **{f"bayer_{pattern}{bits}": (Layout(1, bits // 8), _cvt(code))
       for bits in (8, 16) for pattern, code in _BAYER_CODES.items()},
    "yuv422": (Layout(2, 1, even_width=True), _cvt(cv2.COLOR_YUV2RGB_UYVY)),
    "yuv422_yuy2": (Layout(2, 1, even_width=True), _cvt(cv2.COLOR_YUV2RGB_YUY2)),
}
SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(ENCODINGS)

_GENERIC = re.compile(r"(8U|8S|16U|16S|32S|32F|64F)(C[0-9]+)?")


def encoding_layout(encoding: str) -> tuple[Layout, Converter]:
    """The layout and converter of ``encoding``; one-line InvalidInputError for one we cannot convert to RGB."""
    try:
        return ENCODINGS[encoding]
    except (KeyError, TypeError):
        pass
    if isinstance(encoding, str) and _GENERIC.fullmatch(encoding):
        raise InvalidInputError(f"image.encoding = {encoding!r} is a generic OpenCV type with no colour order, "
                                "which cv_bridge refuses to convert to colour: publish rgb8, bgr8, mono8, mono16, "
                                "a bayer_* or a yuv422 encoding")
    reason = " (cv_bridge has no conversion for it)" if encoding in ("nv21", "nv24") else ""
    raise InvalidInputError(f"image.encoding = {encoding!r} is not supported{reason} "
                            f"(supported: {', '.join(SUPPORTED_ENCODINGS)})")

"""Input images from image messages: the message core's way in (``fields`` is its way out), numpy + OpenCV, no ROS.

``image_to_rgb`` and ``compressed_to_rgb`` take any ``sensor_msgs/Image`` or ``CompressedImage`` (rclpy's in the
node, rosbags' in replay and extraction); ``decode_raw_image`` and ``decode_compressed_image`` take their fields.
Every check runs before any allocation, and every failure is an ``InvalidInputError`` with one line naming the
message field and its value. camera_info is read by ``geometry.intrinsics.camera_from_info``.

Outputs are uint8 HxWx3 RGB numpy arrays. The raw encodings and their cv_bridge semantics are in ``decode_packed``.
``decode_raw_image`` returns a zero-copy view of the message buffer where it can (8-bit RGB/BGR(A)/mono): the array
may be non-contiguous (row padding, BGR order, dropped alpha, mono repeated by a broadcast with a zero stride) and
read-only (when ``data`` is ``bytes``). Consumers that need contiguous memory call ``np.ascontiguousarray`` (copies
only when needed) or copy into their own (pinned) buffer.
"""

from __future__ import annotations

import array
import operator
import struct
from typing import Protocol, Union

import cv2
import numpy as np

from ..errors import InvalidInputError
from ..limits import MAX_IMAGE_SIDE
from .decode_packed import SUPPORTED_ENCODINGS as SUPPORTED_ENCODINGS  # re-exported: the one list
from .decode_packed import encoding_layout

ByteBuffer = Union[bytes, bytearray, memoryview, np.ndarray, array.array]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the image size; 0xC4 (DHT), 0xC8 (JPG) and 0xCC (DAC) share the range but do not.
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xD8)) | {0x01}


def _byte_view(field: str, data: ByteBuffer) -> np.ndarray:
    """1-D uint8 view of ``data`` without copying; raise naming ``field`` if it is not a byte buffer."""
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{field} of type {type(data).__name__} is not a byte buffer ({exc})") from None


def _check_side(field: str, value: int) -> int:
    """Return ``value`` as int if it is in 1..MAX_IMAGE_SIDE, else raise naming ``field``."""
    try:
        side = operator.index(value)
    except TypeError:
        raise InvalidInputError(f"{field} = {value!r} is not an integer") from None
    if not 1 <= side <= MAX_IMAGE_SIDE:
        raise InvalidInputError(f"{field} = {side} is outside 1..{MAX_IMAGE_SIDE}")
    return side


def decode_raw_image(encoding: str, height: int, width: int, step: int, data: ByteBuffer,
                     is_bigendian: bool = False) -> np.ndarray:
    """``sensor_msgs/Image`` fields -> uint8 HxWx3 RGB (see module docstring; encodings in ``decode_packed``).

    8-bit RGB/BGR(A)/mono come back as a zero-copy view of ``data``; Bayer, YUV 4:2:2 and 16-bit encodings are
    converted (one new array). Raises ``InvalidInputError`` for an unsupported encoding, a height/width outside
    1..MAX_IMAGE_SIDE, an odd width where the packing needs an even one, a step smaller than the row or not a
    whole number of samples, or data shorter than height*step.
    """
    layout, convert = encoding_layout(encoding)
    height = _check_side("image.height", height)
    width = _check_side("image.width", width)
    if layout.even_width and width % 2:
        raise InvalidInputError(f"image.width = {width} is odd; {encoding} packs pixels in pairs")
    try:
        step = operator.index(step)
    except TypeError:
        raise InvalidInputError(f"image.step = {step!r} is not an integer") from None
    row_bytes = width * layout.pixel_bytes
    if step < row_bytes:
        raise InvalidInputError(f"image.step = {step} is smaller than width*{layout.pixel_bytes} bytes = "
                                f"{row_bytes} for {encoding}")
    if step % layout.sample_bytes:
        raise InvalidInputError(f"image.step = {step} is not a multiple of {layout.sample_bytes} bytes ({encoding})")
    buffer = _byte_view("image.data", data)
    if buffer.size < height * step:
        raise InvalidInputError(f"len(image.data) = {buffer.size} is smaller than height*step = {height * step}")
    rows = buffer[: height * step].reshape(height, step)[:, :row_bytes]
    if layout.sample_bytes == 2:
        rows = rows.view(">u2" if is_bigendian else "<u2")
        if rows.dtype != np.dtype(np.uint16):  # not this machine's byte order: swapped, as cv_bridge does
            rows = rows.astype(np.uint16)
    return convert(rows.reshape(height, width, layout.channels))


def compressed_image_size(data: ByteBuffer) -> tuple[int, int]:
    """``(width, height)`` declared in the header of PNG (IHDR) or JPEG (SOF) ``data``, without decoding it."""
    buffer = _byte_view("compressed_image.data", data)
    if buffer[:8].tobytes() == _PNG_SIGNATURE:
        return _png_size(buffer)
    if buffer[:2].tobytes() == b"\xff\xd8":
        return _jpeg_size(buffer)
    raise InvalidInputError(
        f"compressed_image.data starts with {buffer[:8].tobytes()!r}, which is neither PNG nor JPEG"
    )


def _png_size(buffer: np.ndarray) -> tuple[int, int]:
    """Size from the IHDR chunk, which the PNG specification requires to come first."""
    if buffer.size < 24 or buffer[12:16].tobytes() != b"IHDR":
        raise InvalidInputError("compressed_image.data is a PNG without an IHDR chunk at byte 12")
    width, height = struct.unpack_from(">II", buffer, 16)
    return width, height


def _jpeg_size(buffer: np.ndarray) -> tuple[int, int]:
    """Size from the first start-of-frame segment, walking the marker segments that precede it."""
    position = 2
    while position + 4 <= buffer.size:
        if buffer[position] != 0xFF:
            raise InvalidInputError(f"compressed_image.data is a corrupt JPEG: no marker at byte {position}")
        marker = int(buffer[position + 1])
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE_MARKERS:
            position += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        (length,) = struct.unpack_from(">H", buffer, position + 2)
        if marker in _JPEG_SOF_MARKERS:
            if position + 9 > buffer.size:
                break
            height, width = struct.unpack_from(">HH", buffer, position + 5)
            return width, height
        position += 2 + length
    raise InvalidInputError("compressed_image.data is a JPEG without a frame header (SOF) before its image data")


def _compressed_kind(fmt: str) -> str:
    """'jpeg' or 'png' from a ``CompressedImage.format`` such as ``"rgb8; jpeg compressed bgr8"``."""
    lowered = fmt.lower()
    if "jpeg" in lowered or "jpg" in lowered:
        return "jpeg"
    if "png" in lowered:
        return "png"
    raise InvalidInputError(f"compressed_image.format = {fmt!r} is not supported (jpeg or png)")


def decode_compressed_image(fmt: str, data: ByteBuffer) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` fields -> contiguous uint8 HxWx3 RGB, decoded with OpenCV.

    The size declared in the header is checked against 1..MAX_IMAGE_SIDE before decoding; unsupported formats,
    unknown or corrupt data raise ``InvalidInputError``. Grey and 16-bit images are converted to 8-bit RGB.
    """
    _compressed_kind(fmt)
    width, height = compressed_image_size(data)
    if not (1 <= width <= MAX_IMAGE_SIDE and 1 <= height <= MAX_IMAGE_SIDE):
        raise InvalidInputError(
            f"compressed_image size {width}x{height} (from its header) is outside 1..{MAX_IMAGE_SIDE} per side"
        )
    try:
        image = cv2.imdecode(_byte_view("compressed_image.data", data), cv2.IMREAD_COLOR)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1]
        raise InvalidInputError(f"compressed_image.data ({fmt!r}) cannot be decoded: {reason}") from None
    if image is None or image.shape[:2] != (height, width):
        raise InvalidInputError(f"compressed_image.data ({fmt!r}, {width}x{height}) is corrupt and cannot be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)


class RawImageMessage(Protocol):
    """Any ``sensor_msgs/Image`` (rclpy or rosbags)."""

    encoding: str
    height: int
    width: int
    step: int
    data: ByteBuffer


class CompressedImageMessage(Protocol):
    """Any ``sensor_msgs/CompressedImage`` (rclpy or rosbags)."""

    format: str
    data: ByteBuffer


def image_to_rgb(msg: RawImageMessage) -> np.ndarray:
    """``sensor_msgs/Image`` -> uint8 HxWx3 RGB (a view of ``msg.data`` for 8-bit RGB/BGR(A)/mono; see
    ``decode_raw_image``).

    Raises InvalidInputError naming the field (encoding, height, width, step, data) before any allocation.
    """
    return decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data,
                            bool(getattr(msg, "is_bigendian", False)))


def compressed_to_rgb(msg: CompressedImageMessage) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg/png) -> contiguous uint8 HxWx3 RGB; size checked before decoding."""
    return decode_compressed_image(msg.format, msg.data)

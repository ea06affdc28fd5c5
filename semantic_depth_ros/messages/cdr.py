"""The CDR bytes of every output message, written once from its fields, without ROS.

The node publishes these bytes (rclpy's ``Publisher.publish`` takes serialized ``bytes`` on Humble, Jazzy and
Kilted) and ``infer-bag`` writes them into its bag, so replay equals the live node by construction. The layout is
plain CDR (XCDR1) little-endian, as rmw_fastrtps and rosbags write it: a 4-byte encapsulation header, then each
field in message order, every primitive aligned to its own size counted from the end of the encapsulation header;
strings as a uint32 length (with the terminating NUL) then the bytes and NUL; sequences as a uint32 count then
their elements. The small fields are packed with ``struct``; the pixel or point data is copied once, straight from
the host array, by ``bytes.join`` (rclpy needs an immutable ``bytes`` object, so this copy is the one every path
makes).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from .fields import CameraInfoFields, CloudFields, ImageFields, OutputFields, PointFieldSpec

ENCAPSULATION = b"\x00\x01\x00\x00"  # CDR, little-endian, no options
_U32 = struct.Struct("<I")
_STAMP = struct.Struct("<iI")
# CameraInfo's fixed arrays: k[9], r[9], p[12] float64
_K, _R, _P = struct.Struct("<9d"), struct.Struct("<9d"), struct.Struct("<12d")


class MessageHeader(NamedTuple):
    """``std_msgs/Header``: the stamp (``sec``, ``nanosec``) and ``frame_id`` (the input image's, passed through)."""

    sec: int
    nanosec: int
    frame_id: str


class _Packer:
    """The small fields of one message, CDR-aligned relative to the end of the encapsulation header."""

    def __init__(self, header: MessageHeader) -> None:
        self.buf = bytearray(ENCAPSULATION)
        self.buf += _STAMP.pack(header.sec, header.nanosec)
        self.string(header.frame_id)

    def align(self, size: int) -> None:
        self.buf += b"\x00" * (-(len(self.buf) - len(ENCAPSULATION)) % size)

    def u32(self, *values: int) -> None:
        self.align(4)
        self.buf += struct.pack(f"<{len(values)}I", *values)

    def u8(self, value: int) -> None:
        self.buf.append(value)

    def string(self, text: str) -> None:
        encoded = text.encode()
        self.u32(len(encoded) + 1)
        self.buf += encoded
        self.buf.append(0)

    def f64(self, layout: struct.Struct, values: Sequence[float]) -> None:
        if values:  # an empty sequence has no element to align (Fast CDR)
            self.align(8)
            self.buf += layout.pack(*values)


def _point_fields(packer: _Packer, fields: Sequence[PointFieldSpec]) -> None:
    packer.u32(len(fields))
    for spec in fields:
        packer.string(spec.name)
        packer.u32(spec.offset)
        packer.u8(spec.datatype)
        packer.u32(spec.count)


def _data(data: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous host array, without a copy."""
    return memoryview(np.ascontiguousarray(data)).cast("B")


def image_cdr(fields: ImageFields, header: MessageHeader) -> bytes:
    """``sensor_msgs/Image`` of ``fields`` under ``header``."""
    packer = _Packer(header)
    packer.u32(fields.height, fields.width)
    packer.string(fields.encoding)
    packer.u8(int(fields.is_bigendian))
    data = _data(fields.data)
    packer.u32(fields.step, data.nbytes)
    return b"".join((packer.buf, data))


def cloud_cdr(fields: CloudFields, header: MessageHeader) -> bytes:
    """``sensor_msgs/PointCloud2`` of ``fields`` under ``header``."""
    packer = _Packer(header)
    packer.u32(fields.height, fields.width)
    _point_fields(packer, fields.fields)
    packer.u8(int(fields.is_bigendian))
    data = _data(fields.data)
    packer.u32(fields.point_step, fields.row_step, data.nbytes)
    return b"".join((packer.buf, data, b"\x01" if fields.is_dense else b"\x00"))


def camera_info_cdr(fields: CameraInfoFields, header: MessageHeader) -> bytes:
    """``sensor_msgs/CameraInfo`` of ``fields`` under ``header``."""
    packer = _Packer(header)
    packer.u32(fields.height, fields.width)
    packer.string(fields.distortion_model)
    packer.u32(len(fields.d))
    packer.f64(struct.Struct(f"<{len(fields.d)}d"), fields.d)
    packer.f64(_K, fields.k)
    packer.f64(_R, fields.r)
    packer.f64(_P, fields.p)
    roi = fields.roi
    packer.u32(fields.binning_x, fields.binning_y, roi.x_offset, roi.y_offset, roi.height, roi.width)
    packer.u8(int(roi.do_rectify))
    return bytes(packer.buf)


def to_cdr(fields: OutputFields, header: MessageHeader) -> bytes:
    """The CDR bytes of any output message's fields under the input image's header."""
    if isinstance(fields, ImageFields):
        return image_cdr(fields, header)
    if isinstance(fields, CloudFields):
        return cloud_cdr(fields, header)
    return camera_info_cdr(fields, header)

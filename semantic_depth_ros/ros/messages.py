"""sensor_msgs <-> numpy/torch: message fields into the ROS-free decoders, tensors into outgoing messages.

Incoming messages are validated by ``inference.image_input`` before anything is allocated. Outgoing messages are
built from one contiguous buffer per output: ``HostStaging`` brings all of a frame's outputs to the host with one
device-to-host copy each and a single synchronisation; ``data`` receives an ``array.array`` filled straight from
that host buffer, and the message is created with field checks on so the ``array`` is taken as is (with checks
off the generated setter would copy it once more).
"""

from __future__ import annotations

import array
import sys
from collections.abc import Mapping

import numpy as np
import torch
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from ..errors import InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..geometry.pointcloud import POINT_FIELD_DATATYPE, POINT_FIELDS, POINT_STEP
from ..inference.image_input import decode_compressed_image, decode_raw_image, intrinsics_from_camera_info

IS_BIGENDIAN = sys.byteorder == "big"
# encoding -> (numpy dtype, channels) of the arrays we publish
OUTPUT_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "32FC1": (np.dtype(np.float32), 1),
    "mono8": (np.dtype(np.uint8), 1),
    "rgb8": (np.dtype(np.uint8), 3),
}
PLUMB_BOB_COEFFICIENTS = 5
IDENTITY_3X3 = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """``sensor_msgs/Image`` -> uint8 HxWx3 RGB view of ``msg.data`` (zero-copy, possibly non-contiguous).

    Raises InvalidInputError naming the field (encoding, height, width, step, data) before any allocation.
    """
    return decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def compressed_msg_to_rgb(msg: CompressedImage) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg/png) -> contiguous uint8 HxWx3 RGB; size checked before decoding."""
    return decode_compressed_image(msg.format, msg.data)


def camera_info_to_intrinsics(msg: CameraInfo, image_width: int, image_height: int) -> Intrinsics:
    """``sensor_msgs/CameraInfo`` -> intrinsics of the ``image_width`` x ``image_height`` image it describes."""
    return intrinsics_from_camera_info(msg.k, msg.width, msg.height, image_width, image_height)


class HostStaging:
    """Brings a frame's output tensors to the host: one device-to-host copy per output, one synchronisation.

    On CUDA each tensor is copied (non-blocking) into a pinned buffer kept per output name and shape, and the
    stream is synchronised once for all of them; on the CPU the tensors are returned as numpy views (no copy).
    The arrays stay valid until the next ``fetch`` (messages copy them into their own ``data``).
    """

    def __init__(self) -> None:
        self._pinned: dict[str, torch.Tensor] = {}

    def fetch(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """``{name: tensor}`` on any device -> ``{name: contiguous numpy array}`` on the host."""
        host: dict[str, torch.Tensor] = {}
        synchronise: list[torch.device] = []
        for name, tensor in tensors.items():
            tensor = tensor.detach()
            if tensor.device.type != "cuda":
                host[name] = tensor.contiguous()
                continue
            buffer = self._pinned.get(name)
            if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
                buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                self._pinned[name] = buffer
            buffer.copy_(tensor, non_blocking=True)
            host[name] = buffer
            if tensor.device not in synchronise:
                synchronise.append(tensor.device)
        for device in synchronise:
            torch.cuda.current_stream(device).synchronize()
        return {name: tensor.numpy() for name, tensor in host.items()}


def _data(array_: np.ndarray) -> array.array:
    """The bytes of a C-contiguous array as ``array('B')`` (one copy)."""
    data = array.array("B")
    data.frombytes(array_.reshape(-1).view(np.uint8))
    return data


def image_msg(header: Header, pixels: np.ndarray, encoding: str) -> Image:
    """HxW (32FC1 float32, mono8 uint8) or HxWx3 (rgb8 uint8) host array -> ``sensor_msgs/Image``, packed step."""
    if encoding not in OUTPUT_ENCODINGS:
        raise InvalidInputError(f"output encoding {encoding!r} is not one of {', '.join(OUTPUT_ENCODINGS)}")
    dtype, channels = OUTPUT_ENCODINGS[encoding]
    expected_shape_dims = 2 if channels == 1 else 3
    if (pixels.dtype != dtype or pixels.ndim != expected_shape_dims or (channels > 1 and pixels.shape[2] != channels)
            or not pixels.flags.c_contiguous):
        raise InvalidInputError(f"array {pixels.dtype} of shape {pixels.shape} cannot be published as {encoding}")
    height, width = int(pixels.shape[0]), int(pixels.shape[1])
    msg = Image(check_fields=True)
    msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(IS_BIGENDIAN)
    msg.step = width * channels * pixels.itemsize
    msg.data = _data(pixels)
    return msg


def camera_info_msg(header: Header, intrinsics: Intrinsics) -> CameraInfo:
    """``sensor_msgs/CameraInfo`` of an undistorted image with ``intrinsics``: K, P = [K | 0], R = I, D = 0."""
    msg = CameraInfo()
    msg.header = header
    msg.width = intrinsics.width
    msg.height = intrinsics.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * PLUMB_BOB_COEFFICIENTS
    msg.k = list(intrinsics.k())
    msg.r = list(IDENTITY_3X3)
    msg.p = list(intrinsics.p())
    return msg


def point_fields() -> list[PointField]:
    """The ``x y z rgb`` FLOAT32 fields of the organised cloud (layout in ``geometry.pointcloud``)."""
    return [PointField(name=name, offset=offset, datatype=POINT_FIELD_DATATYPE, count=1)
            for name, offset in POINT_FIELDS]


def cloud_msg(header: Header, points: np.ndarray) -> PointCloud2:
    """``(h, w, 4)`` float32 ``[x, y, z, rgb]`` host array (``backproject_organised``) -> organised PointCloud2."""
    if points.dtype != np.float32 or points.ndim != 3 or points.shape[2] * 4 != POINT_STEP \
            or not points.flags.c_contiguous:
        raise InvalidInputError(f"points {points.dtype} of shape {points.shape} are not an (h, w, 4) float32 cloud")
    height, width = int(points.shape[0]), int(points.shape[1])
    msg = PointCloud2(check_fields=True)
    msg.header = header
    msg.height = height
    msg.width = width
    msg.fields = point_fields()
    msg.is_bigendian = IS_BIGENDIAN
    msg.point_step = POINT_STEP
    msg.row_step = width * POINT_STEP
    msg.is_dense = False
    msg.data = _data(points)
    return msg

"""sensor_msgs <-> numpy/torch: message fields into the ROS-free decoders, tensors into outgoing messages.

Incoming messages are validated by ``inference.image_input`` before anything is allocated. Outgoing messages are
built from one contiguous buffer per output with one device-to-host copy; ``data`` receives an ``array.array``
filled straight from that host buffer, and the message is created with field checks on so the ``array`` is taken
as is (with checks off the generated setter would copy it once more).
"""

from __future__ import annotations

import array
import sys

import cv2
import numpy as np
import torch
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from ..errors import InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..geometry.pointcloud import POINT_FIELD_DATATYPE, POINT_FIELDS, POINT_STEP
from ..inference.image_input import decode_compressed_image, decode_raw_image, intrinsics_from_camera_info

IS_BIGENDIAN = sys.byteorder == "big"
# encoding -> (torch dtype, channels) of the tensors we publish
OUTPUT_ENCODINGS: dict[str, tuple[torch.dtype, int]] = {
    "32FC1": (torch.float32, 1),
    "mono8": (torch.uint8, 1),
    "rgb8": (torch.uint8, 3),
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


def host_bytes(tensor: torch.Tensor) -> array.array:
    """The bytes of ``tensor`` (row-major) as ``array('B')``: one device-to-host copy, one copy into the array."""
    host = tensor.detach().contiguous().cpu()
    data = array.array("B")
    data.frombytes(host.numpy().reshape(-1).view(np.uint8))
    return data


def tensor_to_image_msg(header: Header, tensor: torch.Tensor, encoding: str) -> Image:
    """HxW (32FC1, mono8) or HxWx3 (rgb8) tensor -> ``sensor_msgs/Image`` with ``header`` and a packed step."""
    if encoding not in OUTPUT_ENCODINGS:
        raise InvalidInputError(f"output encoding {encoding!r} is not one of {', '.join(OUTPUT_ENCODINGS)}")
    dtype, channels = OUTPUT_ENCODINGS[encoding]
    expected_dims = 2 if channels == 1 else 3
    if tensor.dtype != dtype or tensor.dim() != expected_dims or (channels > 1 and tensor.shape[2] != channels):
        raise InvalidInputError(f"tensor {tensor.dtype} of shape {tuple(tensor.shape)} cannot be published as {encoding}")
    height, width = int(tensor.shape[0]), int(tensor.shape[1])
    msg = Image(check_fields=True)
    msg.header = header
    msg.height = height
    msg.width = width
    msg.encoding = encoding
    msg.is_bigendian = int(IS_BIGENDIAN)
    msg.step = width * channels * tensor.element_size()
    msg.data = host_bytes(tensor)
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
    return [PointField(name=name, offset=offset, datatype=POINT_FIELD_DATATYPE, count=1) for name, offset in POINT_FIELDS]


def points_to_cloud_msg(header: Header, points: torch.Tensor) -> PointCloud2:
    """``(h, w, 4)`` float32 ``[x, y, z, rgb]`` from ``backproject_organised`` -> organised ``PointCloud2``."""
    if points.dtype != torch.float32 or points.dim() != 3 or points.shape[2] * 4 != POINT_STEP:
        raise InvalidInputError(f"points {points.dtype} of shape {tuple(points.shape)} are not an (h, w, 4) float32 cloud")
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
    msg.data = host_bytes(points)
    return msg


def rgb_to_tensor(rgb: np.ndarray, height: int, width: int, device: torch.device) -> torch.Tensor:
    """uint8 HxWx3 RGB (any strides) -> contiguous ``height`` x ``width`` x 3 uint8 tensor on ``device``.

    Point colours must match the depth image's pixels: when the depth is at another size (``output_resolution:
    network``) the image is resized with OpenCV's area filter first.
    """
    if rgb.shape[:2] != (height, width):
        rgb = cv2.resize(np.ascontiguousarray(rgb), (width, height), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(np.ascontiguousarray(rgb)).to(device, non_blocking=True)

"""Message-core fields into rclpy messages (incoming images are decoded by ``messages.decode``, ROS-free).

Outgoing messages take every field from ``semantic_depth_ros.messages`` (the same fields offline bag replay
writes); ``data`` receives an ``array.array`` filled straight from the host buffer, taken as is by the generated
setter on every distribution (``distro.new_message``: field checks on where the class has them; with them off the
setter would copy it).
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField, RegionOfInterest
from std_msgs.msg import Header

from ..messages import CameraInfoFields, CloudFields, ImageFields, OutputFields
from .distro import new_message


def _data(data: np.ndarray) -> array.array:
    """The uint8 bytes of ``data`` as ``array('B')`` (one copy)."""
    out = array.array("B")
    out.frombytes(data)
    return out


def image_msg(header: Header, fields: ImageFields) -> Image:
    """``sensor_msgs/Image`` of ``fields`` (``messages.image_fields``) under ``header``."""
    msg = new_message(Image, header=header, height=fields.height, width=fields.width, encoding=fields.encoding,
                      is_bigendian=int(fields.is_bigendian), step=fields.step)
    msg.data = _data(fields.data)
    return msg


def cloud_msg(header: Header, fields: CloudFields) -> PointCloud2:
    """``sensor_msgs/PointCloud2`` of ``fields`` (``messages.cloud_fields``) under ``header``."""
    point_fields = [PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                    for f in fields.fields]
    msg = new_message(PointCloud2, header=header, height=fields.height, width=fields.width, fields=point_fields,
                      is_bigendian=fields.is_bigendian, point_step=fields.point_step, row_step=fields.row_step,
                      is_dense=fields.is_dense)
    msg.data = _data(fields.data)
    return msg


def camera_info_msg(header: Header, fields: CameraInfoFields) -> CameraInfo:
    """``sensor_msgs/CameraInfo`` of ``fields`` (``messages.camera_info_fields``) under ``header``."""
    roi = fields.roi
    return CameraInfo(header=header, height=fields.height, width=fields.width,
                      distortion_model=fields.distortion_model, d=list(fields.d), k=list(fields.k), r=list(fields.r),
                      p=list(fields.p), binning_x=fields.binning_x, binning_y=fields.binning_y,
                      roi=RegionOfInterest(x_offset=roi.x_offset, y_offset=roi.y_offset, height=roi.height,
                                           width=roi.width, do_rectify=roi.do_rectify))


def to_msg(header: Header, fields: OutputFields) -> Image | PointCloud2 | CameraInfo:
    """The rclpy message of any message-core fields."""
    if isinstance(fields, ImageFields):
        return image_msg(header, fields)
    if isinstance(fields, CloudFields):
        return cloud_msg(header, fields)
    return camera_info_msg(header, fields)

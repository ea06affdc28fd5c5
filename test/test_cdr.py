"""The message core's CDR bytes (``messages.cdr``): byte for byte rosbags' CDR serializer and rclpy's
``serialize_message`` of the equivalent message, for every output type and layout the node publishes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from rosbags.typesys import Stores, get_typestore

from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import POINT_LAYOUTS, backproject_organised, build_rays
from semantic_depth_ros.messages import (CameraInfoFields, CloudFields, ImageFields, MessageHeader, RegionOfInterest,
                                         camera_info_fields, cloud_fields, image_fields, to_cdr)

HEIGHT, WIDTH = 7, 11
INTRINSICS = Intrinsics(20.0, 21.0, 5.0, 3.0, WIDTH, HEIGHT)
# frame ids of every length modulo 4, so that every alignment after the header's string is exercised
FRAME_IDS = ("", "a", "ab", "abc", "camera_optical")
TYPES = get_typestore(Stores.ROS2_JAZZY).types
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)


def _cloud(layout: str, stride: int) -> CloudFields:
    """A cloud in ``layout`` as the node builds it (``backproject_organised``), every ``stride``-th pixel."""
    generator = torch.Generator().manual_seed(stride)
    depth = torch.rand(HEIGHT, WIDTH, generator=generator) * 50 + 1
    depth[0, 0] = float("nan")
    rgb = torch.randint(0, 256, (HEIGHT, WIDTH, 3), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 19, (HEIGHT, WIDTH), dtype=torch.uint8, generator=generator)
    confidence = torch.rand(HEIGHT, WIDTH, generator=generator)
    grid = build_rays(INTRINSICS, stride, "cpu")
    points = backproject_organised(depth, grid, rgb, stride=stride, point_fields=layout, labels=labels,
                                   confidence=confidence)
    return cloud_fields(points.numpy(), layout)


def every_output() -> list[tuple[str, Any]]:
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 80, (HEIGHT, WIDTH)).astype(np.float32)
    depth[1, 2] = np.nan
    outputs: list[tuple[str, Any]] = [
        ("32FC1", image_fields(depth, "32FC1")),
        ("mono8", image_fields(rng.integers(0, 19, (HEIGHT, WIDTH), dtype=np.uint8), "mono8")),
        ("rgb8", image_fields(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), "rgb8")),
        ("camera_info", camera_info_fields(INTRINSICS)),
        ("camera_info roi", CameraInfoFields(HEIGHT, WIDTH, "rational_polynomial", tuple(range(8)),
                                             INTRINSICS.k(), (1.0,) * 9, INTRINSICS.p(), 2, 3,
                                             RegionOfInterest(1, 2, 3, 4, True))),
    ]
    outputs += [(f"cloud {layout} stride {stride}", _cloud(layout, stride))
                for layout in POINT_LAYOUTS for stride in (1, 2, 3)]
    return outputs


OUTPUTS = every_output()


def rosbags_message(head: MessageHeader, fields: Any) -> Any:
    """The equivalent Jazzy rosbags message, built field by field with rosbags' own classes."""
    header = TYPES["std_msgs/msg/Header"](stamp=TYPES["builtin_interfaces/msg/Time"](sec=head.sec,
                                                                                      nanosec=head.nanosec),
                                          frame_id=head.frame_id)
    if isinstance(fields, ImageFields):
        return TYPES["sensor_msgs/msg/Image"](header=header, height=fields.height, width=fields.width,
                                              encoding=fields.encoding, is_bigendian=int(fields.is_bigendian),
                                              step=fields.step, data=np.array(fields.data))
    if isinstance(fields, CloudFields):
        point_field = TYPES["sensor_msgs/msg/PointField"]
        return TYPES["sensor_msgs/msg/PointCloud2"](
            header=header, height=fields.height, width=fields.width,
            fields=[point_field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                    for f in fields.fields],
            is_bigendian=bool(fields.is_bigendian), point_step=fields.point_step, row_step=fields.row_step,
            data=np.array(fields.data), is_dense=bool(fields.is_dense))
    roi = fields.roi
    return TYPES["sensor_msgs/msg/CameraInfo"](
        header=header, height=fields.height, width=fields.width, distortion_model=fields.distortion_model,
        d=np.array(fields.d, dtype=np.float64), k=np.array(fields.k, dtype=np.float64),
        r=np.array(fields.r, dtype=np.float64), p=np.array(fields.p, dtype=np.float64),
        binning_x=fields.binning_x, binning_y=fields.binning_y,
        roi=TYPES["sensor_msgs/msg/RegionOfInterest"](x_offset=roi.x_offset, y_offset=roi.y_offset,
                                                      height=roi.height, width=roi.width, do_rectify=roi.do_rectify))


@pytest.mark.parametrize("name,fields", OUTPUTS, ids=[name for name, _ in OUTPUTS])
def test_bytes_equal_rosbags_cdr_serializer(name: str, fields: Any) -> None:
    for sec, frame_id in zip((0, 1_700_000_000, -5, 7, 2**31 - 1), FRAME_IDS):
        head = MessageHeader(sec, 999_999_999 - sec % 1000, frame_id)
        msg = rosbags_message(head, fields)
        expected = bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))
        got = to_cdr(fields, head)
        assert isinstance(got, bytes)  # rclpy's Publisher.publish takes exactly bytes
        assert got == expected, (name, frame_id)


def test_data_is_written_once_at_its_place_from_the_host_array() -> None:
    depth = np.arange(HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    got = to_cdr(image_fields(depth, "32FC1"), MessageHeader(1, 2, "cam"))
    assert got.endswith(depth.tobytes())
    assert np.frombuffer(got, np.uint32, count=1, offset=len(got) - depth.nbytes - 4)[0] == depth.nbytes
    assert got[:4] == b"\x00\x01\x00\x00"  # CDR little-endian encapsulation


@pytest.mark.ros
@pytest.mark.parametrize("name,fields", OUTPUTS, ids=[name for name, _ in OUTPUTS])
def test_bytes_equal_rclpy_serialize_message(name: str, fields: Any) -> None:
    from builtin_interfaces.msg import Time
    from rclpy.serialization import deserialize_message, serialize_message
    from std_msgs.msg import Header

    from semantic_depth_ros.ros.messages import to_msg

    for sec, frame_id in zip((0, 1_700_000_000, -5, 7), FRAME_IDS):
        head = MessageHeader(sec, 123_456_789, frame_id)
        msg = to_msg(Header(stamp=Time(sec=sec, nanosec=head.nanosec), frame_id=frame_id), fields)
        expected = bytes(serialize_message(msg))
        got = to_cdr(fields, head)
        assert len(got) == len(expected), name
        assert deserialize_message(got, type(msg)) == msg, name
        # Fast CDR leaves alignment padding uninitialised (whatever the buffer held); we write zeros there. Every
        # other byte is equal: each differing run is zero on our side and lies inside one 8-byte aligned block
        # (offsets counted after the 4-byte encapsulation header), as padding does
        differ = np.flatnonzero(np.frombuffer(got, np.uint8) != np.frombuffer(expected, np.uint8))
        runs = np.split(differ, np.flatnonzero(np.diff(differ) > 1) + 1) if differ.size else []
        for run in runs:
            assert not any(got[i] for i in run), (name, frame_id, run)
            assert (int(run[0]) - 4) // 8 == (int(run[-1]) - 4) // 8, (name, frame_id, run)

"""Test helper: build sensor messages and write ROS 1 / ROS 2 (sqlite3, mcap) bags with ``rosbags``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rosbags.rosbag1 import Writer as Ros1Writer
from rosbags.rosbag2 import StoragePlugin, Writer as Ros2Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

STORAGES = ("sqlite3", "mcap", "ros1")


class MessageFactory:
    """Messages of one ROS generation (``ros1`` -> Noetic types, else Jazzy)."""

    def __init__(self, storage: str) -> None:
        self.ros1 = storage == "ros1"
        self.typestore = get_typestore(Stores.ROS1_NOETIC if self.ros1 else Stores.ROS2_JAZZY)
        if "tf2_msgs/msg/TFMessage" not in self.typestore.types:  # the Noetic store lacks tf2_msgs
            self.typestore.register(get_types_from_msg("geometry_msgs/TransformStamped[] transforms",
                                                       "tf2_msgs/msg/TFMessage"))
        self.types = self.typestore.types

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        stamp = self.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
        if self.ros1:
            return self.types["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id=frame_id)
        return self.types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)

    def image(self, rgb: np.ndarray, stamp_ns: int, frame_id: str, encoding: str = "rgb8") -> Any:
        pixels = {"rgb8": rgb, "bgr8": rgb[..., ::-1], "mono8": rgb[..., 0]}[encoding]
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        step = width * (1 if pixels.ndim == 2 else 3)
        return self.types["sensor_msgs/msg/Image"](
            header=self.header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
            is_bigendian=0, step=step, data=pixels.reshape(-1).view(np.uint8),
        )

    def compressed_image(self, rgb: np.ndarray, stamp_ns: int, frame_id: str) -> Any:
        ok, png = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError("PNG encoding failed")
        return self.types["sensor_msgs/msg/CompressedImage"](
            header=self.header(stamp_ns, frame_id), format="rgb8; png compressed bgr8", data=png.reshape(-1),
        )

    def camera_info(self, K: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str,
                    distortion: Sequence[float] = (0.0, 0.0, 0.0, 0.0, 0.0), P: np.ndarray | None = None) -> Any:
        """CameraInfo with K, D and P (default [K | 0])."""
        projection = np.zeros((3, 4))
        projection[:, :3] = K
        if P is not None:
            projection = np.asarray(P, dtype=np.float64).reshape(3, 4)
        fields = {
            "D": np.asarray(distortion, dtype=np.float64), "K": np.asarray(K, dtype=np.float64).reshape(-1),
            "R": np.eye(3).reshape(-1), "P": projection.reshape(-1),
        }
        if not self.ros1:
            fields = {key.lower(): value for key, value in fields.items()}
        roi = self.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                             do_rectify=False)
        return self.types["sensor_msgs/msg/CameraInfo"](
            header=self.header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
            binning_x=0, binning_y=0, roi=roi, **fields,
        )

    def pointcloud(self, points: np.ndarray, stamp_ns: int, frame_id: str, *, float64: bool = False,
                   bigendian: bool = False, field_order: str = "xyz", extra_bytes: int = 4, organised_rows: int = 1,
                   row_padding: int = 0) -> Any:
        """PointCloud2 of Nx3 points with a configurable layout (an ``intensity`` FLOAT32 field first)."""
        kind = "f8" if float64 else "f4"
        size = 8 if float64 else 4
        order = ">" if bigendian else "<"
        names = ["intensity", *field_order]
        offsets = [0] + [4 + i * size for i in range(3)]
        point_step = 4 + 3 * size + extra_bytes
        dtype = np.dtype({"names": names, "formats": [order + "f4"] + [order + kind] * 3, "offsets": offsets,
                          "itemsize": point_step})
        count = points.shape[0]
        if count % organised_rows:
            raise ValueError("point count must be a multiple of organised_rows")
        width = count // organised_rows
        cloud = np.zeros(count, dtype=dtype)
        cloud["intensity"] = 7.0
        for axis, name in enumerate("xyz"):
            cloud[name] = points[:, axis]
        rows = cloud.view(np.uint8).reshape(organised_rows, width * point_step)
        row_step = width * point_step + row_padding
        data = np.full((organised_rows, row_step), 0xAB, dtype=np.uint8)
        data[:, : width * point_step] = rows
        datatype = 8 if float64 else 7
        field_type = self.types["sensor_msgs/msg/PointField"]
        fields = [field_type(name="intensity", offset=0, datatype=7, count=1)]
        fields += [field_type(name=name, offset=offset, datatype=datatype, count=1)
                   for name, offset in zip(field_order, offsets[1:])]
        return self.types["sensor_msgs/msg/PointCloud2"](
            header=self.header(stamp_ns, frame_id), height=organised_rows, width=width, fields=fields,
            is_bigendian=bigendian, point_step=point_step, row_step=row_step, data=data.reshape(-1),
            is_dense=False,
        )

    def odometry(self, world_from_child: np.ndarray, stamp_ns: int, frame_id: str, child_frame_id: str) -> Any:
        """nav_msgs/Odometry: the pose of ``child_frame_id`` in ``frame_id`` (4x4), zero twist and covariances."""
        t = self.types
        qx, qy, qz, qw = matrix_to_quaternion(world_from_child[:3, :3])
        x, y, z = (float(v) for v in world_from_child[:3, 3])
        pose = t["geometry_msgs/msg/Pose"](position=t["geometry_msgs/msg/Point"](x=x, y=y, z=z),
                                           orientation=t["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw))
        zero = t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
        return t["nav_msgs/msg/Odometry"](
            header=self.header(stamp_ns, frame_id), child_frame_id=child_frame_id,
            pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
            twist=t["geometry_msgs/msg/TwistWithCovariance"](
                twist=t["geometry_msgs/msg/Twist"](linear=zero, angular=zero), covariance=np.zeros(36)))

    def tf_static(self, transforms: Sequence[tuple[str, str, np.ndarray]], stamp_ns: int = 0) -> Any:
        """TFMessage of (parent, child, T_parent_child 4x4) transforms."""
        items = []
        for parent, child, matrix in transforms:
            qx, qy, qz, qw = matrix_to_quaternion(matrix[:3, :3])
            transform = self.types["geometry_msgs/msg/Transform"](
                translation=self.types["geometry_msgs/msg/Vector3"](x=matrix[0, 3], y=matrix[1, 3], z=matrix[2, 3]),
                rotation=self.types["geometry_msgs/msg/Quaternion"](x=qx, y=qy, z=qz, w=qw),
            )
            items.append(self.types["geometry_msgs/msg/TransformStamped"](
                header=self.header(stamp_ns, parent), child_frame_id=child, transform=transform))
        return self.types["tf2_msgs/msg/TFMessage"](transforms=items)


def matrix_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a 3x3 rotation matrix (largest-component method)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = np.trace(m)
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(1.0 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (m[j, i] + m[i, j]) / s
        q[k] = (m[k, i] + m[i, k]) / s
    return float(q[0]), float(q[1]), float(q[2]), float(q[3])


def write_bag(path: Path, storage: str, factory: MessageFactory,
              messages: Sequence[tuple[str, str, int, Any]]) -> Path:
    """Write (topic, msgtype, bag time ns, message) tuples; returns the bag path (a folder for ROS 2)."""
    typestore = factory.typestore
    if storage == "ros1":
        writer: Any = Ros1Writer(path)
        serialize = typestore.serialize_ros1
    else:
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        writer = Ros2Writer(path, version=9, storage_plugin=plugin)
        serialize = typestore.serialize_cdr
    with writer:
        connections: dict[tuple[str, str], Any] = {}
        for topic, msgtype, stamp, msg in messages:
            key = (topic, msgtype)
            if key not in connections:
                connections[key] = writer.add_connection(topic, msgtype, typestore=typestore)
            writer.write(connections[key], stamp, serialize(msg, msgtype))
    return path

"""The infer-bag tests' generated drive (also the fleet tests'): ``make_drive`` writes COUNT frames with camera_info,
LiDAR and /tf_static in any storage; ``read_back`` reads a bag back per topic."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bagtools import MessageFactory, write_bag

from semantic_depth_ros.data.bag_reader import BagReader
from semantic_depth_ros.data.synthetic import render_frame
from semantic_depth_ros.geometry.intrinsics import Intrinsics

HEIGHT, WIDTH = 48, 160
T0 = 1_700_000_000 * 10**9
FRAME_NS = 100_000_000
SCAN_DELAY_NS = 10_000_000
COUNT = 4
FRAMES = [render_frame("kitti_like", i, height=HEIGHT, width=WIDTH, with_lidar=True) for i in range(COUNT)]


def k_matrix(intr: Intrinsics) -> np.ndarray:
    return np.array([[intr.fx, 0.0, intr.cx], [0.0, intr.fy, intr.cy], [0.0, 0.0, 1.0]])


def make_drive(tmp_path: Path, storage: str, *, image: str = "raw", corrupt: tuple[int, ...] = (),
               camera_info: bool = True, name: str = "drive", distortion: tuple[float, ...] = (0.0,) * 5,
               frames: Sequence[Any] = (), image_topic: str = "/cam/image_raw",
               projection: np.ndarray | None = None) -> Path:
    """COUNT frames (or ``frames``, rendered with LiDAR) at 10 Hz on ``image_topic``[/compressed], camera_info (P:
    ``projection``, default [K | 0]), a LiDAR scan 10 ms after each image, /tf_static base_link -> lidar and base_link -> camera_optical. Images in
    ``corrupt`` are undecodable."""
    frames = list(frames) or FRAMES
    f = MessageFactory(storage)
    transforms = [("base_link", "lidar", np.linalg.inv(frames[0].base_to_lidar)),
                  ("base_link", "camera_optical", np.linalg.inv(frames[0].base_to_camera))]
    messages = [("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 1, f.tf_static(transforms, T0))]
    for i, frame in enumerate(frames):
        stamp = T0 + i * FRAME_NS
        if camera_info:
            messages.append(("/cam/camera_info", "sensor_msgs/msg/CameraInfo", stamp,
                             f.camera_info(k_matrix(frame.intrinsics), frame.rgb.shape[1], frame.rgb.shape[0], stamp,
                                           "camera_optical", distortion, projection)))
        if image == "compressed":
            msg = f.compressed_image(frame.rgb, stamp, "camera_optical")
            if i in corrupt:
                msg = dataclasses.replace(msg, data=msg.data[: len(msg.data) // 3])
            messages.append((f"{image_topic}/compressed", "sensor_msgs/msg/CompressedImage", stamp, msg))
        else:
            msg = f.image(frame.rgb, stamp, "camera_optical")
            if i in corrupt:  # declared size larger than the data: must be refused before allocating
                msg = dataclasses.replace(msg, encoding="nv24") if i % 2 else dataclasses.replace(msg, height=4096)
            messages.append((image_topic, "sensor_msgs/msg/Image", stamp, msg))
        cloud = f.pointcloud(frame.lidar_points, stamp + SCAN_DELAY_NS, "lidar")
        messages.append(("/points", "sensor_msgs/msg/PointCloud2", stamp + SCAN_DELAY_NS, cloud))
    path = tmp_path / (f"{name}.bag" if storage == "ros1" else name)
    return write_bag(path, storage, f, messages)


def read_back(path: Path) -> dict[str, list[tuple[int, object, bytes]]]:
    """topic -> [(bag time, deserialized message, raw CDR)] of a bag."""
    result: dict[str, list] = {}
    with BagReader(path) as bag:
        for topic, msgtype in bag.topics().items():
            conns = bag.connections(topic, {msgtype})
            result[topic] = [(t, bag.deserialize(raw, c.msgtype), bytes(raw))
                             for c, t, raw in bag.raw_messages(conns)]
    return result

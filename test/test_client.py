"""The one DDS client of bench, demo and tests, and the rclpy wrappers of the message core (no node process)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.messages import camera_info_fields, cloud_fields, image_fields
from semantic_depth_ros.ros.bench_node import bench_frame
from semantic_depth_ros.ros.client import NANOSECONDS, DepthClient
from semantic_depth_ros.ros.messages import camera_info_msg, cloud_msg, image_msg

pytestmark = pytest.mark.ros  # rclpy client and messages

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def test_rclpy_messages_carry_exactly_the_core_fields() -> None:
    header = Header(frame_id="cam")
    header.stamp.sec, header.stamp.nanosec = 3, 7
    depth = np.arange(6, dtype=np.float32).reshape(2, 3)
    fields = image_fields(depth, "32FC1")
    msg = image_msg(header, fields)
    assert (msg.header.frame_id, msg.header.stamp.nanosec) == ("cam", 7)
    assert (msg.height, msg.width, msg.encoding, msg.step, msg.is_bigendian) == (2, 3, "32FC1", 12, 0)
    assert bytes(msg.data) == bytes(fields.data)
    cloud = cloud_msg(header, cloud_fields(np.ones((2, 3, 4), np.float32)))
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert (cloud.point_step, cloud.row_step, cloud.is_dense, len(cloud.data)) == (16, 48, False, 96)
    info = camera_info_msg(header, camera_info_fields(Intrinsics(100.0, 90.0, 50.0, 40.0, 101, 81)))
    assert (tuple(info.k), tuple(info.r), tuple(info.p), tuple(info.d)) == (
        (100.0, 0.0, 50.0, 0.0, 90.0, 40.0, 0.0, 0.0, 1.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),
        (100.0, 0.0, 50.0, 0.0, 0.0, 90.0, 40.0, 0.0, 0.0, 0.0, 1.0, 0.0), (0.0,) * 5)


def test_bench_camera_info_is_complete_kitti_like() -> None:
    image, info = bench_frame(375, 1242)
    assert (image.height, image.width, image.encoding, image.step) == (375, 1242, "rgb8", 1242 * 3)
    assert (info.width, info.height, info.distortion_model) == (1242, 375, "plumb_bob")
    assert info.k[0] == info.k[4] == pytest.approx(721.5377)
    assert list(info.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]  # the bench used to leave R and P empty
    assert list(info.p) == [info.k[0], 0.0, info.k[2], 0.0, 0.0, info.k[4], info.k[5], 0.0, 0.0, 0.0, 1.0, 0.0]
    _, half = bench_frame(188, 621)
    assert half.k[0] == pytest.approx(721.5377 / 2)


class _FakeCameraNodes:
    """Stands in for depth nodes: publishes ``depth`` on ``<camera>/depth`` and records images on ``<camera>/image``."""

    def __init__(self, cameras: tuple[str, ...]) -> None:
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("fake_depth_nodes", context=self.context)
        self.depth_pubs = {c: self.node.create_publisher(Image, f"{c}/depth", RELIABLE) for c in cameras}
        self.images: dict[str, list[int]] = {c: [] for c in cameras}
        for camera in cameras:
            self.node.create_subscription(
                Image, f"{camera}/image",
                lambda msg, c=camera: self.images[c].append(msg.header.stamp.sec * NANOSECONDS
                                                            + msg.header.stamp.nanosec), RELIABLE)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def publish_depth(self, camera: str, stamp: int) -> None:
        msg = Image(height=1, width=1, encoding="32FC1", step=4, data=bytes(4))
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NANOSECONDS)
        self.depth_pubs[camera].publish(msg)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture()
def two_cameras() -> Iterator[tuple[_FakeCameraNodes, DepthClient]]:
    cameras = ("/cam_a", "/cam_b")
    fake = _FakeCameraNodes(cameras)
    client = DepthClient(cameras=cameras, outputs=("depth",), name="client_test")
    try:
        client.wait_connected(timeout=20.0)
        # discovery is not symmetric: the client may see our publishers before they see its subscriptions, and a
        # volatile message sent in between is lost (a CI flake of the first publish below)
        deadline = time.monotonic() + 20.0
        while not all(pub.get_subscription_count() > 0 for pub in fake.depth_pubs.values()):
            assert time.monotonic() < deadline, "the fake depth publishers never matched the client"
            time.sleep(0.05)
        yield fake, client
    finally:
        client.close()
        fake.close()


def test_client_matches_full_stamps_per_camera(two_cameras: tuple[_FakeCameraNodes, DepthClient]) -> None:
    fake, client = two_cameras
    same_second = (5 * NANOSECONDS + 1, 5 * NANOSECONDS + 2)  # frames one nanosecond apart are different frames
    fake.publish_depth("/cam_b", same_second[0])
    assert client.wait(same_second[0], camera="/cam_b", timeout=10.0) is not None
    assert client.done_at(same_second[1], camera="/cam_b") is None
    assert client.done_at(same_second[0], camera="/cam_a") is None  # another camera's frame
    fake.publish_depth("/cam_b", same_second[1])
    assert client.wait(same_second[1], camera="/cam_b", timeout=10.0) is not None
    taken = client.take(same_second[0], camera="/cam_b")
    assert list(taken) == ["depth"] and client.message("depth", taken["depth"]).header.stamp.nanosec == 1
    assert client.done_at(same_second[0], camera="/cam_b") is None  # taken
    image = Image(height=1, width=1, encoding="rgb8", step=3, data=bytes(3))
    client.publish(7 * NANOSECONDS + 9, image, camera="/cam_a")
    deadline = time.monotonic() + 10.0
    while not fake.images["/cam_a"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.images == {"/cam_a": [7 * NANOSECONDS + 9], "/cam_b": []}


def test_client_raises_what_failed_in_its_executor_thread(two_cameras: tuple[_FakeCameraNodes, DepthClient]) -> None:
    _, client = two_cameras

    def broken() -> None:
        raise ValueError("callback bug")

    client.node.create_timer(0.01, broken)
    client.executor.wake()
    with pytest.raises(RuntimeError, match="executor thread failed: ValueError") as info:
        client.wait(1, timeout=10.0)
    assert isinstance(info.value.__cause__, ValueError)

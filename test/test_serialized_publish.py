"""``ros.serialized_publish``: CDR bytes published through rcl directly (GIL released, no copy by rclpy) arrive
byte for byte at a raw subscriber, a destroyed publisher raises as rclpy's ``publish`` does, and anything else than
an rclpy publisher falls back to its ``publish``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import Image, PointCloud2
from waiting import wait_until

from semantic_depth_ros.messages import MessageHeader, cloud_fields, image_fields, to_cdr
from semantic_depth_ros.ros.serialized_publish import native_publish_available, publish_serialized

pytestmark = pytest.mark.ros  # publishers and subscriptions over DDS


@pytest.fixture()
def graph() -> Iterator[dict[str, Any]]:
    """A publishing and a receiving node in one context, the receiver spun by an executor run by the test."""
    context = Context()
    rclpy.init(context=context)
    source, sink = Node("serialized_source", context=context), Node("serialized_sink", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(sink)
    yield {"source": source, "sink": sink, "executor": executor}
    executor.shutdown()
    source.destroy_node()
    sink.destroy_node()
    rclpy.shutdown(context=context)


def _received(graph: dict[str, Any], msg_type: type, topic: str) -> tuple[Any, list[bytes]]:
    """A publisher on ``topic`` matched to a raw subscription; the list the subscription appends to."""
    got: list[bytes] = []
    graph["sink"].create_subscription(msg_type, topic, got.append, 10, raw=True)
    publisher = graph["source"].create_publisher(msg_type, topic, 10)
    wait_until(lambda: publisher.get_subscription_count() > 0, what=f"{topic}'s subscription")
    return publisher, got


def _spin_until(graph: dict[str, Any], done: Any, what: str) -> None:
    wait_until(lambda: graph["executor"].spin_once(timeout_sec=0.05) or done(), what=what)


def test_bytes_go_through_rcl_and_arrive_unchanged(graph: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    cloud = to_cdr(cloud_fields(rng.random((30, 41, 4), dtype=np.float32)), MessageHeader(5, 6, "camera_optical"))
    image = to_cdr(image_fields(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8), "rgb8"), MessageHeader(1, 2, "c"))
    points, points_got = _received(graph, PointCloud2, "serialized_points")
    images, images_got = _received(graph, Image, "serialized_image")
    assert native_publish_available(points)
    for publisher in (points, images):  # rclpy's own publish (the copying, GIL-holding path) is not used
        monkeypatch.setattr(publisher, "publish", lambda data: pytest.fail("rclpy's publish was called"))
    for _ in range(3):
        publish_serialized(points, cloud)
        publish_serialized(images, image)
    _spin_until(graph, lambda: len(points_got) == 3 and len(images_got) == 3, "every message")
    assert points_got == [cloud] * 3 and images_got == [image] * 3


def test_a_destroyed_publisher_raises_rclpys_invalid_handle(graph: dict[str, Any]) -> None:
    from rclpy.impl.implementation_singleton import rclpy_implementation

    publisher = graph["source"].create_publisher(Image, "serialized_closed", 10)
    graph["source"].destroy_publisher(publisher)
    with pytest.raises(rclpy_implementation.InvalidHandle):
        publish_serialized(publisher, to_cdr(image_fields(np.zeros((2, 2), np.uint8), "mono8"),
                                             MessageHeader(0, 0, "")))


def test_not_bytes_is_refused_and_a_stand_in_publisher_gets_its_publish_called() -> None:
    class StandIn:
        def __init__(self) -> None:
            self.messages: list[bytes] = []

        def publish(self, data: bytes) -> None:
            self.messages.append(data)

    stand_in = StandIn()
    assert not native_publish_available(stand_in)
    publish_serialized(stand_in, b"\x00\x01\x00\x00abcd")
    assert stand_in.messages == [b"\x00\x01\x00\x00abcd"]
    with pytest.raises(TypeError, match="serialized message must be bytes, got bytearray"):
        publish_serialized(stand_in, bytearray(8))

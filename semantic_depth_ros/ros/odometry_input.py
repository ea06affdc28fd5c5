"""The depth node's ego-motion input: one ``nav_msgs/Odometry`` subscription feeding a ``temporal.OdometryBuffer``.

Each message's ``pose.pose`` (the child frame in the world frame) is stored at its header stamp. A message with a
non-finite number or a non-unit quaternion is refused: counted, logged in one line (throttled) and remembered by
the buffer, so the frames it would have posed run without a pose (unfiltered by the motion) instead of with a
guessed one. Each camera reads its poses through a ``temporal.CameraPoses`` with its ``camera_extrinsic``.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from nav_msgs.msg import Odometry
from rclpy.node import Node
from rclpy.qos import QoSProfile

from ..errors import InvalidInputError
from ..temporal import CameraPoses, OdometryBuffer
from ..temporal.odometry import REJECTED_HINT
from .diagnostics import LogThrottle


class OdometryInput:
    """Subscribes ``topic`` on ``node`` and buffers its poses (``buffer``); ``poses(mounting)`` for a camera."""

    def __init__(self, node: Node, topic: str, qos: QoSProfile | int, throttle: LogThrottle) -> None:
        self.node = node
        self.buffer = OdometryBuffer()
        self._throttle = throttle
        self._lock = threading.Lock()
        self.received = 0
        self.rejected = 0
        self.topic = topic
        self._subscription = node.create_subscription(Odometry, topic, self._on_odometry, qos)

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            self.buffer.add_message(msg)
        except InvalidInputError as exc:
            stamp = msg.header.stamp
            with self._lock:
                self.rejected += 1
            if self._throttle.allow("reject:odometry", time.monotonic()):
                topic = self.node.resolve_topic_name(self.topic)
                self.node.get_logger().error(f"rejected {topic} message at stamp {stamp.sec}.{stamp.nanosec:09d}: "
                                             f"{exc}; {REJECTED_HINT}")
            return
        with self._lock:
            self.received += 1

    def poses(self, child_from_camera: np.ndarray) -> CameraPoses:
        """One camera's poses from this buffer and its mounting (``child_from_camera``, 4x4)."""
        return CameraPoses(self.buffer, child_from_camera)

    def diagnostics(self) -> dict[str, str]:
        """Odometry counters for ``/diagnostics``."""
        with self._lock:
            received, rejected = self.received, self.rejected
        return {"odometry_topic": self.node.resolve_topic_name(self.topic), "odometry_received": str(received),
                "odometry_rejected": str(rejected)}

    def destroy(self) -> None:
        """Remove the subscription from the node."""
        self.node.destroy_subscription(self._subscription)

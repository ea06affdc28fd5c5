"""Stream frames through a running depth node over DDS and collect every output, decoded to numpy.

Used by ``semantic-depth demo``: the node runs in its own process exactly as on a vehicle; this client
publishes Image + CameraInfo, subscribes to all outputs (so the node computes all of them) and waits for each
frame's complete set before sending the next (closed loop, no frame is dropped).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..errors import SemanticDepthError
from ..geometry.intrinsics import Intrinsics
from .bench_node import NAMESPACE, dds_profile_environment, start_node_process, stop_node_process, wait_node_ready
from .messages import image_msg
from .node import OUTPUTS

FRAME_TIMEOUT_S = 60.0
_IMAGE_DTYPES = {"32FC1": (np.float32, 1), "mono8": (np.uint8, 1), "rgb8": (np.uint8, 3)}


@dataclass
class NodeFrame:
    """Everything the node published for one input frame, decoded; latency from publish to last output."""

    depth: np.ndarray  # HxW float32 metres, NaN invalid
    depth_intrinsics: Intrinsics
    points: np.ndarray  # h x w x 4 float32 (x, y, z, packed rgb)
    semantic: np.ndarray  # HxW uint8 train ids
    semantic_color: np.ndarray  # HxWx3 uint8
    confidence: np.ndarray  # HxW float32
    depth_color: np.ndarray  # HxWx3 uint8
    frame_id: str
    latency_ms: float


def image_to_array(msg: Image) -> np.ndarray:
    """Decode an output Image (32FC1, mono8, rgb8) to a numpy copy (HxW or HxWx3)."""
    if msg.encoding not in _IMAGE_DTYPES:
        raise SemanticDepthError(f"unexpected output encoding {msg.encoding!r}")
    dtype, channels = _IMAGE_DTYPES[msg.encoding]
    row = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.step)
    pixels = row[:, : msg.width * channels * np.dtype(dtype).itemsize].copy().view(dtype)
    return pixels.reshape(msg.height, msg.width, channels) if channels > 1 else pixels.reshape(msg.height, msg.width)


def cloud_to_array(msg: PointCloud2) -> np.ndarray:
    """Decode our organised PointCloud2 (x y z rgb float32, point_step 16) to h x w x 4 float32."""
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width, 4).copy()


class NodeClient:
    """Publisher of frames and collector of the node's outputs, in its own ROS context and executor thread."""

    def __init__(self, domain_id: int) -> None:
        self.context = Context()
        # The package's Fast DDS profile (unless the user names one) for this process's participant, which
        # rmw_fastrtps creates with the first node; Fast DDS reads the file once per process, so the variable is
        # removed again afterwards and does not leak into processes the caller starts later.
        profile_env = dds_profile_environment(os.environ)
        os.environ.update(profile_env)
        try:
            rclpy.init(context=self.context, domain_id=domain_id)
            self.node = Node("semantic_depth_demo_client", namespace=NAMESPACE, context=self.context)
        finally:
            for name in profile_env:
                os.environ.pop(name, None)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.cond = threading.Condition()
        self.received: dict[int, dict[str, object]] = {}
        for key, (topic, msg_type) in OUTPUTS.items():
            self.node.create_subscription(msg_type, topic, self._callback(key), QoSProfile(depth=10))
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - ends when the context shuts down
            pass

    def _callback(self, key: str):
        def store(msg: object) -> None:
            stamp = msg.header.stamp.sec
            with self.cond:
                self.received.setdefault(stamp, {})[key] = (msg, time.perf_counter())
                self.cond.notify_all()
        return store

    def wait_connected(self, timeout: float) -> None:
        """Until the node subscribes to our image and publishes every output topic."""
        deadline = time.monotonic() + timeout
        topics = [self.node.resolve_topic_name(topic) for topic, _ in OUTPUTS.values()]
        while time.monotonic() < deadline:
            if (self.image_pub.get_subscription_count() > 0
                    and all(self.node.count_publishers(topic) > 0 for topic in topics)):
                time.sleep(0.5)  # let the output subscriptions match too
                return
            time.sleep(0.1)
        raise SemanticDepthError(f"the depth node did not connect within {timeout:.0f} s")

    def process(self, index: int, rgb: np.ndarray, intrinsics: Intrinsics) -> NodeFrame:
        """Publish one frame (stamp sec = index + 1) and wait for all its outputs."""
        stamp = Time(sec=index + 1, nanosec=0)
        header_kwargs = {"stamp": stamp, "frame_id": "camera_optical"}
        info = CameraInfo(height=intrinsics.height, width=intrinsics.width, distortion_model="plumb_bob",
                          d=[0.0] * 5, k=list(intrinsics.k()), p=list(intrinsics.p()),
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0])
        info.header.stamp, info.header.frame_id = stamp, header_kwargs["frame_id"]
        image = image_msg(info.header, np.ascontiguousarray(rgb), "rgb8")
        self.info_pub.publish(info)
        time.sleep(0.05)  # the node keeps the latest camera_info: make sure it has this one first
        sent = time.perf_counter()
        self.image_pub.publish(image)
        deadline = time.monotonic() + FRAME_TIMEOUT_S
        with self.cond:
            while len(self.received.get(index + 1, {})) < len(OUTPUTS):
                if not self.cond.wait(timeout=max(0.0, deadline - time.monotonic())):
                    missing = sorted(set(OUTPUTS) - set(self.received.get(index + 1, {})))
                    raise SemanticDepthError(f"frame {index}: no {', '.join(missing)} from the node "
                                             f"within {FRAME_TIMEOUT_S:.0f} s")
            outputs = self.received.pop(index + 1)
        return _decode(outputs, sent)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def _decode(outputs: dict[str, object], sent: float) -> NodeFrame:
    msgs = {key: value[0] for key, value in outputs.items()}
    last = max(value[1] for value in outputs.values())
    info = msgs["depth_info"]
    return NodeFrame(
        depth=image_to_array(msgs["depth"]),
        depth_intrinsics=Intrinsics.from_k(list(info.k), info.width, info.height),
        points=cloud_to_array(msgs["points"]),
        semantic=image_to_array(msgs["semantic"]),
        semantic_color=image_to_array(msgs["semantic_color"]),
        confidence=image_to_array(msgs["confidence"]),
        depth_color=image_to_array(msgs["depth_color"]),
        frame_id=msgs["depth"].header.frame_id,
        latency_ms=(last - sent) * 1000.0,
    )


def stream_through_node(checkpoint: Path, frames: Iterable[tuple[np.ndarray, Intrinsics]], *,
                        device: str = "auto") -> Iterator[NodeFrame]:
    """Start the depth node on ``checkpoint`` in a child process, stream ``frames`` (RGB, intrinsics), yield outputs."""
    domain = random.SystemRandom().randint(1, 100)
    process = start_node_process(checkpoint, device=device, precision="auto", backend="auto", domain_id=domain,
                                 num_threads=None, input_reliability="reliable")
    client: NodeClient | None = None
    try:
        wait_node_ready(process)
        client = NodeClient(domain)
        client.wait_connected(timeout=30.0)
        for index, (rgb, intrinsics) in enumerate(frames):
            yield client.process(index, rgb, intrinsics)
    finally:
        if client is not None:
            client.close()
        stop_node_process(process)

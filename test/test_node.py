"""The depth node over a real DDS graph (rclpy wheels): outputs, headers, points, parameters, bad input, exits.

One in-process node per input transport (module-scoped) spins with a test client node on an executor in a
background thread (paused while the test creates or destroys subscriptions); the exit codes are checked on the
node run as a subprocess. No test depends on another having run: a test that needs a camera_info sends it
(``with_info``), one that needs a node that never received one gets its own (``fresh_node``), and ``graph`` puts
back the dynamic parameters a test changed.
"""

from __future__ import annotations

import contextlib
import math
import struct
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Log
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Header
from waiting import TIMEOUT, wait_until

from semantic_depth_ros.errors import CheckpointError, ConfigError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import unpack_rgb
from semantic_depth_ros.labels import CITYSCAPES_PALETTE
from semantic_depth_ros.inference.colorize import colorize_depth
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.pipeline.stages import FRAME_PATH_PARTS
from semantic_depth_ros.ros import camera_channel
from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES
from semantic_depth_ros.ros.node import DepthNode
from semantic_depth_ros.ros.node_process import NodeProcess
from semantic_depth_ros.ros.params import DYNAMIC_PARAMETERS, PARAMETER_NAMES
from semantic_depth_ros.ros.serialized_publish import publish_serialized

pytestmark = pytest.mark.ros  # a node over DDS

HEIGHT, WIDTH = 48, 160
FRAME_ID = "test_camera_optical"
K = (150.0, 0.0, 79.5, 0.0, 140.0, 23.5, 0.0, 0.0, 1.0)
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
ALL_OUTPUTS = tuple(OUTPUT_MESSAGES)


def make_image(seed: int) -> np.ndarray:
    """A smooth HEIGHTxWIDTHx3 RGB test picture (differs per seed)."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack((u * 255 // (WIDTH - 1), v * 255 // (HEIGHT - 1), np.full_like(u, (seed * 37) % 256)), axis=-1)
    return rgb.astype(np.uint8)


def image_msg(rgb: np.ndarray, stamp: int, encoding: str = "rgb8") -> Image:
    msg = Image()
    msg.header = Header(frame_id=FRAME_ID)
    msg.header.stamp.sec = stamp
    msg.header.stamp.nanosec = 1000 + stamp
    msg.height, msg.width = rgb.shape[:2]
    msg.encoding = encoding
    msg.step = rgb.shape[1] * 3
    msg.data = rgb.tobytes()
    return msg


def info_msg(k: tuple[float, ...] = K, width: int = WIDTH, height: int = HEIGHT) -> CameraInfo:
    msg = CameraInfo(width=width, height=height, k=list(k), distortion_model="plumb_bob", d=[0.0] * 5)
    msg.header.frame_id = FRAME_ID
    return msg


def image_array(msg: Image) -> np.ndarray:
    dtype, channels = {"32FC1": (np.float32, 1), "mono8": (np.uint8, 1), "rgb8": (np.uint8, 3)}[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    assert msg.step == msg.width * channels * itemsize
    assert len(msg.data) == msg.height * msg.step
    data = np.frombuffer(bytes(msg.data), dtype=dtype)
    return data.reshape(msg.height, msg.width, channels) if channels > 1 else data.reshape(msg.height, msg.width)


def cloud_array(msg: PointCloud2) -> np.ndarray:
    assert len(msg.data) == msg.height * msg.row_step == msg.height * msg.width * 16
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(msg.height, msg.width, 4)


class Spinner:
    """Spins an executor in a background thread; ``paused()`` stops it between iterations so that the test can
    create and destroy subscriptions without racing the executor's wait set."""

    def __init__(self, executor: SingleThreadedExecutor) -> None:
        self.executor = executor
        self._running = True
        self._pause = threading.Event()
        self._idle = threading.Event()
        self._resume = threading.Event()
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self._running:
            if self._pause.is_set():
                self._idle.set()
                self._resume.wait()
                continue
            self.executor.spin_once(timeout_sec=0.01)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._resume.clear()
        self._idle.clear()
        self._pause.set()
        assert self._idle.wait(timeout=TIMEOUT), "executor did not pause"
        try:
            yield
        finally:
            self._pause.clear()
            self._resume.set()

    def stop(self) -> None:
        self._running = False
        self._pause.clear()
        self._resume.set()
        self.thread.join(timeout=5.0)


class Client:
    """The test's side of the graph: publishes camera messages, collects outputs by stamp, reads /rosout."""

    def __init__(self, node: Node, spinner: Spinner, namespace: str = "") -> None:
        self.node = node
        self.spinner = spinner
        self.ns = namespace
        self.lock = threading.Lock()
        self.received: dict[str, dict[int, Any]] = {}
        self.subscriptions: dict[str, Any] = {}
        self.logs: list[str] = []
        node.create_subscription(Log, "/rosout", self._on_log, QoSProfile(depth=100))
        self.image_pub = node.create_publisher(Image, f"{namespace}/image", RELIABLE)
        self.compressed_pub = node.create_publisher(CompressedImage, f"{namespace}/image/compressed", RELIABLE)
        self.info_pub = node.create_publisher(CameraInfo, f"{namespace}/camera_info", RELIABLE)

    def _on_log(self, msg: Log) -> None:
        with self.lock:
            self.logs.append(msg.msg)

    def subscribe(self, *keys: str) -> None:
        with self.spinner.paused():
            for key in keys:
                topic, msg_type = OUTPUT_MESSAGES[key]

                def store(msg: Any, key: str = key) -> None:
                    with self.lock:
                        self.received.setdefault(key, {})[msg.header.stamp.sec] = msg

                self.subscriptions[key] = self.node.create_subscription(msg_type, f"{self.ns}/{topic}", store,
                                                                        RELIABLE)

    def unsubscribe_all(self, depth_node: DepthNode) -> None:
        with self.spinner.paused():
            for subscription in self.subscriptions.values():
                self.node.destroy_subscription(subscription)
        self.subscriptions.clear()
        wait_until(lambda: not depth_node.subscribed_outputs(), what="the node to see no subscribers")

    def get(self, key: str, stamp: int) -> Any:
        with self.lock:
            return self.received.get(key, {}).get(stamp)

    def send(self, msg: Image | CompressedImage, keys: tuple[str, ...], depth_node: DepthNode,
             timeout: float = TIMEOUT) -> dict[str, Any]:
        """Publish ``msg`` (again every 2 s: the input is best effort) until every output in ``keys`` arrived."""
        publisher = self.compressed_pub if isinstance(msg, CompressedImage) else self.image_pub
        wait_until(lambda: publisher.get_subscription_count() > 0, what="the node's image subscription")
        wait_until(lambda: set(keys) <= set(depth_node.subscribed_outputs()), what=f"node to see subscribers {keys}")
        stamp = msg.header.stamp.sec
        deadline = time.monotonic() + timeout
        while True:
            publisher.publish(msg)
            resend = time.monotonic() + 2.0
            while time.monotonic() < min(resend, deadline):
                if all(self.get(key, stamp) is not None for key in keys):
                    return {key: self.get(key, stamp) for key in keys}
                time.sleep(0.01)
            if time.monotonic() >= deadline:
                missing = [key for key in keys if self.get(key, stamp) is None]
                raise AssertionError(f"outputs {missing} of frame {stamp} never arrived")

    def send_info(self, info: CameraInfo, depth_node: DepthNode) -> None:
        """Publish ``info`` until the node holds it as its latest camera_info."""
        wait_until(lambda: self.info_pub.get_subscription_count() > 0, what="the node's camera_info subscription")

        def arrived() -> bool:
            current = depth_node.latest_camera_info
            return current is not None and list(current.k) == list(info.k) and current.width == info.width

        deadline = time.monotonic() + TIMEOUT
        while not arrived():
            assert time.monotonic() < deadline, "camera_info never reached the node"
            self.info_pub.publish(info)
            time.sleep(0.05)

    def log_containing(self, text: str) -> list[str]:
        with self.lock:
            return [line for line in self.logs if text in line]


@pytest.fixture(scope="module")
def ros(tiny_checkpoint: Path) -> Iterator[dict[str, Any]]:
    torch.set_num_threads(1)
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    common = [Parameter("model_path", value=str(tiny_checkpoint)), Parameter("device", value="cpu")]
    depth_node = DepthNode(context=context, parameter_overrides=common)
    client_node = Node("depth_node_test_client", context=context)
    executor.add_node(depth_node)
    executor.add_node(client_node)
    spinner = Spinner(executor)
    env = {"context": context, "executor": executor, "spinner": spinner, "node": depth_node,
           "client": Client(client_node, spinner), "checkpoint": tiny_checkpoint, "stamp": iter(range(1, 10**6))}
    yield env
    spinner.stop()
    executor.shutdown(timeout_sec=5.0)
    for node in env.get("extra_nodes", []):
        node.close()
    depth_node.close()
    client_node.destroy_node()
    rclpy.shutdown(context=context)


@pytest.fixture()
def graph(ros: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The module's graph; subscriptions made by a test are removed after it, and dynamic parameters it changed
    get their values back (also when it failed half-way)."""
    node = ros["node"]
    before = {name: node.get_parameter(name).value for name in DYNAMIC_PARAMETERS}
    yield ros
    ros["client"].unsubscribe_all(node)
    changed = [Parameter(name, value=value) for name, value in before.items()
               if node.get_parameter(name).value != value]
    assert all(result.successful for result in node.set_parameters(changed))


@pytest.fixture()
def with_info(graph: dict[str, Any]) -> dict[str, Any]:
    """The module's graph, its node holding the camera_info ``info_msg()``."""
    graph["client"].send_info(info_msg(), graph["node"])
    return graph


@pytest.fixture()
def fresh_node(ros: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A node of this test's own that never received a camera_info (namespace ``/fresh_<n>``), and its client.

    Kept until the module's end with the other extra nodes: destroying it mid-module, after another test module
    had shut its own ROS context down, was seen to cut the module node's log lines from /rosout."""
    namespace = f"fresh_{next(ros['stamp'])}"
    params = [Parameter("model_path", value=str(ros["checkpoint"])), Parameter("device", value="cpu")]
    node = DepthNode(f"{namespace}_depth_node", context=ros["context"], namespace=namespace,
                     parameter_overrides=params)
    ros.setdefault("extra_nodes", []).append(node)
    with ros["spinner"].paused():
        client = Client(Node(f"{namespace}_client", context=ros["context"]), ros["spinner"], namespace=f"/{namespace}")
        ros["executor"].add_node(node)
        ros["executor"].add_node(client.node)
    yield {**ros, "node": node, "client": client}
    client.unsubscribe_all(node)


def stamp(env: dict[str, Any]) -> int:
    return next(env["stamp"])


def expected_points(depth: np.ndarray, k: np.ndarray, stride: int) -> np.ndarray:
    """Pinhole back-projection of every ``stride``-th depth pixel with the published K, float64."""
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride].astype(np.float64)
    z = depth[::stride, ::stride].astype(np.float64)
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    return np.stack(((u - cx) / fx * z, (v - cy) / fy * z, z), axis=-1)


def assert_points_match_depth(cloud: PointCloud2, depth_msg: Image, info: CameraInfo, stride: int = 1) -> None:
    depth = image_array(depth_msg)
    points = cloud_array(cloud)
    expected = expected_points(depth, np.asarray(info.k), stride)
    assert points.shape[:2] == expected.shape[:2]
    xyz = points[..., :3].astype(np.float64)
    assert np.array_equal(np.isnan(xyz), np.isnan(expected))
    valid = ~np.isnan(expected[..., 2])
    assert valid.any()
    assert np.abs(xyz[valid] - expected[valid]).max() <= 1e-4


# ------------------------------------------------------------------------------------------ no camera_info
def test_declared_parameters_are_exactly_the_table(ros: dict[str, Any]) -> None:
    bare = Node("bare_node_for_parameter_names", context=ros["context"])
    ros_own = set(bare._parameters)
    bare.destroy_node()
    assert set(ros["node"]._parameters) - ros_own == set(PARAMETER_NAMES)


def test_without_intrinsics_images_are_published_but_not_points(fresh_node: dict[str, Any]) -> None:
    graph = fresh_node
    client, node = graph["client"], graph["node"]
    client.subscribe("depth", "points", "depth_info")
    s = stamp(graph)
    out = client.send(image_msg(make_image(s), s), ("depth",), node)
    time.sleep(0.5)  # points and depth/camera_info would be published right after depth
    assert client.get("points", s) is None and client.get("depth_info", s) is None
    assert image_array(out["depth"]).shape == (HEIGHT, WIDTH)
    wait_until(lambda: client.log_containing("no camera_info"), what="the missing-intrinsics warning")


def test_fallback_intrinsics_give_points_and_depth_camera_info(fresh_node: dict[str, Any]) -> None:
    graph = fresh_node
    client, node = graph["client"], graph["node"]
    client.subscribe("depth", "points", "depth_info")
    fallback = [Parameter("fx", value=120.0), Parameter("fy", value=125.0), Parameter("cx", value=80.0),
                Parameter("cy", value=20.0)]
    assert all(r.successful for r in node.set_parameters(fallback))
    s = stamp(graph)
    out = client.send(image_msg(make_image(s), s), ("depth", "points", "depth_info"), node)
    info = out["depth_info"]
    assert list(info.k) == [120.0, 0.0, 80.0, 0.0, 125.0, 20.0, 0.0, 0.0, 1.0]
    assert_points_match_depth(out["points"], out["depth"], info)


# ------------------------------------------------------------------------------------------ with camera_info
def test_every_output_encodings_sizes_headers_and_values(with_info: dict[str, Any]) -> None:
    graph = with_info
    client, node = graph["client"], graph["node"]
    client.subscribe(*ALL_OUTPUTS)
    s = stamp(graph)
    rgb = make_image(s)
    out = client.send(image_msg(rgb, s), ALL_OUTPUTS, node)
    for key, msg in out.items():
        assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (s, 1000 + s, FRAME_ID), key
    encodings = {k: out[k].encoding for k in ("depth", "semantic", "semantic_color", "confidence", "depth_color")}
    assert encodings == {"depth": "32FC1", "semantic": "mono8", "semantic_color": "rgb8", "confidence": "32FC1",
                         "depth_color": "rgb8"}
    for key in encodings:
        assert (out[key].height, out[key].width, out[key].is_bigendian) == (HEIGHT, WIDTH, 0), key

    depth = image_array(out["depth"])
    finite = depth[np.isfinite(depth)]
    assert finite.size > 0 and np.all(finite >= 1.0) and np.all(finite <= 80.0)  # the checkpoint's range
    assert not np.any(depth == 0.0)  # invalid is NaN, never 0
    reference = DepthEstimator(graph["checkpoint"], device="cpu", precision=node.estimator.precision).estimate(
        rgb, camera=Intrinsics.from_k(K, WIDTH, HEIGHT))
    np.testing.assert_allclose(depth, reference.depth.numpy(), rtol=1e-5, equal_nan=True)

    info = out["depth_info"]
    assert (info.width, info.height, info.distortion_model) == (WIDTH, HEIGHT, "plumb_bob")
    assert list(info.k) == list(K)
    assert list(info.p) == [150.0, 0.0, 79.5, 0.0, 0.0, 140.0, 23.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert list(info.d) == [0.0] * 5 and list(info.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]

    cloud = out["points"]
    assert (cloud.height, cloud.width, cloud.point_step, cloud.row_step) == (HEIGHT, WIDTH, 16, WIDTH * 16)
    assert (cloud.is_dense, cloud.is_bigendian) == (False, False)
    assert [(f.name, f.offset, f.datatype, f.count) for f in cloud.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert_points_match_depth(cloud, out["depth"], info)
    assert np.array_equal(unpack_rgb(cloud_array(cloud)[..., 3]), rgb.reshape(-1, 3))

    semantic = image_array(out["semantic"])
    assert semantic.max() <= 18
    assert np.array_equal(image_array(out["semantic_color"]), CITYSCAPES_PALETTE[semantic])
    confidence = image_array(out["confidence"])  # the estimator's, from the bin distribution of this frame
    np.testing.assert_allclose(confidence, reference.confidence.numpy(), rtol=1e-5, atol=1e-6)
    assert confidence.std() > 0.0  # a picture, not a constant
    expected_colours = colorize_depth(torch.from_numpy(depth.copy()), *node.estimator.depth_range()).numpy()
    assert np.array_equal(image_array(out["depth_color"]), expected_colours)  # the published depth's colours


def test_bgr_and_mono_inputs_are_converted_to_rgb(with_info: dict[str, Any]) -> None:
    graph = with_info
    client, node = graph["client"], graph["node"]
    client.subscribe("points")
    s = stamp(graph)
    rgb = make_image(s)
    cloud = client.send(image_msg(np.ascontiguousarray(rgb[..., ::-1]), s, "bgr8"), ("points",), node)["points"]
    assert np.array_equal(unpack_rgb(cloud_array(cloud)[..., 3]), rgb.reshape(-1, 3))


def test_only_subscribed_outputs_are_computed_and_published(graph: dict[str, Any],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client, node = graph["client"], graph["node"]
    published: list[str] = []
    requested: list[tuple[str, ...]] = []
    keys = {id(publisher): key for key, publisher in node.channels[""].publishers.items()}
    monkeypatch.setattr(camera_channel, "publish_serialized", lambda publisher, data, real=publish_serialized: (
        published.append(keys[id(publisher)]), real(publisher, data))[-1])
    real_estimate = node.estimator.estimate_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        requested.append(tuple(kwargs["outputs"]))
        return real_estimate(*args, **kwargs)

    monkeypatch.setattr(node.estimator, "estimate_batch", spy)
    client.subscribe("depth")
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    node.wait_idle(5.0)
    assert set(published) == {"depth"} and set(requested) == {("depth",)}
    client.unsubscribe_all(node)
    published.clear()
    requested.clear()
    client.subscribe("semantic_color")
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("semantic_color",), node)
    node.wait_idle(5.0)
    assert set(published) == {"semantic_color"} and set(requested) == {("semantic",)}
    client.unsubscribe_all(node)
    published.clear()
    requested.clear()
    received = node.stats.frames_received
    s = stamp(graph)
    client.image_pub.publish(image_msg(make_image(s), s))  # nobody listens: nothing is computed or published
    wait_until(lambda: node.stats.frames_received > received, what="the node to receive the frame")
    node.wait_idle(5.0)
    assert published == [] and requested == []


def test_dynamic_parameters_take_effect_and_static_ones_are_rejected(with_info: dict[str, Any]) -> None:
    graph = with_info
    client, node = graph["client"], graph["node"]
    client.subscribe("depth", "points", "depth_info")
    s = stamp(graph)
    first = client.send(image_msg(make_image(s), s), ("depth",), node)
    depth = image_array(first["depth"])
    cut = float(np.nanmedian(depth))
    results = node.set_parameters([Parameter("max_depth", value=cut), Parameter("point_stride", value=3)])
    assert all(r.successful for r in results)
    s = stamp(graph)
    out = client.send(image_msg(make_image(s - 1), s), ("depth", "points", "depth_info"), node)
    capped = image_array(out["depth"])
    assert np.array_equal(np.isnan(capped), np.isnan(depth) | (depth > cut))  # same image: NaN beyond max_depth
    assert node.estimator.depth_range() == (node.estimator.config.min_depth, cut)  # handed over once, as changed
    assert np.isnan(capped).any() and np.nanmax(capped) <= cut
    assert (out["points"].height, out["points"].width) == (math.ceil(HEIGHT / 3), math.ceil(WIDTH / 3))
    assert_points_match_depth(out["points"], out["depth"], out["depth_info"], stride=3)

    for name, value in (("model_path", "/other.pt"), ("device", "cuda"), ("input_transport", "compressed"),
                        ("output_qos_reliability", "best_effort")):
        (result,) = node.set_parameters([Parameter(name, value=value)])
        assert not result.successful
        assert result.reason == f"parameter {name} is static (read at start-up): restart the node to change it"
    (result,) = node.set_parameters([Parameter("point_stride", value=0)])
    assert not result.successful and "point_stride" in result.reason
    (result,) = node.set_parameters([Parameter("min_depth", value=cut + 1.0)])
    assert not result.successful and "must be smaller than max_depth" in result.reason
    (result,) = node.set_parameters([Parameter("max_depth", value=node.estimator.config.min_depth / 2)])
    assert not result.successful and "leave no depth range" in result.reason  # would fail every frame
    assert node.get_parameter("model_path").value == str(graph["checkpoint"])


def test_network_output_resolution_scales_depth_and_camera_info(with_info: dict[str, Any]) -> None:
    graph = with_info
    client, node = graph["client"], graph["node"]
    client.subscribe("depth", "points", "depth_info")
    assert node.set_parameters([Parameter("output_resolution", value="network")])[0].successful
    s = stamp(graph)
    out = client.send(image_msg(make_image(s), s), ("depth", "points", "depth_info"), node)
    info = out["depth_info"]
    box_w, box_h = 192, round(HEIGHT * 192 / WIDTH)  # fits 64x192 keeping the aspect ratio
    assert (out["depth"].width, out["depth"].height, info.width, info.height) == (box_w, box_h, box_w, box_h)
    assert math.isclose(info.k[0], K[0] * box_w / WIDTH) and math.isclose(info.k[4], K[4] * box_h / HEIGHT)
    assert_points_match_depth(out["points"], out["depth"], info)


BAD_IMAGES: list[tuple[str, Callable[[Image], None], str]] = [
    ("encoding", lambda m: setattr(m, "encoding", "8UC3"), "image.encoding = '8UC3' is a generic OpenCV type"),
    ("short data", lambda m: setattr(m, "data", bytes(m.height * m.step - 1)), "len(image.data) ="),
    ("step", lambda m: setattr(m, "step", m.width * 3 - 1), "image.step = 479 is smaller than width*3 bytes"),
    ("zero height", lambda m: setattr(m, "height", 0), "image.height = 0 is outside"),
    ("absurd width", lambda m: setattr(m, "width", 100000), "image.width = 100000 is outside"),
]


@pytest.mark.parametrize(("case", "corrupt", "error"), BAD_IMAGES, ids=[c[0] for c in BAD_IMAGES])
def test_bad_image_is_rejected_and_the_next_good_frame_is_served(graph: dict[str, Any], case: str,
                                                                 corrupt: Callable[[Image], None], error: str) -> None:
    client, node = graph["client"], graph["node"]
    client.subscribe("depth")
    rejected = node.stats.messages_rejected
    bad_stamp = stamp(graph)
    bad = image_msg(make_image(bad_stamp), bad_stamp)
    corrupt(bad)
    wait_until(lambda: set(node.subscribed_outputs()) == {"depth"}, what="the depth subscription")
    client.image_pub.publish(bad)
    wait_until(lambda: client.log_containing(error), what=f"an error naming the field ({error})")
    assert node.stats.messages_rejected == rejected + 1
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    assert client.get("depth", bad_stamp) is None


BAD_INFOS: list[tuple[str, CameraInfo, str]] = [
    ("zero fx", info_msg(k=(0.0, 0.0, 79.5, 0.0, 140.0, 23.5, 0.0, 0.0, 1.0)), "camera_info.k[0] (fx) = 0.0"),
    ("infinite fy", info_msg(k=(150.0, 0.0, 79.5, 0.0, math.inf, 23.5, 0.0, 0.0, 1.0)), "camera_info.k[4] (fy) = inf"),
    ("size mismatch", info_msg(width=WIDTH * 2, height=HEIGHT * 2), "camera_info size 320x96 does not match image"),
]


@pytest.mark.parametrize(("case", "info", "error"), BAD_INFOS, ids=[c[0] for c in BAD_INFOS])
def test_bad_camera_info_is_rejected_and_the_next_good_frame_is_served(graph: dict[str, Any], case: str,
                                                                       info: CameraInfo, error: str) -> None:
    client, node = graph["client"], graph["node"]
    client.subscribe("depth")
    client.send_info(info, node)
    bad_stamp = stamp(graph)
    wait_until(lambda: set(node.subscribed_outputs()) == {"depth"}, what="the depth subscription")
    client.image_pub.publish(image_msg(make_image(bad_stamp), bad_stamp))
    wait_until(lambda: client.log_containing(error), what=f"an error naming the field ({error})")
    client.send_info(info_msg(), node)
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    assert client.get("depth", bad_stamp) is None


def test_diagnostics_report_rates_latency_drops_device_and_model(graph: dict[str, Any]) -> None:
    client, node = graph["client"], graph["node"]
    arrays: list[DiagnosticArray] = []
    client.subscribe("depth")
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    with graph["spinner"].paused():
        subscription = client.node.create_subscription(DiagnosticArray, "/diagnostics", arrays.append, RELIABLE)
    name = "depth_node: semantic depth"  # other tests' nodes may publish /diagnostics too

    def ours() -> list[DiagnosticStatus]:
        return [array.status[0] for array in list(arrays) if array.status[0].name == name]

    wait_until(lambda: ours(), timeout=5.0, what="a /diagnostics message of the node")
    with graph["spinner"].paused():
        client.node.destroy_subscription(subscription)
    status = ours()[-1]
    values = {kv.key: kv.value for kv in status.values}
    assert {"input_rate_hz", "output_rate_hz", "latency_p50_ms", "latency_p95_ms", "frames_dropped"} <= set(values)
    assert (values["device"], values["model"], values["trained"]) == ("cpu", "tiny_test", "false")
    assert values["precision"] == node.estimator.precision and values["precision"] in ("fp32", "bf16")
    assert values["runtime"] == f"torch eager {values['precision']} on cpu"  # what executes the network
    assert int(values["frames_published"]) >= 1 and float(values["latency_p50_ms"]) > 0.0
    assert float(values["input_rate_hz"]) > 0.0
    assert float(values["peak_rss_mb"]) > 100.0  # this test process holds torch and rclpy
    # the frame path, part by part (p50/p95 ms over the window), and what it published; no stage is on here
    for part in FRAME_PATH_PARTS:
        for quantile in ("p50", "p95"):
            assert math.isfinite(float(values[f"{part}_ms_{quantile}"])), (part, values)
            assert float(values[f"{part}_ms_{quantile}"]) >= 0.0
    assert float(values["network_ms_p50"]) > 0.0 and float(values["publish_ms_p50"]) > 0.0
    assert float(values["published_mb_per_s"]) > 0.0 and values["publish_failures"] == "0"
    assert not [key for key in values if key.startswith(("temporal_ms", "road_scale_ms"))]


def test_a_batch_in_flight_across_deactivate_and_activate_publishes_nothing(graph: dict[str, Any],
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch that outlives deactivate's wait must not publish its (stale) frame once the node is active again."""
    client, node = graph["client"], graph["node"]
    client.subscribe("depth")
    wait_until(lambda: client.image_pub.get_subscription_count() > 0, what="the node's image subscription")
    wait_until(lambda: set(node.subscribed_outputs()) == {"depth"}, what="the depth subscription")
    started, release = threading.Event(), threading.Event()
    real_estimate = node.estimator.estimate_batch

    def held(*args: Any, **kwargs: Any) -> Any:  # the first batch waits until the test releases it
        if not started.is_set():
            started.set()
            release.wait(TIMEOUT)
        return real_estimate(*args, **kwargs)

    monkeypatch.setattr(node.estimator, "estimate_batch", held)
    resets: list[int] = []
    monkeypatch.setattr(node.channels[""].outputs, "reset", lambda: resets.append(len(resets)))
    published, dropped = node.stats.frames_published, node.dropped_of("")
    stale = stamp(graph)
    client.image_pub.publish(image_msg(make_image(stale), stale))
    assert started.wait(TIMEOUT), "the frame never reached the network"
    node.core.deactivate(timeout=0.05)  # gives up waiting: the batch is still in flight
    assert resets == []  # its stages may still run: they are reset by the worker, before its next batch
    node.core.activate()
    release.set()
    assert node.wait_idle(TIMEOUT)
    assert node.stats.frames_published == published  # the frame received before deactivate was not published
    assert node.dropped_of("") == dropped + 1  # ... and counts as dropped for its camera
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)  # the next frame is served
    assert client.get("depth", stale) is None
    assert resets == [0]  # once, before the frame after the deactivate


def test_the_publisher_thread_keeps_the_newest_frame_and_a_deactivate_stops_what_was_handed_over(
        graph: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Frames are published off the worker thread: while one is being published the next waits in a one-frame
    slot (the newest wins, a replaced one counts as dropped). A deactivate drops the frame waiting there and stops
    the one being published before its next message, even after a quick activate."""
    client, node = graph["client"], graph["node"]
    client.subscribe("depth", "depth_color")
    wait_until(lambda: client.image_pub.get_subscription_count() > 0, what="the node's image subscription")
    wait_until(lambda: set(node.subscribed_outputs()) == {"depth", "depth_color"}, what="the subscriptions")
    keys = {id(publisher): key for key, publisher in node.channels[""].publishers.items()}
    held: dict[int, threading.Event] = {}
    entered, published = threading.Event(), []

    def holding(publisher: Any, data: bytes) -> None:  # the first message of a held stamp waits for the test
        sec, nanosec = struct.unpack_from("<iI", data, 4)  # the header stamp, after the encapsulation
        stamp_s = sec if nanosec == 1000 + sec else -1
        published.append((stamp_s, keys[id(publisher)]))
        if stamp_s in held and not held[stamp_s].is_set():
            entered.set()
            held[stamp_s].wait(TIMEOUT)
        publish_serialized(publisher, data)

    monkeypatch.setattr(camera_channel, "publish_serialized", holding)
    handed = node.core.publisher.worker.submitted_of

    def send_and_hand_over(hold: bool) -> int:
        count, s = handed(""), stamp(graph)
        if hold:
            held[s] = threading.Event()
            entered.clear()
        client.image_pub.publish(image_msg(make_image(s), s))
        wait_until(lambda: handed("") > count, what=f"frame {s} to reach the publisher")
        if hold:
            assert entered.wait(TIMEOUT), "the publisher never took the frame"
        return s

    frames_published, dropped = node.stats.frames_published, node.dropped_of("")
    first = send_and_hand_over(hold=True)  # being published, held at its first message
    send_and_hand_over(hold=False)  # waits for the publisher ...
    newest = send_and_hand_over(hold=False)  # ... and is replaced by the next
    held[first].set()
    assert node.wait_idle(TIMEOUT)
    both = ["depth", "depth_color"]  # depth first
    assert published == [(first, key) for key in both] + [(newest, key) for key in both]
    assert node.dropped_of("") == dropped + 1
    assert node.stats.frames_published == frames_published + 2
    wait_until(lambda: client.get("depth_color", newest) is not None, what="the newest frame's outputs")

    last = send_and_hand_over(hold=True)  # held at its depth message when the node is deactivated
    stale = send_and_hand_over(hold=False)  # serialized and waiting
    node.core.deactivate(timeout=0.05)
    node.core.activate()
    held[last].set()
    assert node.wait_idle(TIMEOUT)
    assert published[4:] == [(last, "depth")]  # its depth_color and the waiting frame never went out
    assert node.dropped_of("") == dropped + 3  # both count as dropped, not as published
    assert node.stats.frames_published == frames_published + 2
    assert client.get("depth", stale) is None and client.get("depth_color", last) is None


def test_stages_see_the_header_stamp_are_reset_on_deactivate_and_report_in_diagnostics(
        graph: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    client, node = graph["client"], graph["node"]
    outputs = node.channels[""].outputs
    stamps: list[int] = []
    real_messages = outputs.messages
    monkeypatch.setattr(outputs, "messages", lambda result, stamp_ns, **kw: stamps.append(stamp_ns) or real_messages(
        result, stamp_ns, **kw))
    client.subscribe("depth")
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    assert stamps[-1] == s * 1_000_000_000 + 1000 + s  # the FrameContext of the stages: the header's stamp
    resets: list[int] = []
    monkeypatch.setattr(outputs, "reset", lambda: resets.append(1))
    monkeypatch.setattr(outputs, "diagnostics", lambda: {"stage_frames": "7"})
    arrays: list[DiagnosticArray] = []
    monkeypatch.setattr(node.core._diagnostics_pub, "publish", arrays.append)
    node.core.publish_diagnostics()
    assert {kv.key: kv.value for kv in arrays[-1].status[0].values}["stage_frames"] == "7"  # the one camera's
    node.core.deactivate()  # the worker is idle: reset now
    assert resets == [1]
    node.core.activate()


@pytest.fixture()
def failing_node(ros: dict[str, Any]) -> tuple[DepthNode, Client]:
    """A fresh node (no outputs in its rate window yet) in namespace /failing, and its client."""
    params = [Parameter("model_path", value=str(ros["checkpoint"])), Parameter("device", value="cpu")]
    node = DepthNode(context=ros["context"], namespace="failing", parameter_overrides=params)
    ros.setdefault("extra_nodes", []).append(node)
    with ros["spinner"].paused():
        client = Client(Node("failing_test_client", context=ros["context"]), ros["spinner"], namespace="/failing")
        ros["executor"].add_node(node)
        ros["executor"].add_node(client.node)
    return node, client


def test_failing_frames_are_counted_and_make_diagnostics_an_error_until_the_network_recovers(
        ros: dict[str, Any], failing_node: tuple[DepthNode, Client], monkeypatch: pytest.MonkeyPatch) -> None:
    node, client = failing_node
    arrays: list[DiagnosticArray] = []
    monkeypatch.setattr(node.core._diagnostics_pub, "publish", arrays.append)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    with monkeypatch.context() as patch:
        patch.setattr(node.estimator, "estimate_batch", broken)
        client.subscribe("depth")
        wait_until(lambda: client.image_pub.get_subscription_count() > 0, what="the node's image subscription")
        wait_until(lambda: set(node.subscribed_outputs()) == {"depth"}, what="the depth subscription")
        s = stamp(ros)
        deadline = time.monotonic() + TIMEOUT
        while node.stats.frames_failed == 0:  # the input is best effort: send again until a frame failed
            assert time.monotonic() < deadline, "no frame failed"
            client.image_pub.publish(image_msg(make_image(s), s))
            time.sleep(0.1)
        node.wait_idle(TIMEOUT)
        node.core.publish_diagnostics()
        wait_until(lambda: client.log_containing("frame failed: RuntimeError: CUDA error"), what="the error log")
    status = arrays[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.ERROR and "RuntimeError" in status.message
    assert int(values["frames_failed"]) >= 1 and values["last_failure"] == "RuntimeError"
    assert values["frames_published"] == "0"
    assert node.channels[""].stats.frames_failed == node.stats.frames_failed  # per camera too

    s = stamp(ros)
    client.send(image_msg(make_image(s), s), ("depth",), node)  # the estimator recovered: the node serves again
    # the node counts a frame once all its messages are out, so the client may hold the depth before the count
    wait_until(lambda: node.stats.frames_published >= 1, what="the recovered frame counted")
    node.core.publish_diagnostics()
    status = arrays[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == DiagnosticStatus.OK and int(values["frames_published"]) >= 1
    client.unsubscribe_all(node)


class _ClosedPublisher:
    """An output publisher destroyed while a frame is in flight (shutdown): ``publish`` raises rclpy's error."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def get_subscription_count(self) -> int:
        return 1

    def publish(self, data: bytes) -> None:
        self.real.publish(data)  # destroyed: rclpy raises InvalidHandle


def test_a_publish_failure_is_counted_not_raised_and_the_other_outputs_are_published(
        ros: dict[str, Any], failing_node: tuple[DepthNode, Client]) -> None:
    node, client = failing_node
    client.subscribe("depth", "depth_color")
    s = stamp(ros)
    client.send(image_msg(make_image(s), s), ("depth", "depth_color"), node)
    channel = node.channels[""]
    closed = channel.publishers["depth"]
    node.destroy_publisher(closed)
    channel.publishers["depth"] = _ClosedPublisher(closed)
    s = stamp(ros)
    client.send(image_msg(make_image(s), s), ("depth_color",), node)  # still served
    node.wait_idle(TIMEOUT)
    assert channel.timings.publish_failures >= 1
    assert (node.worker.failed, node.stats.frames_failed) == (0, 0)  # nothing raised out of the worker
    values = channel.timings.values(time.monotonic())
    assert values["publish_failures"] == str(channel.timings.publish_failures)
    wait_until(lambda: client.log_containing("could not publish depth: InvalidHandle"), what="the warning")
    channel.publishers["depth"] = closed  # destroyed already: the node's cleanup skips it


# --------------------------------------------------------------------------------------- compressed input
@pytest.fixture(scope="module")
def compressed_node(ros: dict[str, Any]) -> tuple[DepthNode, Client]:
    params = [Parameter("model_path", value=str(ros["checkpoint"])), Parameter("device", value="cpu"),
              Parameter("input_transport", value="compressed")]
    node = DepthNode(context=ros["context"], namespace="compressed", parameter_overrides=params)
    ros.setdefault("extra_nodes", []).append(node)
    with ros["spinner"].paused():
        client = Client(Node("compressed_test_client", context=ros["context"]), ros["spinner"],
                        namespace="/compressed")
        ros["executor"].add_node(node)
        ros["executor"].add_node(client.node)
    return node, client


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_compressed_input(ros: dict[str, Any], compressed_node: tuple[DepthNode, Client], kind: str) -> None:
    node, client = compressed_node
    client.subscribe("depth", "points")
    s = stamp(ros)
    rgb = make_image(s)
    ok, encoded = cv2.imencode(f".{'jpg' if kind == 'jpeg' else 'png'}", np.ascontiguousarray(rgb[..., ::-1]))
    assert ok
    msg = CompressedImage(format=f"rgb8; {kind} compressed bgr8", data=encoded.tobytes())
    msg.header.stamp.sec = s
    msg.header.frame_id = FRAME_ID
    client.send_info(info_msg(), node)
    out = client.send(msg, ("depth", "points"), node)
    assert (out["depth"].height, out["depth"].width, out["depth"].header.frame_id) == (HEIGHT, WIDTH, FRAME_ID)
    colours = unpack_rgb(cloud_array(out["points"])[..., 3]).astype(int)
    if kind == "png":  # lossless: the cloud's colours are the picture's, in RGB order
        assert np.array_equal(colours, rgb.reshape(-1, 3))
    else:
        assert np.abs(colours - rgb.reshape(-1, 3)).mean() < 4.0
    client.unsubscribe_all(node)


# ------------------------------------------------------------------------------------ process exit codes
def _node_command(*ros_args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from semantic_depth_ros.ros.node import main_ros; sys.exit(main_ros())",
            "--ros-args", *ros_args]


@pytest.fixture(scope="module")
def bad_checkpoints(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad_checkpoints")
    corrupt = folder / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:5000])
    payload = torch.load(tiny_checkpoint, weights_only=True)
    payload["config"]["decoder_channels"] = [64, 16]
    incompatible = folder / "incompatible.pt"
    torch.save(payload, incompatible)
    return {"missing": folder / "missing.pt", "corrupt": corrupt, "incompatible": incompatible}


@pytest.mark.parametrize(("case", "problem"), [("missing", "file not found"), ("corrupt", "cannot be read"),
                                               ("incompatible", "incompatible weights")])
def test_bad_checkpoint_fails_start_up_with_one_line_naming_file_and_problem(
        ros: dict[str, Any], bad_checkpoints: dict[str, Path], case: str, problem: str) -> None:
    params = [Parameter("model_path", value=str(bad_checkpoints[case])), Parameter("device", value="cpu")]
    with pytest.raises(CheckpointError) as info:
        DepthNode(context=ros["context"], node_name="bad_checkpoint_node", parameter_overrides=params)
    message = str(info.value)
    assert message.startswith(f"checkpoint {bad_checkpoints[case]}: ") and problem in message
    assert "\n" not in message
    assert "bad_checkpoint_node" not in ros["client"].node.get_node_names()  # the half-built node was destroyed


def test_invalid_parameter_fails_start_up(ros: dict[str, Any]) -> None:
    params = [Parameter("model_path", value=str(ros["checkpoint"])), Parameter("point_stride", value=0)]
    with pytest.raises(ConfigError, match="invalid parameter point_stride: .*out of range"):
        DepthNode(context=ros["context"], node_name="bad_parameter_node", parameter_overrides=params)
    with pytest.raises(ConfigError, match="parameter model_path is empty"):
        DepthNode(context=ros["context"], node_name="no_model_node")


def test_process_exits_1_with_one_line_for_a_bad_checkpoint_and_0_on_sigint(bad_checkpoints: dict[str, Path],
                                                                            tiny_checkpoint: Path) -> None:
    missing = subprocess.run(_node_command("-p", f"model_path:={bad_checkpoints['missing']}", "-p", "device:=cpu"),
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1, missing.stderr
    lines = [line for line in (missing.stdout + missing.stderr).splitlines() if line.strip()]
    assert lines == [f"error: checkpoint {bad_checkpoints['missing']}: file not found"]
    # the `semantic-depth node` command path, with options turned into ROS arguments, as bench and demo start it
    good = NodeProcess(tiny_checkpoint, domain_id=int(os.environ["ROS_DOMAIN_ID"]), device="cpu",
                       ros_args=["-r", "__node:=sigint_test_node"])
    with good:
        assert any("[sigint_test_node]" in line and "ready: model tiny_test" in line for line in good.log), good.log
        time.sleep(0.3)
        assert good.stop() == 0, "\n".join(good.log)  # SIGINT: a clean exit
    assert not any("Traceback" in line or "Exception" in line for line in good.log), "\n".join(good.log)


def test_node_command_options_become_ros_arguments() -> None:
    from semantic_depth_ros.cli import build_parser
    from semantic_depth_ros.commands.node import ros_argv

    parser = build_parser("node")
    args = parser.parse_args(["node", "--model-path", "m.pt", "--precision", "bf16", "--backend", "eager",
                              "--params-file", "p.yaml", "--ros-args", "-r", "image:=/cam/image_raw"])
    assert ros_argv(args) == ["semantic-depth-node", "--ros-args", "--params-file", "p.yaml", "-p", "model_path:=m.pt",
                              "-p", "precision:=bf16", "-p", "backend:=eager", "-r", "image:=/cam/image_raw"]
    assert ros_argv(parser.parse_args(["node"])) == ["semantic-depth-node"]
    with pytest.raises(SystemExit):
        parser.parse_args(["node", "--precision", "fp64"])


def test_temporal_filter_switches_on_and_off_at_run_time_and_refuses_bad_values(graph: dict[str, Any]) -> None:
    """``ros2 param set temporal_filter on`` (a YAML boolean) starts the per-camera filter on the next frame, which
    then asks the estimator for the confidence and semantic heads too; off passes frames through and costs nothing."""
    from semantic_depth_ros.temporal import TemporalStage

    client, node = graph["client"], graph["node"]
    outputs = node.channels[""].outputs
    (temporal,) = [stage for stage in outputs.stages if isinstance(stage, TemporalStage)]
    assert temporal.settings.temporal_filter == "off"
    client.subscribe("depth")
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    assert temporal.filter.frames == 0 and set(outputs.estimator_outputs(True)) == {"depth"}
    assert node.set_parameters([Parameter("temporal_filter", value=True),
                                Parameter("temporal_memory", value=4.0)])[0].successful
    for _ in range(2):
        s = stamp(graph)
        client.send(image_msg(make_image(s), s), ("depth",), node)
    assert temporal.settings.temporal_filter == "auto" and temporal.settings.temporal_memory == 4.0
    assert temporal.filter.frames == 2 and temporal.filter.frames_without_pose == 2  # no odom_topic: still camera
    assert set(outputs.estimator_outputs(True)) == {"depth", "confidence", "semantic"}
    (refused,) = node.set_parameters([Parameter("temporal_disagreement", value=0.0)])
    assert not refused.successful and refused.reason == "parameter temporal_disagreement = 0.0 must be in (0, 1]"
    (refused,) = node.set_parameters([Parameter("temporal_filter", value="sometimes")])
    assert not refused.successful and "must be one of off, on, auto, static" in refused.reason
    assert node.set_parameters([Parameter("temporal_filter", value="off")])[0].successful
    s = stamp(graph)
    client.send(image_msg(make_image(s), s), ("depth",), node)
    assert temporal.filter.frames == 2 and set(outputs.estimator_outputs(True)) == {"depth"}

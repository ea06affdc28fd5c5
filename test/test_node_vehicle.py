"""The node on a real vehicle, over a real DDS graph (issue 10): a distorted street camera is undistorted (zero-D
camera_info, points back-projected with it, undistorted colours), an unknown lens model is rejected and the next
good frame served; semantic clouds (layout, labels, labels dropped at run time); a stream that changes size; a
distorted and a pinhole camera in one batch; the managed node publishing labelled points.

One single-camera node (namespace /veh) and one two-camera node (namespace /vehm, cameras a and b) spin on one
executor thread for the whole module; every output is compared with a separate estimator's for the same frame.
"""

from __future__ import annotations

import math
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
from rcl_interfaces.msg import Log
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointField
from std_msgs.msg import Header

from semantic_depth_ros.data.synthetic.domains import domain_intrinsics, domain_spec
from semantic_depth_ros.data.synthetic.layout import build_world
from semantic_depth_ros.data.synthetic.render import render_world
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics, scale_intrinsics
from semantic_depth_ros.geometry.pointcloud import unpack_rgb
from semantic_depth_ros.inference.estimator import DepthEstimator, EstimatorOutputs
from semantic_depth_ros.messages import camera_info_fields, cloud_array, image_array, image_fields
from semantic_depth_ros.model.checkpoint import load_checkpoint
from semantic_depth_ros.model.onnx_export import export_onnx
from semantic_depth_ros.ros.client import DepthClient
from semantic_depth_ros.ros.lifecycle_node import DepthLifecycleNode
from semantic_depth_ros.ros.messages import camera_info_msg, image_msg
from semantic_depth_ros.ros.node import DepthNode

pytestmark = pytest.mark.ros  # a node over DDS

TIMEOUT = 20.0
CAMERA = domain_intrinsics("kitti_like", 96, 320)
PLUMB_BOB = (-0.3, 0.09, 0.001, -0.0005, -0.01)  # a barrel lens
SMALL = Intrinsics(120.0, 118.0, 99.5, 29.5, 200, 60)  # a pinhole camera of another size
KEYS = ("depth", "depth_info", "points", "semantic")
SINGLE, CAM_A, CAM_B = "/veh", "/vehm/a", "/vehm/b"
RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# (name, offset, datatype) of the published PointCloud2 fields per layout (README topic table)
F32, U32 = PointField.FLOAT32, PointField.UINT32
LAYOUTS = {
    "xyzrgb": ([("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("rgb", 12, F32)], 16),
    "xyzrgbl": ([("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("rgb", 12, F32), ("label", 16, U32)], 20),
    "xyzrgblc": ([("x", 0, F32), ("y", 4, F32), ("z", 8, F32), ("rgb", 12, F32), ("label", 16, U32),
                  ("confidence", 20, F32)], 24),
}


def wait_until(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


def street(camera: Intrinsics, d: tuple[float, ...] | None, index: int = 3) -> np.ndarray:
    """A generated street scene seen by ``camera`` through a plumb_bob lens ``d`` (None: a pinhole), HxWx3 uint8:
    a pinhole render wide enough for every pixel's ray, read where each ray lands."""
    v, u = np.mgrid[0:camera.height, 0:camera.width].astype(np.float64)
    if d is None:
        rays = np.stack(((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy), axis=-1)
    else:
        pixels = np.stack((u, v), axis=-1).reshape(-1, 1, 2)
        rays = cv2.undistortPoints(pixels, camera.matrix(), np.asarray(d)).reshape(u.shape + (2,))
    low, high = rays.reshape(-1, 2).min(axis=0), rays.reshape(-1, 2).max(axis=0)
    margin = 2
    wide = Intrinsics(fx=camera.fx, fy=camera.fy, cx=-low[0] * camera.fx + margin, cy=-low[1] * camera.fy + margin,
                      width=math.ceil((high[0] - low[0]) * camera.fx) + 2 * margin,
                      height=math.ceil((high[1] - low[1]) * camera.fy) + 2 * margin)
    sharp = render_world(build_world(domain_spec("kitti_like"), index, 0), wide, (0, index), with_lidar=False).rgb
    map_x = (rays[..., 0] * wide.fx + wide.cx).astype(np.float32)
    map_y = (rays[..., 1] * wide.fy + wide.cy).astype(np.float32)
    return cv2.remap(sharp, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def messages(rgb: np.ndarray, camera: Intrinsics, model: str = "plumb_bob",
             d: tuple[float, ...] = (0.0,) * 5) -> tuple[Image, CameraInfo]:
    """The image and a camera_info with ``camera``'s K and the lens ``model``/``d``."""
    header = Header(frame_id="camera_optical")
    info = camera_info_msg(header, camera_info_fields(camera))
    info.distortion_model, info.d = model, list(d)
    return image_msg(header, image_fields(rgb, "rgb8")), info


def info_identity(info: CameraInfo | None) -> tuple | None:
    if info is None:
        return None
    return (info.width, info.height, tuple(info.k), info.distortion_model, tuple(info.d))


class Graph:
    """The module's nodes, a client of their cameras, the /rosout lines, and a camera_info publisher per camera
    (so that a test can make sure the node holds a new camera_info before the image arrives)."""

    def __init__(self, single: DepthNode, multi: DepthNode, client: DepthClient) -> None:
        self.single, self.multi, self.client = single, multi, client
        self.logs: list[str] = []
        self.channels = {SINGLE: single.channels[""], CAM_A: multi.channels["a"], CAM_B: multi.channels["b"]}
        node = client.node
        node.create_subscription(Log, "/rosout", lambda msg: self.logs.append(msg.msg), 100)
        self._info_pubs = {ns: node.create_publisher(CameraInfo, f"{ns}/camera_info", RELIABLE)
                           for ns in self.channels}
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in self._info_pubs.values()),
                   "the nodes' camera_info subscriptions")

    def hold_info(self, camera: str, info: CameraInfo) -> None:
        """Publish ``info`` until camera ``camera`` of its node holds it."""
        channel = self.channels[camera]
        deadline = time.monotonic() + TIMEOUT
        while info_identity(channel.latest_camera_info) != info_identity(info):
            assert time.monotonic() < deadline, f"{camera} did not receive its camera_info"
            self._info_pubs[camera].publish(info)
            time.sleep(0.05)

    def serve(self, camera: str, stamp: int, image: Image, info: CameraInfo,
              keys: tuple[str, ...] = KEYS) -> dict[str, Any]:
        """Outputs ``keys`` of one frame of ``camera`` (its camera_info held by the node first)."""
        self.hold_info(camera, info)
        self.client.publish(stamp, image, info, camera=camera)
        assert self.client.wait(stamp, keys, camera=camera, timeout=TIMEOUT) is not None, (camera, stamp)
        got = self.client.take(stamp, camera=camera)
        return {key: DepthClient.message(key, got[key]) for key in keys}


def reference_estimator(checkpoint: Path, node: DepthNode) -> DepthEstimator:
    """A separate estimator configured as ``node``'s."""
    settings, estimator = node.settings, node.estimator
    low, high = settings.depth_range
    return DepthEstimator(checkpoint, device="cpu", precision=estimator.precision, mask_sky=settings.mask_sky,
                          min_depth=low, max_depth=high)


@pytest.fixture(scope="module")
def graph(tiny_checkpoint: Path) -> Iterator[Graph]:
    torch.set_num_threads(1)
    context = Context()
    rclpy.init(context=context)
    common = [Parameter("model_path", value=str(tiny_checkpoint)), Parameter("device", value="cpu"),
              Parameter("input_qos_reliability", value="reliable")]
    single = DepthNode(context=context, namespace="veh", parameter_overrides=common)
    multi = DepthNode(context=context, namespace="vehm",
                      parameter_overrides=[*common, Parameter("cameras", value=["a", "b"])])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(single)
    executor.add_node(multi)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    client = DepthClient(cameras=[SINGLE, CAM_A, CAM_B], outputs=KEYS, name="vehicle_test_client")
    try:
        client.wait_connected()
        yield Graph(single, multi, client)
    finally:
        client.close()
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)
        single.close()
        multi.close()
        rclpy.shutdown(context=context)


@pytest.fixture(scope="module")
def distorted() -> np.ndarray:
    return street(CAMERA, PLUMB_BOB)


@pytest.fixture(scope="module")
def reference(graph: Graph, tiny_checkpoint: Path) -> DepthEstimator:
    return reference_estimator(tiny_checkpoint, graph.single)


def assert_depth_equal(msg: Image, expected: EstimatorOutputs, what: str) -> None:
    np.testing.assert_allclose(image_array(msg), expected.depth.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True,
                               err_msg=what)


def colours_of(cloud: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 colours of an organised HxWxN cloud."""
    return unpack_rgb(cloud[..., 3]).reshape(cloud.shape[:2] + (3,))


def assert_cloud_of(points_msg: Any, depth_msg: Image, info: CameraInfo) -> np.ndarray:
    """Points are the back-projection of the published depth with the published K (1e-4 m); returns the cloud."""
    k = np.asarray(info.k).reshape(3, 3)
    z = image_array(depth_msg).astype(np.float64)
    cloud = cloud_array(points_msg)
    assert cloud.shape[:2] == z.shape
    v, u = np.mgrid[0:z.shape[0], 0:z.shape[1]]
    valid = np.isfinite(z)
    assert valid.mean() > 0.5
    np.testing.assert_allclose(cloud[..., 0][valid], ((u - k[0, 2]) / k[0, 0] * z)[valid], atol=1e-4)
    np.testing.assert_allclose(cloud[..., 1][valid], ((v - k[1, 2]) / k[1, 1] * z)[valid], atol=1e-4)
    np.testing.assert_allclose(cloud[..., 2][valid], z[valid], atol=1e-4)
    assert np.isnan(cloud[..., :3][~valid]).all()
    return cloud


def test_a_distorted_camera_is_served_in_the_undistorted_pinhole_geometry(
        graph: Graph, reference: DepthEstimator, distorted: np.ndarray) -> None:
    image, info = messages(distorted, CAMERA, "plumb_bob", PLUMB_BOB)
    out = graph.serve(SINGLE, 1, image, info)
    expected = reference.estimate(distorted, camera=CameraModel(CAMERA, "plumb_bob", PLUMB_BOB))
    depth_info = out["depth_info"]
    assert depth_info.distortion_model == "plumb_bob" and list(depth_info.d) == [0.0] * 5
    undistorted_k = scale_intrinsics(CAMERA, CAMERA.width, CAMERA.height)
    assert (depth_info.width, depth_info.height) == (CAMERA.width, CAMERA.height)
    assert tuple(depth_info.k) == undistorted_k.k() and tuple(depth_info.p) == undistorted_k.p()
    assert_depth_equal(out["depth"], expected, "depth")
    cloud = assert_cloud_of(out["points"], out["depth"], depth_info)
    colours = colours_of(cloud)
    np.testing.assert_array_equal(colours, expected.image.numpy())  # the undistorted image's colours ...
    assert np.abs(colours.astype(float) - distorted).mean() > 5.0  # ... not the distorted input's


def test_an_unknown_lens_model_is_rejected_and_the_next_good_frame_served(
        graph: Graph, reference: DepthEstimator, distorted: np.ndarray) -> None:
    channel = graph.channels[SINGLE]
    rejected = channel.stats.messages_rejected
    image, weird = messages(distorted, CAMERA, "fisheye_weird", (0.1, 0.02, 0.0, 0.0))
    graph.hold_info(SINGLE, weird)
    graph.client.publish(10, image, weird, camera=SINGLE)
    wait_until(lambda: channel.stats.messages_rejected == rejected + 1, "the frame to be rejected")
    wait_until(lambda: any("fisheye_weird" in line for line in graph.logs), "the error in /rosout")
    line = next(line for line in graph.logs if "fisheye_weird" in line)
    assert "\n" not in line and "camera_info" in line and "not supported" in line, line
    assert graph.client.wait(10, camera=SINGLE, timeout=0.5) is None  # not served
    image, good = messages(distorted, CAMERA, "plumb_bob", PLUMB_BOB)
    out = graph.serve(SINGLE, 11, image, good)
    assert_depth_equal(out["depth"], reference.estimate(
        distorted, camera=CameraModel(CAMERA, "plumb_bob", PLUMB_BOB)), "the next good frame")
    assert channel.stats.messages_rejected == rejected + 1


@pytest.mark.parametrize("layout", ["xyzrgbl", "xyzrgblc"])
def test_semantic_clouds_have_the_layout_labels_and_dropped_labels(
        graph: Graph, reference: DepthEstimator, distorted: np.ndarray, layout: str) -> None:
    node = graph.single
    image, info = messages(distorted, CAMERA, "plumb_bob", PLUMB_BOB)
    stamp = 20 if layout == "xyzrgbl" else 30
    try:
        assert node.set_parameters([Parameter("point_fields", value=layout)])[0].successful
        out = graph.serve(SINGLE, stamp, image, info, keys=("depth", "depth_info", "points", "semantic"))
        points = out["points"]
        fields, step = LAYOUTS[layout]
        assert [(f.name, f.offset, f.datatype, f.count) for f in points.fields] == [(*f, 1) for f in fields]
        assert points.point_step == step and points.row_step == step * points.width
        assert not points.is_bigendian and not points.is_dense
        cloud = assert_cloud_of(points, out["depth"], out["depth_info"])
        labels = cloud[..., 4].copy().view(np.uint32)
        semantic = image_array(out["semantic"])
        valid = np.isfinite(cloud[..., 2])
        np.testing.assert_array_equal(labels[valid], semantic[valid])
        if layout == "xyzrgblc":
            expected = reference.estimate(distorted, camera=CameraModel(CAMERA, "plumb_bob", PLUMB_BOB))
            np.testing.assert_allclose(cloud[..., 5][valid], expected.confidence.numpy()[valid], rtol=1e-5,
                                       atol=1e-6)
        # drop the most common label (ros2 param set): its points are NaN on the next frame, the others stay
        dropped = int(np.bincount(labels[valid]).argmax())
        assert node.set_parameters([Parameter("points_drop_labels", value=[dropped])])[0].successful
        again = graph.serve(SINGLE, stamp + 1, image, info, keys=("points", "semantic"))
        cloud_after = cloud_array(again["points"])
        semantic_after = image_array(again["semantic"])
        np.testing.assert_array_equal(semantic_after, semantic)
        gone = semantic_after == dropped
        assert gone[valid].any()
        assert np.isnan(cloud_after[..., :3][gone]).all()
        np.testing.assert_array_equal(cloud_after[~gone][..., :4], cloud[~gone][..., :4])
    finally:
        node.set_parameters([Parameter("point_fields", value="xyzrgb"),
                             Parameter("points_drop_labels", Parameter.Type.INTEGER_ARRAY, [])])
    # back to the default layout
    plain = graph.serve(SINGLE, stamp + 2, image, info, keys=("depth", "depth_info", "points"))
    assert [(f.name, f.offset, f.datatype) for f in plain["points"].fields] == LAYOUTS["xyzrgb"][0]
    assert plain["points"].point_step == 16
    np.testing.assert_array_equal(cloud_array(plain["points"]), cloud[..., :4])


def test_a_stream_that_changes_size_is_served_at_both_sizes_and_back(
        graph: Graph, reference: DepthEstimator, distorted: np.ndarray) -> None:
    small = street(SMALL, None, index=5)
    frames = [(distorted, CAMERA, "plumb_bob", PLUMB_BOB), (small, SMALL, "plumb_bob", (0.0,) * 5),
              (distorted, CAMERA, "plumb_bob", PLUMB_BOB)]
    for stamp, (rgb, camera, model, d) in enumerate(frames, start=40):
        image, info = messages(rgb, camera, model, d)
        out = graph.serve(SINGLE, stamp, image, info)
        expected = reference.estimate(rgb, camera=CameraModel(camera, model, d))
        assert out["depth"].height == camera.height and out["depth"].width == camera.width
        assert tuple(out["depth_info"].k) == camera.k()
        assert_depth_equal(out["depth"], expected, f"{camera.width}x{camera.height}")
        assert_cloud_of(out["points"], out["depth"], out["depth_info"])
        labels = image_array(out["semantic"])
        assert labels.shape == (camera.height, camera.width)
        np.testing.assert_array_equal(labels, expected.semantic.numpy())


def test_a_distorted_and_a_pinhole_camera_in_one_batch_equal_their_single_frame_results(
        graph: Graph, tiny_checkpoint: Path, distorted: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    multi = graph.multi
    reference = reference_estimator(tiny_checkpoint, multi)
    small = street(SMALL, None, index=5)
    frames = {CAM_A: messages(distorted, CAMERA, "plumb_bob", PLUMB_BOB), CAM_B: messages(small, SMALL)}
    for camera, (_, info) in frames.items():
        graph.hold_info(camera, info)
    sizes: list[int] = []
    started, release = threading.Event(), threading.Event()
    real = multi.estimator.estimate_batch

    def spy(batch: Any, **kwargs: Any) -> Any:
        sizes.append(len(batch))
        started.set()
        release.wait(timeout=TIMEOUT)  # hold the worker so that both cameras' next frames wait for one batch
        return real(batch, **kwargs)

    monkeypatch.setattr(multi.estimator, "estimate_batch", spy)
    received = {camera: graph.channels[camera].stats.frames_received for camera in frames}
    image, info = frames[CAM_B]
    graph.client.publish(50, image, info, camera=CAM_B)
    assert started.wait(TIMEOUT)
    for camera, (image, info) in frames.items():
        graph.client.publish(51, image, info, camera=camera)
    wait_until(lambda: all(graph.channels[c].stats.frames_received > received[c] + (c == CAM_B) for c in frames),
               "both cameras' frames to reach the node")
    release.set()
    for camera in frames:
        assert graph.client.wait(51, KEYS, camera=camera, timeout=TIMEOUT) is not None, camera
    assert sizes[:2] == [1, 2]  # the held frame alone, then both cameras in ONE batch
    alone = {CAM_A: reference.estimate(distorted, camera=CameraModel(CAMERA, "plumb_bob", PLUMB_BOB)),
             CAM_B: reference.estimate(small, camera=CameraModel(SMALL, "plumb_bob", (0.0,) * 5))}
    for camera, camera_intrinsics in ((CAM_A, CAMERA), (CAM_B, SMALL)):
        got = graph.client.take(51, camera=camera)
        out = {key: DepthClient.message(key, got[key]) for key in KEYS}
        assert list(out["depth_info"].d) == [0.0] * 5 and tuple(out["depth_info"].k) == camera_intrinsics.k()
        np.testing.assert_allclose(image_array(out["depth"]), alone[camera].depth.numpy(), rtol=1e-4, atol=1e-5,
                                   equal_nan=True, err_msg=camera)
        cloud = assert_cloud_of(out["points"], out["depth"], out["depth_info"])
        np.testing.assert_array_equal(colours_of(cloud), alone[camera].image.numpy())
        labels = image_array(out["semantic"])
        assert np.mean(labels != alone[camera].semantic.numpy()) < 0.01, camera  # an argmax tie may flip
    graph.client.take(50, camera=CAM_B)


def test_the_managed_node_publishes_labelled_points_after_activate(
        graph: Graph, tiny_checkpoint: Path, distorted: np.ndarray) -> None:
    """Only ``points`` is subscribed: the labels still come from the semantic head (the node asks for it)."""
    context = graph.single.context
    node = DepthLifecycleNode("depth_lifecycle_vehicle", context=context, namespace="vehl", parameter_overrides=[
        Parameter("model_path", value=str(tiny_checkpoint)), Parameter("device", value="cpu"),
        Parameter("input_qos_reliability", value="reliable"), Parameter("point_fields", value="xyzrgbl")])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        with DepthClient(cameras=["/vehl"], outputs=("points",), name="vehicle_lifecycle_client") as client:
            client.wait_connected()
            wait_until(lambda: node.subscribed_outputs() == ["points"], "the node to see the points subscriber")
            image, info = messages(distorted, CAMERA, "plumb_bob", PLUMB_BOB)
            for stamp in range(60, 70):  # the first frame may beat the camera_info to the node
                client.publish(stamp, image, info)
                if client.wait(stamp, timeout=2.0) is not None and info_identity(node.latest_camera_info) == \
                        info_identity(info):
                    break
            assert client.wait(stamp, timeout=TIMEOUT) is not None
            points = DepthClient.message("points", client.take(stamp)["points"])
        fields, step = LAYOUTS["xyzrgbl"]
        assert [(f.name, f.offset, f.datatype) for f in points.fields] == fields and points.point_step == step
        cloud = cloud_array(points)
        valid = np.isfinite(cloud[..., 2])
        expected = reference_estimator(tiny_checkpoint, node).estimate(
            distorted, camera=CameraModel(CAMERA, "plumb_bob", PLUMB_BOB))
        assert valid.mean() > 0.5
        np.testing.assert_array_equal(cloud[..., 4].copy().view(np.uint32)[valid], expected.semantic.numpy()[valid])
    finally:
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)
        node.close()


def test_settings_the_model_cannot_give_are_refused_up_front(
        graph: Graph, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A depth-only ONNX export has no semantic head: labelled or label-dropping points, and sky masking, are
    refused at start-up and at run time (one line naming the parameter and the file), instead of failing every
    frame."""
    depth_only = tmp_path / "depth_only.onnx"
    depth_only.write_bytes(export_onnx(load_checkpoint(tiny_checkpoint), heads="depth").SerializeToString())
    common = [Parameter("model_path", value=str(depth_only)), Parameter("device", value="cpu")]
    context = graph.single.context
    with pytest.raises(ConfigError) as refused:
        DepthNode("depth_only_node", context=context, namespace="vehd",
                  parameter_overrides=[*common, Parameter("point_fields", value="xyzrgbl")])
    message = str(refused.value)
    assert "\n" not in message and "point_fields = 'xyzrgbl'" in message and str(depth_only) in message
    assert "semantic" in message
    node = DepthNode("depth_only_node", context=context, namespace="vehd", parameter_overrides=common)
    try:
        for change in (Parameter("point_fields", value="xyzrgbl"), Parameter("point_fields", value="xyzrgblc"),
                       Parameter("points_drop_labels", value=[10]), Parameter("mask_sky", value=True)):
            result = node.set_parameters([change])[0]
            assert not result.successful and str(depth_only) in result.reason, (change.name, result.reason)
        settings = node.settings
        assert (settings.point_fields, settings.points_drop_labels, settings.mask_sky) == ("xyzrgb", (), False)
        assert node.set_parameters([Parameter("point_stride", value=2)])[0].successful  # others still change
    finally:
        node.close()

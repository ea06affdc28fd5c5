"""Several cameras, one network, over a real DDS graph: one batch per round, per-camera outputs equal to a
single-camera node's, lazy outputs per camera, bad input and silence isolated to their camera, diagnostics."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import torch
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from waiting import TIMEOUT, wait_until

from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.messages import camera_info_fields, cloud_array, image_array, image_fields
from semantic_depth_ros.ros import camera_channel
from semantic_depth_ros.ros.client import DepthClient
from semantic_depth_ros.ros.messages import camera_info_msg, image_msg
from semantic_depth_ros.ros.node import DepthNode
from semantic_depth_ros.ros.serialized_publish import publish_serialized

pytestmark = pytest.mark.ros  # a node over DDS

# camera -> (height, width, fx, fy): different sizes and intrinsics
CAMERAS = {"front": (48, 160, 150.0, 140.0), "left": (60, 100, 90.0, 95.0), "right": (40, 200, 210.0, 200.0)}
ALL = ("depth", "depth_info", "points", "semantic", "confidence")


def camera_frame(camera: str, seed: int) -> tuple[Image, CameraInfo]:
    """A smooth picture of ``camera``'s size (differs per seed) with the camera's frame_id, and its camera_info."""
    height, width, fx, fy = CAMERAS[camera]
    v, u = np.mgrid[0:height, 0:width]
    rgb = np.stack((u * 255 // (width - 1), v * 255 // (height - 1), np.full_like(u, (seed * 37) % 256)), axis=-1)
    header = Header(frame_id=f"{camera}_optical")
    intrinsics = Intrinsics(fx, fy, (width - 1) / 2, (height - 1) / 2, width, height)
    return (image_msg(header, image_fields(rgb.astype(np.uint8), "rgb8")),
            camera_info_msg(header, camera_info_fields(intrinsics)))


@pytest.fixture(scope="module")
def nodes(tiny_checkpoint: Path) -> Iterator[dict[str, Any]]:
    """A three-camera node and a single-camera node (namespace /single) on one executor thread."""
    torch.set_num_threads(1)
    context = Context()
    rclpy.init(context=context)
    common = [Parameter("model_path", value=str(tiny_checkpoint)), Parameter("device", value="cpu"),
              Parameter("input_qos_reliability", value="reliable")]
    multi = DepthNode("multi_depth_node", context=context,
                      parameter_overrides=[*common, Parameter("cameras", value=list(CAMERAS))])
    single = DepthNode(context=context, namespace="single", parameter_overrides=common)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(multi)
    executor.add_node(single)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield {"multi": multi, "single": single}
    executor.shutdown(timeout_sec=5.0)
    thread.join(timeout=5.0)
    multi.close()
    single.close()
    rclpy.shutdown(context=context)


def wait_node_sees(node: Any, cameras: tuple[str, ...], keys: tuple[str, ...]) -> None:
    """Until ``node`` counts a subscriber on ``keys`` of every camera: the client seeing the node's publishers
    (``wait_connected``) does not mean the node has discovered the client's subscriptions yet, and a frame that
    arrives before it has is not served (no subscriber), as on a slower DDS (seen once on Kilted)."""
    wait_until(lambda: all(set(keys) <= set(node.channels[c].subscribed_outputs()) for c in cameras),
               f"the node's view of the {', '.join(keys)} subscriptions of {', '.join(cameras)}")


def send(client: DepthClient, camera: str, stamp: int, seed: int, keys: tuple[str, ...], **kwargs: Any) -> dict:
    """Publish a frame of ``camera`` to namespace ``/<camera>`` (or ``kwargs['namespace']``), return its outputs."""
    namespace = kwargs.get("namespace", f"/{camera}")
    image, info = camera_frame(camera, seed)
    client.publish(stamp, image, info, camera=namespace)
    assert client.wait(stamp, keys, camera=namespace, timeout=TIMEOUT) is not None, (camera, stamp, keys)
    got = client.take(stamp, camera=namespace)
    return {key: DepthClient.message(key, got[key]) for key in keys}


def test_three_cameras_run_as_one_batch_and_equal_a_single_camera_node(nodes: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    multi = nodes["multi"]
    assert set(multi.channels) == set(CAMERAS)
    batch_sizes: list[int] = []
    started, release = threading.Event(), threading.Event()
    real = multi.estimator.estimate_batch

    def spy(frames: Any, **kwargs: Any) -> Any:
        batch_sizes.append(len(frames))
        started.set()
        release.wait(timeout=TIMEOUT)  # hold the worker so that every camera's next frame waits for one batch
        return real(frames, **kwargs)

    monkeypatch.setattr(multi.estimator, "estimate_batch", spy)
    namespaces = [f"/{c}" for c in CAMERAS]
    with DepthClient(cameras=[*namespaces, "/single"], outputs=ALL) as client:
        client.wait_connected()
        wait_node_sees(multi, tuple(CAMERAS), ALL)
        wait_until(lambda: set(ALL) <= set(nodes["single"].channels[""].subscribed_outputs()), "/single's view")
        image, info = camera_frame("front", 0)
        client.publish(1, image, info, camera="/front")
        assert started.wait(TIMEOUT)
        received = {name: channel.stats.frames_received for name, channel in multi.channels.items()}
        for seed, camera in enumerate(CAMERAS, start=1):
            image, info = camera_frame(camera, seed)
            client.publish(100, image, info, camera=f"/{camera}")
        wait_until(lambda: all(multi.channels[c].stats.frames_received > received[c] for c in CAMERAS),
                   "every camera's frame to reach the node")
        release.set()
        batched = {}
        for camera in CAMERAS:
            assert client.wait(100, camera=f"/{camera}", timeout=TIMEOUT) is not None, camera
            got = client.take(100, camera=f"/{camera}")
            batched[camera] = {key: DepthClient.message(key, got[key]) for key in ALL}
        assert batch_sizes[:2] == [1, 3]  # the held frame alone, then every camera's newest frame in ONE batch
        for seed, camera in enumerate(CAMERAS, start=1):
            alone = send(client, camera, 200 + seed, seed, ALL, namespace="/single")
            height, width = CAMERAS[camera][:2]
            for key in ALL:
                msg = batched[camera][key]
                assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (0, 100), (camera, key)
                assert msg.header.frame_id == f"{camera}_optical", (camera, key)
                assert (msg.height, msg.width) == (height, width), (camera, key)
            for key in ("depth", "confidence"):
                np.testing.assert_allclose(image_array(batched[camera][key]), image_array(alone[key]), rtol=1e-4,
                                           atol=1e-5, equal_nan=True, err_msg=f"{camera} {key}")
            np.testing.assert_allclose(cloud_array(batched[camera]["points"]), cloud_array(alone["points"]),
                                       rtol=1e-4, atol=1e-4, equal_nan=True, err_msg=camera)
            labels, labels_alone = image_array(batched[camera]["semantic"]), image_array(alone["semantic"])
            assert np.mean(labels != labels_alone) < 0.01, camera  # an argmax tie may flip in the last bit
            assert list(batched[camera]["depth_info"].k) == list(alone["depth_info"].k)
            assert batched[camera]["depth_info"].k[0] == CAMERAS[camera][2]


def test_outputs_are_lazy_per_camera(nodes: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    multi = nodes["multi"]
    published: list[tuple[str, str]] = []
    requested: list[tuple[str, ...]] = []
    keys = {id(publisher): (name, key) for name, channel in multi.channels.items()
            for key, publisher in channel.publishers.items()}
    monkeypatch.setattr(camera_channel, "publish_serialized", lambda publisher, data, real=publish_serialized: (
        published.append(keys[id(publisher)]), real(publisher, data))[-1])
    real = multi.estimator.estimate_batch
    monkeypatch.setattr(multi.estimator, "estimate_batch", lambda frames, **kw: (
        requested.append(tuple(kw["outputs"])), real(frames, **kw))[-1])
    with DepthClient(cameras=["/front"], outputs=("depth",)) as front, \
            DepthClient(cameras=["/left"], outputs=("semantic", "points")) as left, \
            DepthClient(cameras=["/right"], outputs=()) as right:  # right: nobody subscribes to its outputs
        for client in (front, left, right):
            client.wait_connected()
        wait_until(lambda: multi.channels["left"].subscribed_outputs() == ["points", "semantic"], "left's subscribers")
        assert multi.channels["right"].subscribed_outputs() == []
        received = multi.channels["right"].stats.frames_received
        image, info = camera_frame("right", 3)
        right.publish(300, image, info, camera="/right")
        wait_until(lambda: multi.channels["right"].stats.frames_received > received, "right's frame")
        send(front, "front", 300, 1, ("depth",))
        send(left, "left", 300, 2, ("semantic", "points"))
        multi.wait_idle(5.0)
    assert set(published) == {("front", "depth"), ("left", "semantic"), ("left", "points")}
    assert set(requested) <= {("depth",), ("depth", "semantic", "image"), ("semantic", "image")}
    assert any("semantic" in outputs for outputs in requested)


def test_a_bad_message_on_one_camera_leaves_the_others_served(nodes: dict[str, Any]) -> None:
    multi = nodes["multi"]
    rejected = {name: channel.stats.messages_rejected for name, channel in multi.channels.items()}
    with DepthClient(cameras=[f"/{c}" for c in CAMERAS], outputs=("depth",)) as client:
        client.wait_connected()
        wait_node_sees(multi, tuple(CAMERAS), ("depth",))
        bad, info = camera_frame("left", 4)
        bad.encoding = "8UC3"  # no colour order: refused
        client.publish(400, bad, info, camera="/left")
        for camera in ("front", "right"):
            out = send(client, camera, 400, 4, ("depth",))
            assert out["depth"].header.frame_id == f"{camera}_optical"
        wait_until(lambda: multi.channels["left"].stats.messages_rejected == rejected["left"] + 1, "left's reject")
        assert client.wait(400, camera="/left", timeout=0.5) is None
        assert all(multi.channels[c].stats.messages_rejected == rejected[c] for c in ("front", "right"))
        send(client, "left", 401, 5, ("depth",))  # the next good frame of the same camera is served


def test_a_silent_camera_does_not_block_the_others_and_diagnostics_report_each_camera(
        nodes: dict[str, Any]) -> None:
    multi = nodes["multi"]
    published = {name: channel.stats.frames_published for name, channel in multi.channels.items()}
    with DepthClient(cameras=[f"/{c}" for c in CAMERAS], outputs=("depth",), diagnostics=True) as client:
        client.wait_connected()
        wait_node_sees(multi, tuple(CAMERAS), ("depth",))
        for stamp in (500, 501, 502):  # only front sends; left and right stay silent but subscribed
            send(client, "front", stamp, stamp, ("depth",))
        # counted once the frame's publish returned (on the publisher thread), just after the client got it
        wait_until(lambda: multi.channels["front"].stats.frames_published == published["front"] + 3,
                   "front's frames counted as published")
        assert all(multi.channels[c].stats.frames_published == published[c] for c in ("left", "right"))

        def node_statuses() -> dict[str, dict[str, str]]:
            message = client.diagnostics
            if message is None:
                return {}
            return {s.name: {kv.key: kv.value for kv in s.values} for s in message.status}

        wait_until(lambda: "multi_depth_node: semantic depth" in node_statuses(), "the node's /diagnostics")
    statuses = node_statuses()
    assert set(statuses) == {"multi_depth_node: semantic depth",
                             *(f"multi_depth_node: semantic depth {c}" for c in CAMERAS)}
    node_values = statuses["multi_depth_node: semantic depth"]
    assert int(node_values["batch_size"]) >= 1 and float(node_values["batch_ms_p50"]) > 0.0
    assert node_values["runtime"].startswith("torch eager") and node_values["state"] == "active"
    front = statuses["multi_depth_node: semantic depth front"]
    assert front["camera"] == "front" and int(front["frames_published"]) >= 3
    assert {"input_rate_hz", "output_rate_hz", "latency_p50_ms", "latency_p95_ms", "frames_dropped"} <= set(front)
    assert float(front["latency_p50_ms"]) > 0.0


def test_each_camera_keeps_its_own_temporal_history_and_reports_it(nodes: dict[str, Any]) -> None:
    """temporal_filter on a three-camera node: one filter per camera (a camera's frames never fuse with another's),
    each camera's status in /diagnostics carries its own counters."""
    from semantic_depth_ros.temporal import TemporalStage

    multi = nodes["multi"]
    stages = {c: next(s for s in multi.channels[c].outputs.stages if isinstance(s, TemporalStage)) for c in CAMERAS}
    assert len({id(stage) for stage in stages.values()}) == len(CAMERAS)
    assert multi.set_parameters([Parameter("temporal_filter", value="static")])[0].successful
    try:
        with DepthClient(cameras=["/front", "/left"], outputs=("depth",), diagnostics=True) as client:
            client.wait_connected()
            wait_node_sees(multi, ("front", "left"), ("depth",))
            for stamp in (600, 700, 800):  # 100 ns apart: one stream per camera, fused within it
                send(client, "front", stamp, 1, ("depth",))
            send(client, "left", 650, 2, ("depth",))
            assert stages["front"].filter.frames == 3 and stages["front"].filter.resets == 0
            assert stages["left"].filter.frames == 1 and stages["right"].filter.frames == 0
            assert stages["front"].filter.fused_fraction > 0.0

            def camera_values(camera: str) -> dict[str, str]:
                message = client.diagnostics
                statuses = {s.name: s for s in message.status} if message is not None else {}
                status = statuses.get(f"multi_depth_node: semantic depth {camera}")
                return {kv.key: kv.value for kv in status.values} if status is not None else {}

            wait_until(lambda: (camera_values("front").get("temporal_frames"), camera_values("left").get(
                "temporal_frames")) == ("3", "1"), "each camera's temporal counters")
            assert camera_values("right")["temporal_frames"] == "0"
            assert camera_values("front")["temporal_filter"] == "static"
    finally:
        assert multi.set_parameters([Parameter("temporal_filter", value="off")])[0].successful

"""The managed depth node over a real DDS graph, driven through its lifecycle services as `ros2 lifecycle set`
and Nav2's lifecycle manager drive it: nothing before activate, serving after, dropping (counted) while inactive,
cleanup releasing the model, a failed configure that leaves the node alive and configurable, for two cameras."""

from __future__ import annotations

import gc
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import torch
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Log
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from waiting import TIMEOUT, wait_until

from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.messages import camera_info_fields, image_fields
from semantic_depth_ros.pipeline import CameraOutputs
from semantic_depth_ros.ros.client import DepthClient
from semantic_depth_ros.ros.lifecycle_node import DepthLifecycleNode
from semantic_depth_ros.ros.messages import camera_info_msg, image_msg
from semantic_depth_ros.ros.params import PARAMETER_NAMES

pytestmark = pytest.mark.ros  # a managed node over DDS

CAMERAS = ("front", "rear")
NAMESPACES = tuple(f"/{c}" for c in CAMERAS)
HEIGHT, WIDTH = 48, 160


def frame(seed: int) -> tuple[Image, CameraInfo]:
    rgb = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    header = Header(frame_id="camera_optical")
    intrinsics = Intrinsics(150.0, 150.0, 79.5, 23.5, WIDTH, HEIGHT)
    return image_msg(header, image_fields(rgb, "rgb8")), camera_info_msg(header, camera_info_fields(intrinsics))


class Manager:
    """The lifecycle services of ``/depth_node``, called as a lifecycle manager does, plus a /rosout reader."""

    def __init__(self, client: DepthClient) -> None:
        self.node = client.node
        self.change = self.node.create_client(ChangeState, "/depth_node/change_state")
        self.get = self.node.create_client(GetState, "/depth_node/get_state")
        self.logs: list[str] = []
        self.node.create_subscription(Log, "/rosout", lambda msg: self.logs.append(msg.msg), 100)
        assert self.change.wait_for_service(TIMEOUT) and self.get.wait_for_service(TIMEOUT)
        self.state()  # repeated until answered: from then on the node's replies reach this participant

    def _call(self, client: Any, request: Any, retry: bool = False) -> Any:
        """The response; ``retry``: ask again every 5 s (for idempotent requests: a reply sent before DDS matched
        our reply reader is lost)."""
        deadline = time.monotonic() + 60.0
        while True:
            future = client.call_async(request)
            try:
                wait_until(future.done, "a lifecycle service response", timeout=5.0 if retry else 60.0)
                return future.result()
            except AssertionError:
                if not retry or time.monotonic() > deadline:
                    raise

    def transition(self, transition_id: int) -> bool:
        return self._call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state(self) -> int:
        return self._call(self.get, GetState.Request(), retry=True).current_state.id


@pytest.fixture(scope="module")
def managed(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A managed two-camera node started with a missing checkpoint, on an executor thread, and its manager."""
    torch.set_num_threads(1)
    missing = tmp_path_factory.mktemp("lifecycle") / "missing.pt"
    context = Context()
    rclpy.init(context=context)
    node = DepthLifecycleNode(context=context, parameter_overrides=[
        Parameter("model_path", value=str(missing)), Parameter("device", value="cpu"),
        Parameter("cameras", value=list(CAMERAS)), Parameter("input_qos_reliability", value="reliable")])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    client = DepthClient(cameras=NAMESPACES, outputs=("depth", "points"))
    env = {"node": node, "client": client, "manager": Manager(client), "missing": missing,
           "checkpoint": tiny_checkpoint}
    yield env
    client.close()
    executor.shutdown(timeout_sec=5.0)
    thread.join(timeout=5.0)
    node.close()
    rclpy.shutdown(context=context)


def served(client: DepthClient, stamp: int, timeout: float = TIMEOUT) -> bool:
    """Publish a frame to every camera; True when every camera's depth and points for it arrived."""
    for index, namespace in enumerate(NAMESPACES):
        image, info = frame(stamp + index)
        client.publish(stamp, image, info, camera=namespace)
    return all(client.wait(stamp, camera=namespace, timeout=timeout) is not None for namespace in NAMESPACES)


def dropped(node: DepthLifecycleNode) -> dict[str, int]:
    return {name: node.dropped_of(name) for name in CAMERAS}


def test_unconfigured_declares_the_parameters_and_loads_and_publishes_nothing(managed: dict[str, Any]) -> None:
    node, manager, client = managed["node"], managed["manager"], managed["client"]
    assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
    assert set(PARAMETER_NAMES) <= set(node._parameters)
    assert node.get_parameter("cameras").value == list(CAMERAS)
    assert node.estimator is None and node.worker is None and node.channels == {}
    assert client.node.count_publishers("/front/depth") == 0 and client.node.count_subscribers("/front/image") == 0


def test_a_failed_configure_stays_unconfigured_alive_and_configurable_after_the_fix(managed: dict[str, Any]) -> None:
    node, manager = managed["node"], managed["manager"]
    assert not manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED  # alive: it still answers
    expected = f"error: checkpoint {managed['missing']}: file not found"  # what the plain node exits with
    wait_until(lambda: expected in manager.logs, "the one-line error on /rosout")
    assert node.estimator is None and node.channels == {}
    # static parameters may change before anything is loaded
    assert node.set_parameters([Parameter("model_path", value=str(managed["checkpoint"]))])[0].successful
    assert manager.transition(Transition.TRANSITION_CONFIGURE)
    assert manager.state() == State.PRIMARY_STATE_INACTIVE
    assert node.estimator is not None and set(node.channels) == set(CAMERAS)
    (result,) = node.set_parameters([Parameter("model_path", value="/other.pt")])  # loaded: static again
    assert not result.successful and "static" in result.reason


def test_inactive_drops_frames_counted_then_active_serves_and_deactivate_stops(
        managed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    node, manager, client = managed["node"], managed["manager"], managed["client"]
    resets: list[CameraOutputs] = []
    monkeypatch.setattr(CameraOutputs, "reset", lambda self: resets.append(self))
    assert manager.state() == State.PRIMARY_STATE_INACTIVE
    client.wait_connected()
    before = dropped(node)
    assert not served(client, 10, timeout=1.0)  # configured but inactive: nothing is published
    wait_until(lambda: all(dropped(node)[c] > before[c] for c in CAMERAS), "frames counted as dropped")

    assert manager.transition(Transition.TRANSITION_ACTIVATE)
    assert manager.state() == State.PRIMARY_STATE_ACTIVE
    assert served(client, 20)

    assert resets == []
    assert manager.transition(Transition.TRANSITION_DEACTIVATE)
    assert resets == [node.channels[c].outputs for c in CAMERAS]  # every camera's stages forget their state
    before = dropped(node)
    assert not served(client, 30, timeout=1.0)
    wait_until(lambda: all(dropped(node)[c] > before[c] for c in CAMERAS), "frames counted as dropped")
    assert node.estimator is not None  # the model stays loaded

    assert manager.transition(Transition.TRANSITION_ACTIVATE)  # serves again after a second activate
    assert served(client, 40)
    assert manager.transition(Transition.TRANSITION_DEACTIVATE)


def test_cleanup_releases_the_model_and_shutdown_works_from_unconfigured(
        managed: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    node, manager, client = managed["node"], managed["manager"], managed["client"]
    assert manager.state() == State.PRIMARY_STATE_INACTIVE
    estimator = weakref.ref(node.estimator)
    runner = weakref.ref(node.estimator.runner)
    resets: list[CameraOutputs] = []
    monkeypatch.setattr(CameraOutputs, "reset", lambda self: resets.append(self))
    cameras = [node.channels[c].outputs for c in CAMERAS]
    assert manager.transition(Transition.TRANSITION_CLEANUP)
    assert resets == cameras
    assert manager.state() == State.PRIMARY_STATE_UNCONFIGURED
    gc.collect()
    assert node.estimator is None and estimator() is None and runner() is None  # no reference left anywhere
    wait_until(lambda: client.node.count_publishers("/front/depth") == 0, "the outputs to leave the graph")
    assert manager.transition(Transition.TRANSITION_UNCONFIGURED_SHUTDOWN)
    assert manager.state() == State.PRIMARY_STATE_FINALIZED


def test_the_executable_stays_alive_after_a_failed_configure(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; from semantic_depth_ros.ros.lifecycle_node import main_ros; "
               "sys.exit(main_ros())", "--ros-args", "-r", "__node:=lifecycle_exe_test", "-p",
               f"model_path:={tmp_path / 'missing.pt'}", "-p", "device:=cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with DepthClient(outputs=()) as client:
            change = client.node.create_client(ChangeState, "/lifecycle_exe_test/change_state")
            assert change.wait_for_service(60.0), "the managed node's services never appeared"
            request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
            deadline = time.monotonic() + 60.0
            while True:  # a response sent before DDS matched our reply reader is lost: ask again (a failing
                future = change.call_async(request)  # configure leaves the node unconfigured, so it is repeatable)
                try:
                    wait_until(future.done, "the configure response", timeout=5.0)
                    break
                except AssertionError:
                    assert time.monotonic() < deadline, "the configure response never arrived"
            assert future.result().success is False
            time.sleep(0.5)
            assert process.poll() is None  # still running, unconfigured
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert f"error: checkpoint {tmp_path / 'missing.pt'}: file not found" in output
    assert "Traceback" not in output


def test_cleanup_returns_cached_gpu_memory_after_a_failed_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configure that fails after loading the model on CUDA leaves no estimator attribute behind; cleanup must
    still hand the allocator's cached blocks back to the GPU."""
    from types import SimpleNamespace

    from semantic_depth_ros.ros.node_core import DepthNodeCore

    emptied = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))
    core = SimpleNamespace(active=False, worker=None, publisher=None, channels={}, odometry=None,
                           _diagnostics_timer=None, _diagnostics_pub=None, estimator=None, _settings=None,
                           _set_active=lambda active: None)
    DepthNodeCore.cleanup(core)
    assert emptied == [True]


class _ShutDownMidSpin:
    """A stand-in executor whose spin ends as rclpy's does when SIGTERM shuts the context down while it builds
    its wait set: the context is shut down, then RCLError (a RuntimeError) is raised."""

    def __init__(self, error: str, shut_down: bool) -> None:
        self.error, self.shut_down = error, shut_down

    def add_node(self, node: object) -> None:
        pass

    def spin(self) -> None:
        if self.shut_down:
            rclpy.shutdown()
        raise RuntimeError(self.error)


class _ClosableNode:
    closed = False

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("shut_down", [True, False])
def test_spin_node_takes_a_shutdown_during_the_wait_set_for_a_shutdown(monkeypatch: pytest.MonkeyPatch,
                                                                       shut_down: bool) -> None:
    from semantic_depth_ros.ros import node as node_module

    error = "failed to initialize wait set: the given context is not valid"
    monkeypatch.setattr(node_module, "SingleThreadedExecutor", lambda: _ShutDownMidSpin(error, shut_down))
    made = _ClosableNode()
    if shut_down:  # a signal's shutdown: exit 0, the node closed, no traceback
        assert node_module.spin_node(["spin_node_test"], lambda: made) == 0
    else:  # the context is still valid: a real failure propagates
        with pytest.raises(RuntimeError, match="wait set"):
            node_module.spin_node(["spin_node_test"], lambda: made)
    assert made.closed
    assert not rclpy.ok()

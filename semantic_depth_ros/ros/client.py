"""A client of running depth nodes over DDS: publishes camera frames, collects every output by its full stamp.

Used by ``semantic-depth bench``, ``semantic-depth demo`` and the tests. One client drives one or several cameras,
each a topic namespace (``/cam_a`` -> ``/cam_a/image``, ``/cam_a/camera_info`` in; ``/cam_a/depth``, ... out).
Outputs are received *serialized*: the stamp is read from the CDR bytes, so measuring never pays for Python
deserialization of multi-megabyte clouds; ``message`` deserializes one when the caller wants it. Frames are
matched by the full header stamp (``sec * 10**9 + nanosec``). The executor thread's exceptions are not swallowed:
they are raised from the next call that waits, and from ``close``.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, ShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from ..errors import SemanticDepthError
from .camera_channel import OUTPUT_MESSAGES
from .distro import dds_profile_environment

INFO_SETTLE_S = 0.05  # after a changed camera_info, so that the node holds it before the image arrives
_CDR_STAMP = struct.Struct("<iI")  # after the 4-byte encapsulation header: header.stamp.sec, header.stamp.nanosec
NANOSECONDS = 1_000_000_000


def stamp_of(serialized: bytes) -> int:
    """Full stamp (``sec * 10**9 + nanosec``) of a serialized message whose first field is a Header."""
    sec, nanosec = _CDR_STAMP.unpack_from(serialized, 4)
    return sec * NANOSECONDS + nanosec


@dataclass(frozen=True)
class Received:
    """One output message as it arrived: its serialized bytes and the arrival time (``perf_counter`` seconds)."""

    data: bytes
    arrived: float


def _topic(camera: str, topic: str) -> str:
    return f"{camera.rstrip('/')}/{topic}"


class DepthClient:
    """Publisher of frames to ``cameras`` (namespaces) and collector of their ``outputs`` (keys of ``OUTPUT_MESSAGES``).

    Runs its own ROS context on ``domain_id`` (None: ``ROS_DOMAIN_ID``) with an executor thread; its participant
    gets the package's Fast DDS profile unless the user names one. ``diagnostics``: keep the latest
    ``/diagnostics`` message in ``self.diagnostics``. ``odometry_topic``: also publish ``nav_msgs/Odometry`` there
    (``publish_odometry``). ``image_topics``: camera -> its image topic relative to the camera (default ``image``;
    e.g. ``image_rect`` for a node remapped to image_proc's names).
    """

    def __init__(self, *, domain_id: int | None = None, cameras: Sequence[str] = ("/",),
                 outputs: Sequence[str] = tuple(OUTPUT_MESSAGES), diagnostics: bool = False,
                 name: str = "semantic_depth_client", odometry_topic: str | None = None,
                 image_topics: Mapping[str, str] | None = None) -> None:
        unknown = sorted(set(outputs) - set(OUTPUT_MESSAGES))
        if unknown or not cameras:
            raise SemanticDepthError(f"client outputs {', '.join(unknown)} are not among {', '.join(OUTPUT_MESSAGES)}"
                                     if unknown else "a client needs at least one camera namespace")
        self.cameras = tuple(cameras)
        self.outputs = tuple(outputs)
        self.diagnostics: DiagnosticArray | None = None
        self._cond = threading.Condition()
        self._arrivals: dict[tuple[str, str], dict[int, Received]] = {}
        self._last_info: dict[str, tuple] = {}
        self._error: BaseException | None = None
        self._error_raised = False
        self.context = Context()
        init_kwargs = {} if domain_id is None else {"domain_id": domain_id}
        # rmw_fastrtps creates the participant (and reads the profile once per process) with the first node; the
        # variable is removed again so that it does not leak into processes the caller starts later.
        profile_env = dds_profile_environment(os.environ)
        os.environ.update(profile_env)
        try:
            rclpy.init(context=self.context, **init_kwargs)
            self.node = Node(name, context=self.context)
        finally:
            for variable in profile_env:
                os.environ.pop(variable, None)
        publish_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        receive_qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        image_topics = image_topics or {}
        self._image_pubs = {c: self.node.create_publisher(Image, _topic(c, image_topics.get(c, "image")), publish_qos)
                            for c in cameras}
        self._info_pubs = {c: self.node.create_publisher(CameraInfo, _topic(c, "camera_info"), publish_qos)
                           for c in cameras}
        self._subscriptions = [
            self.node.create_subscription(OUTPUT_MESSAGES[key][1], _topic(camera, OUTPUT_MESSAGES[key][0]),
                                          self._receiver(camera, key), receive_qos, raw=True)
            for camera in cameras for key in outputs]
        if diagnostics:
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._odometry_pub = None
        if odometry_topic is not None:
            from nav_msgs.msg import Odometry  # only clients that drive ego-motion need nav_msgs

            odometry_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
            self._odometry_pub = self.node.create_publisher(Odometry, odometry_topic, odometry_qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{name}_executor", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------------ executor thread
    def _spin(self) -> None:
        try:
            self.executor.spin()
        except (ExternalShutdownException, ShutdownException):
            pass  # the context or executor was shut down: the normal end
        except BaseException as exc:  # noqa: BLE001 - kept and raised in the caller's thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _receiver(self, camera: str, key: str):
        store = self._arrivals.setdefault((camera, key), {})

        def arrived(data: bytes) -> None:
            now = time.perf_counter()
            with self._cond:
                store[stamp_of(data)] = Received(data, now)
                self._cond.notify_all()
        return arrived

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics = msg

    def node_diagnostics(self, ready: Callable[[dict[str, str]], bool] = lambda values: True,
                         timeout: float = 10.0) -> dict[str, str]:
        """The key/values of the depth node's own status (the first of its ``/diagnostics`` array) once
        ``ready(values)`` holds; SemanticDepthError after ``timeout`` seconds (needs ``diagnostics=True``)."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            message = self.diagnostics
            if message is not None and message.status:
                values = {kv.key: kv.value for kv in message.status[0].values}
                if ready(values):
                    return values
            if time.monotonic() > deadline:
                raise SemanticDepthError(f"no /diagnostics of the node as wanted within {timeout:.0f} s")
            time.sleep(0.05)

    def check(self) -> None:
        """Raise the executor thread's exception, if it had one."""
        if self._error is not None:
            self._error_raised = True
            raise RuntimeError(f"the client's executor thread failed: {self._error!r}") from self._error

    # ------------------------------------------------------------------------------------------------- frames
    def wait_connected(self, timeout: float = 30.0) -> None:
        """Until every camera's node subscribes to our images and publishes every output we subscribed to."""
        deadline = time.monotonic() + timeout
        while not (all(p.get_subscription_count() > 0 for p in self._image_pubs.values())
                   and all(s.get_publisher_count() > 0 for s in self._subscriptions)):
            self.check()
            if time.monotonic() > deadline:
                raise SemanticDepthError(f"the depth node did not connect to {', '.join(self.cameras)} within "
                                         f"{timeout:.0f} s")
            time.sleep(0.05)

    def publish(self, stamp: int, image: Image, info: CameraInfo | None = None, camera: str | None = None) -> float:
        """Publish ``info`` then ``image`` with the full stamp ``stamp`` (ns) to ``camera`` (default: the first).

        Returns when the image was published (``perf_counter`` seconds). A camera_info that differs from the one
        sent before gets ``INFO_SETTLE_S`` to reach the node first (the node keeps the latest).
        """
        camera = self.cameras[0] if camera is None else camera
        self.check()
        image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp, NANOSECONDS)
        if info is not None:
            info.header.stamp = image.header.stamp
            self._info_pubs[camera].publish(info)
            roi = info.roi
            identity = (info.width, info.height, tuple(info.k), info.distortion_model, tuple(info.d), tuple(info.p),
                        info.binning_x, info.binning_y, roi.x_offset, roi.y_offset, roi.width, roi.height,
                        info.header.frame_id)
            if self._last_info.get(camera) != identity:
                self._last_info[camera] = identity
                time.sleep(INFO_SETTLE_S)
        sent = time.perf_counter()
        self._image_pubs[camera].publish(image)
        return sent

    def publish_odometry(self, stamp: int, position: Sequence[float], orientation: Sequence[float], *,
                         frame_id: str = "odom", child_frame_id: str = "base_link") -> None:
        """Publish the pose of ``child_frame_id`` in ``frame_id`` at ``stamp`` (ns): position x y z metres,
        orientation x y z w (sent as given: a test may send a bad one)."""
        from nav_msgs.msg import Odometry

        if self._odometry_pub is None:
            raise SemanticDepthError("this client was made without odometry_topic")
        self.check()
        msg = Odometry()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, NANOSECONDS)
        msg.header.frame_id, msg.child_frame_id = frame_id, child_frame_id
        pose = msg.pose.pose
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (float(v) for v in orientation)
        self._odometry_pub.publish(msg)

    def wait_odometry_connected(self, timeout: float = 30.0) -> None:
        """Until the node subscribes to our odometry."""
        deadline = time.monotonic() + timeout
        while self._odometry_pub is not None and self._odometry_pub.get_subscription_count() == 0:
            self.check()
            if time.monotonic() > deadline:
                raise SemanticDepthError(f"the depth node did not subscribe to odometry within {timeout:.0f} s")
            time.sleep(0.05)

    def set_parameters(self, node: str, values: dict[str, str], timeout: float = 10.0) -> None:
        """Set string parameters of the running node ``node`` (full name, e.g. ``/ns/depth_node``) through its
        ``set_parameters`` service, as ``ros2 param set`` does; SemanticDepthError naming a refused one."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        client = self.node.create_client(SetParameters, f"{node}/set_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise SemanticDepthError(f"no {node}/set_parameters service within {timeout:.0f} s")
            request = SetParameters.Request(parameters=[Parameter(name, Parameter.Type.STRING, value).to_parameter_msg()
                                                        for name, value in values.items()])
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done():
                self.check()
                if time.monotonic() > deadline:
                    raise SemanticDepthError(f"{node}/set_parameters did not answer within {timeout:.0f} s")
                time.sleep(0.01)
            for name, result in zip(values, future.result().results):
                if not result.successful:
                    raise SemanticDepthError(f"{node} refused {name} = {values[name]!r}: {result.reason}")
        finally:
            self.node.destroy_client(client)

    def done_at(self, stamp: int, keys: Sequence[str] | None = None, camera: str | None = None) -> float | None:
        """When the last of ``keys`` (default: all subscribed) for ``stamp`` arrived, or None if one is missing."""
        camera = self.cameras[0] if camera is None else camera
        with self._cond:
            times = [self._arrivals[(camera, key)].get(stamp) for key in (keys or self.outputs)]
        return None if any(t is None for t in times) else max(t.arrived for t in times)

    def wait(self, stamp: int, keys: Sequence[str] | None = None, camera: str | None = None,
             timeout: float = 5.0) -> float | None:
        """``done_at`` once every output of ``stamp`` arrived, or None after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self.check()
                done = self.done_at(stamp, keys, camera)
                remaining = deadline - time.monotonic()
                if done is not None or remaining <= 0:
                    return done
                self._cond.wait(remaining)

    def take(self, stamp: int, camera: str | None = None) -> dict[str, Received]:
        """Remove and return what arrived for ``stamp`` on ``camera``, by output key."""
        camera = self.cameras[0] if camera is None else camera
        with self._cond:
            return {key: received for key in self.outputs
                    if (received := self._arrivals[(camera, key)].pop(stamp, None)) is not None}

    @staticmethod
    def message(key: str, received: Received) -> object:
        """The rclpy message of output ``key`` from its serialized bytes."""
        return deserialize_message(received.data, OUTPUT_MESSAGES[key][1])

    # ---------------------------------------------------------------------------------------------- shut down
    def close(self) -> None:
        """Stop the executor thread, destroy the node and the context; raise the thread's exception, if it had
        one that no earlier call raised."""
        self.executor.shutdown(timeout_sec=2.0)
        self._thread.join(timeout=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
        if not self._error_raised:
            self.check()

    def __enter__(self) -> "DepthClient":
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

"""One camera of the depth node: its input subscriptions, latest camera_info, output publishers and statistics.

A camera named ``front`` reads ``front/image`` (or ``front/image/compressed``) and ``front/camera_info`` and
publishes ``front/depth``, ``front/points``, ...; the unnamed camera (``name=""``, the single-camera node) uses
``image``, ``camera_info`` and ``depth``, ... in the node's namespace. Incoming images go to ``on_frame`` (the node
core decides whether to hand them to the worker); the worker calls ``prepare`` (decode and validate: a bad message
is rejected for this camera alone; the plan of the outputs subscribed now) and ``serialize`` (the camera's
``pipeline.CameraOutputs``, the same path as ``infer-bag``, then each message's CDR bytes from the message core: no
rclpy message object is built for an output); the node's publisher thread then calls ``publish`` on those bytes
(``serialized_publish``: through rcl, GIL released), while the worker runs the next frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Union

import numpy as np
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ..errors import InvalidInputError
from ..geometry.intrinsics import CameraModel, Intrinsics, camera_from_info, input_is_rectified
from ..geometry.undistort import check_camera_model
from ..inference.estimator import EstimatorOutputs
from ..messages import OUTPUT_TOPICS, MessageHeader, compressed_to_rgb, image_to_rgb, to_cdr
from ..pipeline import CameraOutputs, FrameStage, OutputPlan
from ..pipeline.plan import ESTIMATOR_NEEDS
from ..temporal import CameraPoses
from .diagnostics import LogThrottle, NodeStats, StageTimes
from .params import NodeSettings
from .serialized_publish import publish_serialized

_MESSAGE_TYPES: dict[str, type] = {"depth_info": CameraInfo, "points": PointCloud2}
# output key -> (topic relative to the camera's namespace, message type); topics from the message core
OUTPUT_MESSAGES: dict[str, tuple[str, type]] = {key: (topic, _MESSAGE_TYPES.get(key, Image))
                                                for key, topic in OUTPUT_TOPICS.items()}
InputMsg = Union[Image, CompressedImage]


@dataclass(frozen=True)
class ReceivedFrame:
    """An image message and when it arrived (``time.monotonic()`` seconds)."""

    msg: InputMsg
    received: float

    @property
    def stamp_ns(self) -> int:
        """The header stamp in nanoseconds."""
        stamp = self.msg.header.stamp
        return stamp.sec * 1_000_000_000 + stamp.nanosec


@dataclass(frozen=True)
class SerializedFrame:
    """One frame's outputs, ready to publish: ``messages`` (output key, CDR bytes) depth first; ``received`` the
    input's arrival (``time.monotonic()`` seconds); ``seconds`` the frame path's parts timed so far (decode,
    network, the stages, outputs)."""

    received: float
    messages: tuple[tuple[str, bytes], ...]
    seconds: dict[str, float]


@dataclass(frozen=True)
class PreparedFrame:
    """A decoded, validated frame of one camera: HxWx3 uint8 RGB, its camera (a ``CameraModel`` from camera_info,
    whose lens distortion the estimator removes; the fallback ``Intrinsics``; or None) and the estimator outputs
    its plan needs."""

    frame: ReceivedFrame
    rgb: np.ndarray
    camera: CameraModel | Intrinsics | None
    estimator_outputs: tuple[str, ...]


def qos_profile(reliability: str, depth: int) -> QoSProfile:
    """Keep-last QoS with ``depth`` and ``reliable``/``best_effort`` reliability."""
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


class CameraChannel:
    """Subscriptions, publishers and statistics of camera ``name`` ("" = the node's own namespace) on ``node``.

    ``stats`` counts this camera; ``totals`` (the node's statistics over all cameras), when given, counts it too.
    ``available``: the estimator outputs the model can give (an .onnx exported with fewer heads gives fewer);
    outputs that need others get no publisher. ``stages``: this camera's stages after the estimator
    (``outputs``, its ``CameraOutputs``, runs them); ``poses``: its camera poses from odometry, or None.
    """

    def __init__(self, node: Node, name: str, settings: NodeSettings,
                 on_frame: Callable[["CameraChannel", ReceivedFrame], None], throttle: LogThrottle,
                 totals: NodeStats | None = None, available: Collection[str] | None = None,
                 stages: Sequence[FrameStage] = (), poses: CameraPoses | None = None) -> None:
        self.node = node
        self.name = name
        self.poses = poses
        self.stats = NodeStats()
        self.timings = StageTimes()  # this camera's frame path, part by part, and the bytes it published
        self._all_stats = [self.stats] if totals is None or totals is self.stats else [self.stats, totals]
        self._throttle = throttle
        self._on_frame = on_frame
        self._camera_info: CameraInfo | None = None
        self._camera: tuple[CameraInfo, int, int, CameraModel] | None = None  # worker's parse of the latest info
        output_qos = qos_profile(settings.output_qos_reliability, settings.output_qos_depth)
        self.publishers = {key: node.create_publisher(msg_type, self.topic(topic), output_qos)
                           for key, (topic, msg_type) in OUTPUT_MESSAGES.items()
                           if available is None or set(ESTIMATOR_NEEDS[key]) <= set(available)}
        self.outputs = CameraOutputs(OutputPlan(tuple(self.publishers), settings.cloud), stages)
        input_qos = qos_profile(settings.input_qos_reliability, settings.input_qos_depth)
        compressed = settings.input_transport == "compressed"
        self.image_topic = self.topic("image/compressed" if compressed else "image")
        resolved = node.resolve_topic_name(self.image_topic)
        # one rule for "already rectified" (camera_info's P, no undistortion), logged once with the resolved name
        self.rectified = input_is_rectified(settings.input_rectified, resolved)
        self.last_encoding = ""  # of the newest frame decoded (an Image's encoding, a CompressedImage's format)
        kind = ("rectified: camera from camera_info P, no undistortion" if self.rectified
                else "raw: camera from camera_info K and D, undistorted")
        node.get_logger().info(f"input {resolved} taken as {kind} (input_rectified: {settings.input_rectified})")
        self._subscriptions = [
            node.create_subscription(CompressedImage if compressed else Image, self.image_topic, self._on_image,
                                     input_qos),
            node.create_subscription(CameraInfo, self.topic("camera_info"), self._on_camera_info, input_qos)]

    def topic(self, relative: str) -> str:
        """``relative`` under this camera's namespace (``<name>/<relative>``, or ``relative`` when unnamed)."""
        return f"{self.name}/{relative}" if self.name else relative

    @property
    def latest_camera_info(self) -> CameraInfo | None:
        """The newest camera_info received (validated against each image when it is used), or None."""
        return self._camera_info

    def subscribed_outputs(self) -> list[str]:
        """Keys of ``OUTPUT_MESSAGES`` whose topics have subscribers now (checked for every frame)."""
        return [key for key, pub in self.publishers.items() if pub.get_subscription_count() > 0]

    # -------------------------------------------------------------------------------- executor thread
    def _on_image(self, msg: InputMsg) -> None:
        now = time.monotonic()
        for stats in self._all_stats:
            stats.record_input(now)
        self._on_frame(self, ReceivedFrame(msg, now))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    # ---------------------------------------------------------------------------------- worker thread
    def prepare(self, frame: ReceivedFrame, settings: NodeSettings) -> PreparedFrame | None:
        """Decode and validate ``frame`` and plan the outputs subscribed now (``outputs.replan``); None when
        nothing is wanted or the image or camera_info is bad (counted and logged, throttled, for this camera)."""
        subscribed = self.subscribed_outputs()
        if not subscribed:
            return None
        compressed = isinstance(frame.msg, CompressedImage)
        self.last_encoding = str(frame.msg.format if compressed else frame.msg.encoding)
        try:
            rgb = compressed_to_rgb(frame.msg) if compressed else image_to_rgb(frame.msg)
        except InvalidInputError as exc:
            self.reject(self.image_topic, exc)
            return None
        height, width = rgb.shape[:2]
        try:
            camera = self._camera_of(settings, width, height)
        except InvalidInputError as exc:
            self.reject(self.topic("camera_info"), exc)
            return None
        plan = OutputPlan(tuple(subscribed), settings.cloud)
        if camera is None and plan.needs_intrinsics:
            if self._throttle.allow(f"no_intrinsics:{self.name}", time.monotonic()):
                self.node.get_logger().warning(
                    f"no camera_info on {self.node.resolve_topic_name(self.topic('camera_info'))} and no fallback "
                    "fx/fy parameters: publishing images but not points or depth/camera_info")
            plan = plan.servable(has_intrinsics=False)
            if not plan.outputs:
                return None
        self.outputs.replan(plan)
        return PreparedFrame(frame, rgb, camera, self.outputs.estimator_outputs(has_intrinsics=camera is not None))

    def _camera_of(self, settings: NodeSettings, width: int, height: int) -> CameraModel | Intrinsics | None:
        """Camera of the input image: the latest camera_info's model (InvalidInputError for a bad one or an
        unsupported distortion model), else the fallback parameters, else None."""
        info = self._camera_info
        if info is not None:
            cached = self._camera
            if cached is not None and cached[0] is info and cached[1:3] == (width, height):
                return cached[3]  # camera_info rarely changes: parse and check it once, not per frame
            camera = check_camera_model(camera_from_info(info, width, height, rectified=self.rectified))
            self._camera = (info, width, height, camera)
            return camera
        if settings.has_fallback_intrinsics:
            return Intrinsics(settings.fx, settings.fy, settings.cx, settings.cy, width, height)
        return None

    def input_diagnostics(self) -> dict[str, str]:
        """``/diagnostics`` values of this camera's input: the encoding received last and whether the image is
        treated as rectified."""
        return {"input_encoding": self.last_encoding, "input_rectified": str(self.rectified).lower()}

    def reject(self, topic: str, exc: InvalidInputError) -> None:
        """Count a bad message of this camera and log it, throttled per camera and offending field."""
        for stats in self._all_stats:
            stats.record_rejected()
        text = str(exc)
        if self._throttle.allow(f"reject:{self.name}:{text.split(' ', 1)[0]}", time.monotonic()):
            self.node.get_logger().error(f"rejected {self.node.resolve_topic_name(topic)} message: {text}")

    def record_failure(self, exc: BaseException) -> None:
        """Count a frame of this camera that failed in the network or publishing (not bad input; the caller logs)."""
        now = time.monotonic()
        for stats in self._all_stats:
            stats.record_failed(now, type(exc).__name__)

    def pose_at(self, stamp_ns: int) -> np.ndarray | None:
        """``world_from_camera`` (4x4) at ``stamp_ns`` from odometry; None without odometry or when the stamp has
        no pose (counted by ``poses``)."""
        return None if self.poses is None else self.poses.pose_at(stamp_ns)

    def serialize(self, prepared: PreparedFrame, outputs: EstimatorOutputs, *, depth_range: tuple[float, float],
                  pose: np.ndarray | None = None, seconds: dict[str, float] | None = None) -> SerializedFrame:
        """Every planned output of one frame from ``outputs`` (``CameraOutputs.messages``: the stages, with the
        camera ``pose`` at the frame's stamp, one host copy each), depth first, under the input's header, as CDR
        bytes. ``seconds``: the parts of the frame timed before (``decode``, ``network``); the stages and
        ``outputs`` (which includes the CDR serialisation) are added."""
        frame = prepared.frame
        messages = self.outputs.messages(outputs, frame.stamp_ns, depth_range=depth_range, pose=pose)
        stamp = frame.msg.header.stamp
        header = MessageHeader(stamp.sec, stamp.nanosec, frame.msg.header.frame_id)
        start = time.perf_counter()
        serialized = tuple((key, to_cdr(fields, header)) for key, fields in messages.fields.items())
        parts = {**(seconds or {}), **messages.seconds}
        parts["outputs"] = parts.get("outputs", 0.0) + time.perf_counter() - start
        return SerializedFrame(frame.received, serialized, parts)

    def publish(self, frame: SerializedFrame, serving: Callable[[], bool] = lambda: True) -> bool:
        """Publish ``frame``'s messages in order, each only while ``serving()`` (checked before every message: a
        deactivate stops a frame mid-way); record ``publish`` with the frame's other parts in ``timings``, and the
        frame as served (latency to the end of its publish) unless no message could be published. False when
        ``serving()`` stopped it (the caller counts the frame as dropped)."""
        start = time.perf_counter()
        published = 0
        for key, data in frame.messages:
            if not serving():
                return False
            published += self._publish(key, data)
        publish_s = time.perf_counter() - start
        now = time.monotonic()
        self.timings.record({**frame.seconds, "publish": publish_s}, now)
        if published:
            self.timings.record_published(published, now)
            for stats in self._all_stats:
                stats.record_output(frame.received, now)
        return True

    def _publish(self, key: str, data: bytes) -> int:
        """Publish serialized ``data`` on output ``key``; the bytes published, or 0 when publishing failed (a
        publisher destroyed at shutdown or cleanup: counted in ``timings`` and logged, throttled, never raised)."""
        publisher = self.publishers.get(key)
        try:
            if publisher is None:
                raise RuntimeError(f"the {key} publisher is gone")
            publish_serialized(publisher, data)
        except Exception as exc:  # noqa: BLE001 - a closing node must not take the worker (or other outputs) down
            self.timings.record_publish_failure()
            if self._throttle.allow(f"publish:{self.name}:{key}", time.monotonic()):
                self.node.get_logger().warning(f"could not publish {key}: {type(exc).__name__}: {exc}")
            return 0
        return len(data)

    def destroy(self) -> None:
        """Remove this camera's subscriptions and publishers from the node."""
        for subscription in self._subscriptions:
            self.node.destroy_subscription(subscription)
        for publisher in self.publishers.values():
            self.node.destroy_publisher(publisher)
        self._subscriptions = []
        self.publishers = {}

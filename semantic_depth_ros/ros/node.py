"""The depth node: camera images in; metric depth, semantics, confidence and point clouds out.

An adapter only: it converts messages (``ros.messages``), calls the estimator, the geometry and the colouring
functions, and publishes. The subscription callback never runs the network: it hands the newest frame to one
worker thread (``ros.worker``), so frames that arrive while the network runs replace each other and are counted
as dropped. Each output is computed and published only while it has subscribers.

What each output holds and how it is computed lives in the ROS-free message core (``semantic_depth_ros.messages``);
the node only picks what subscribers want, wraps the core's fields into messages and publishes them. Parameter
changes reach the estimator once, between frames, when they change.

Run it with ``ros2 run semantic_depth_ros depth_node --ros-args -p model_path:=model.pt`` or
``semantic-depth node --model-path model.pt`` (``commands/node.py``).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Union

import rclpy
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from ..errors import ConfigError, InvalidInputError, SemanticDepthError
from ..geometry.intrinsics import Intrinsics
from ..geometry.pointcloud import RayGridCache
from ..inference.benchmark import process_peak_rss_mb
from ..inference.estimator import DepthEstimator, EstimatorOutputs
from ..messages import (
    NEEDS,
    NEEDS_INTRINSICS,
    OUTPUT_TOPICS,
    HostStaging,
    estimator_outputs_for,
    frame_fields,
    output_tensors,
)
from .diagnostics import LogThrottle, NodeStats, diagnostic_array
from .messages import camera_info_to_intrinsics, compressed_msg_to_rgb, image_msg_to_rgb, to_msg
from .params import PARAMETER_NAMES, NodeSettings, apply_changes, declaration_list, settings_from_values
from .worker import LatestFrameWorker

NODE_NAME = "depth_node"
DIAGNOSTICS_PERIOD_S = 1.0
LOG_THROTTLE_S = 5.0

_MESSAGE_TYPES: dict[str, type] = {"depth_info": CameraInfo, "points": PointCloud2}
# output key -> (topic, message type); topics and contents from the message core
OUTPUTS: dict[str, tuple[str, type]] = {key: (topic, _MESSAGE_TYPES.get(key, Image))
                                        for key, topic in OUTPUT_TOPICS.items()}
InputMsg = Union[Image, CompressedImage]


@dataclass(frozen=True)
class Frame:
    """An image message and when it arrived (``time.monotonic()`` seconds)."""

    msg: InputMsg
    received: float


def _qos(reliability: str, depth: int) -> QoSProfile:
    policy = ReliabilityPolicy.BEST_EFFORT if reliability == "best_effort" else ReliabilityPolicy.RELIABLE
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policy)


class DepthNode(Node):
    """ROS 2 node around ``DepthEstimator``; see the module docstring and README for topics and parameters.

    Construction declares and validates the parameters, loads the checkpoint and runs one warm-up frame; it
    raises a ``SemanticDepthError`` (one line naming the file or parameter) when any of that fails.
    """

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: object) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._settings = self._declare_parameters()
            warmup_ms = self._load_model()
        except BaseException:
            self.destroy_node()  # leave no half-built node in the graph
            raise

        self.stats = NodeStats()
        self._throttle = LogThrottle(LOG_THROTTLE_S)
        self._rays = RayGridCache()
        self._staging = HostStaging()
        self._camera_info: CameraInfo | None = None
        self._estimator_update: NodeSettings | None = None  # applied by the worker before its next frame
        self._update_lock = threading.Lock()
        output_qos = _qos(self._settings.output_qos_reliability, self._settings.output_qos_depth)
        self._publishers_by_key = {key: self.create_publisher(msg_type, topic, output_qos)
                                   for key, (topic, msg_type) in OUTPUTS.items()
                                   if set(NEEDS[key]) <= self.estimator.available_outputs}  # .onnx: its heads
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.worker: LatestFrameWorker[Frame] = LatestFrameWorker(self._process, name="depth_worker",
                                                                  on_error=self._on_worker_error)
        self.worker.start()
        input_qos = _qos(self._settings.input_qos_reliability, self._settings.input_qos_depth)
        if self._settings.input_transport == "compressed":
            self.image_topic = "image/compressed"
            self.create_subscription(CompressedImage, self.image_topic, self._on_image, input_qos)
        else:
            self.image_topic = "image"
            self.create_subscription(Image, self.image_topic, self._on_image, input_qos)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, input_qos)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        self._diagnostics_timer = self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        if not self.estimator.trained:
            self.get_logger().warning(f"{self._settings.model_path} is an UNTRAINED checkpoint: its depth and "
                                      "labels are meaningless")
        self.get_logger().info(
            f"ready: model {self.estimator.model_name} on {self.estimator.device} ({self.estimator.precision}, "
            f"{self.estimator.backend}; {self.estimator.runner.description}), "
            f"input {self.resolve_topic_name(self.image_topic)}, warm-up {warmup_ms:.0f} ms")

    def _load_model(self) -> float:
        """Load the checkpoint and run the warm-up frame; return the warm-up time in milliseconds."""
        if not self._settings.model_path:
            raise ConfigError("parameter model_path is empty: set it to a checkpoint (.pt) or ONNX model (.onnx)")
        low, high = self._settings.depth_range
        self.estimator = DepthEstimator(self._settings.model_path, device=self._settings.device,
                                        precision=self._settings.precision, mask_sky=self._settings.mask_sky,
                                        min_depth=low, max_depth=high, backend=self._settings.backend,
                                        trt_cache_dir=self._settings.trt_cache_dir)
        config = self.estimator.config
        start = time.monotonic()
        self.estimator.warmup(config.input_height, config.input_width)
        return (time.monotonic() - start) * 1e3

    # ----------------------------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> NodeSettings:
        """Declare every parameter with its descriptor; return the validated values (ConfigError otherwise)."""
        try:
            self.declare_parameters("", declaration_list())
        except ParameterException as exc:  # rclpy formats these as "<message>: <parameter name>"
            message, _, name = str(exc).splitlines()[0].rpartition(": ")
            raise ConfigError(f"invalid parameter {name}: {message}") from None
        return settings_from_values({name: self.get_parameter(name).value for name in PARAMETER_NAMES})

    @property
    def settings(self) -> NodeSettings:
        """The current validated parameter values."""
        return self._settings

    @property
    def latest_camera_info(self) -> CameraInfo | None:
        """The newest camera_info received (validated against each image when it is used), or None."""
        return self._camera_info

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        try:
            apply_changes(self._settings, {p.name: p.value for p in params})
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Parameter]) -> None:
        previous = self._settings
        self._settings = apply_changes(previous, {p.name: p.value for p in params})
        if (self._settings.mask_sky, self._settings.depth_range) != (previous.mask_sky, previous.depth_range):
            with self._update_lock:
                self._estimator_update = self._settings
        self.get_logger().info("parameters changed: " + ", ".join(f"{p.name}={p.value!r}" for p in params))

    def _apply_estimator_update(self) -> None:
        """Worker thread, between frames: hand changed ``mask_sky``/depth range to the estimator, once."""
        with self._update_lock:
            settings, self._estimator_update = self._estimator_update, None
        if settings is not None:
            self.estimator.mask_sky = settings.mask_sky
            self.estimator.min_depth, self.estimator.max_depth = settings.depth_range

    # -------------------------------------------------------------------------------------------------- input
    def _on_image(self, msg: InputMsg) -> None:
        now = time.monotonic()
        self.stats.record_input(now)
        self.worker.submit(Frame(msg, now))

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _reject(self, topic: str, exc: InvalidInputError) -> None:
        """Count a bad message and log it, throttled per offending field."""
        self.stats.record_rejected()
        text = str(exc)
        if self._throttle.allow(f"reject:{text.split(' ', 1)[0]}", time.monotonic()):
            self.get_logger().error(f"rejected {self.resolve_topic_name(topic)} message: {text}")

    def _on_worker_error(self, exc: BaseException) -> None:
        if self._throttle.allow(f"worker:{type(exc).__name__}", time.monotonic()):
            self.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}")

    def _intrinsics(self, settings: NodeSettings, width: int, height: int) -> Intrinsics | None:
        """Intrinsics of the input image: latest camera_info, else the fallback parameters, else None."""
        info = self._camera_info
        if info is not None:
            return camera_info_to_intrinsics(info, width, height)
        if settings.has_fallback_intrinsics:
            return Intrinsics(settings.fx, settings.fy, settings.cx, settings.cy, width, height)
        return None

    # -------------------------------------------------------------------------------------------- hot path
    def subscribed_outputs(self) -> list[str]:
        """Keys of ``OUTPUTS`` whose topics have subscribers now (checked for every frame)."""
        return [key for key, pub in self._publishers_by_key.items() if pub.get_subscription_count() > 0]

    def _process(self, frame: Frame) -> None:
        """Worker thread: decode, validate, estimate what subscribers need, publish."""
        self._apply_estimator_update()
        settings = self._settings
        wanted = self.subscribed_outputs()
        if not wanted:
            return
        try:
            if isinstance(frame.msg, CompressedImage):
                rgb = compressed_msg_to_rgb(frame.msg)
            else:
                rgb = image_msg_to_rgb(frame.msg)
        except InvalidInputError as exc:
            self._reject(self.image_topic, exc)
            return
        height, width = rgb.shape[:2]
        try:
            intrinsics = self._intrinsics(settings, width, height)
        except InvalidInputError as exc:
            self._reject("camera_info", exc)
            return
        if intrinsics is None and any(key in wanted for key in NEEDS_INTRINSICS):
            if self._throttle.allow("no_intrinsics", time.monotonic()):
                self.get_logger().warning(
                    f"no camera_info on {self.resolve_topic_name('camera_info')} and no fallback fx/fy parameters: "
                    "publishing images but not points or depth/camera_info")
            wanted = [key for key in wanted if key not in NEEDS_INTRINSICS]
            if not wanted:
                return
        outputs = self.estimator.estimate(rgb, intrinsics=intrinsics, output_resolution=settings.output_resolution,
                                          outputs=estimator_outputs_for(wanted))
        self._publish(frame, wanted, outputs, settings)
        self.stats.record_output(frame.received, time.monotonic())

    def _publish(self, frame: Frame, wanted: list[str], outputs: EstimatorOutputs,
                 settings: NodeSettings) -> None:
        """Every wanted output from the message core (one host copy each), published depth first."""
        tensors = output_tensors(wanted, outputs, depth_range=self.estimator.depth_range(),
                                 point_stride=settings.point_stride, rays=self._rays)
        fields = frame_fields(wanted, self._staging.fetch(tensors), outputs.intrinsics)
        header = frame.msg.header
        for key, message_fields in fields.items():
            self._publishers_by_key[key].publish(to_msg(header, message_fields))

    # -------------------------------------------------------------------------------------------- diagnostics
    def _publish_diagnostics(self) -> None:
        self.stats.set_dropped(self.worker.dropped)
        snapshot = self.stats.snapshot(time.monotonic())
        device = self.estimator.device
        memory = {"peak_rss_mb": process_peak_rss_mb()}
        if device.type == "cuda":
            memory["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        self._diagnostics_pub.publish(diagnostic_array(
            snapshot, stamp=self.get_clock().now().to_msg(), name=f"{self.get_name()}: semantic depth",
            hardware_id=str(device), device=str(device), model_name=self.estimator.model_name,
            precision=self.estimator.precision, trained=self.estimator.trained, memory_mb=memory,
            runtime=self.estimator.runner.description))

    def close(self) -> None:
        """Stop the worker (finishing its current frame) and destroy the node."""
        self.worker.stop()
        self.destroy_node()


# ------------------------------------------------------------------------------------------------ entry points
def run(argv: Sequence[str]) -> int:
    """Initialise rclpy with ``argv`` (ROS arguments included), spin a ``DepthNode`` until shutdown.

    Returns 0 after SIGINT or an external shutdown, 1 after printing ``error: <message>`` when the node cannot
    start (missing/corrupt/incompatible checkpoint, invalid parameter).
    """
    rclpy.init(args=list(argv))
    node: DepthNode | None = None
    try:
        executor = SingleThreadedExecutor()
        node = DepthNode()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SemanticDepthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    return 0


def main_ros() -> int:
    """Entry point of ``ros2 run semantic_depth_ros depth_node`` (ROS arguments in ``sys.argv``)."""
    return run(sys.argv)

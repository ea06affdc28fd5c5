"""The depth node's one implementation, hosted by a plain ``Node`` (``ros.node``) or a ``LifecycleNode``
(``ros.lifecycle_node``).

Stages follow ROS 2 managed-node semantics; the plain node runs them all in its constructor:

- construction (*unconfigured*): parameters declared with descriptors; nothing loaded, nothing published. Static
  parameters may still change (``ros2 param set``) until ``configure``;
- ``configure``: validate the parameters, load the checkpoint, warm up, create every camera's subscriptions and
  publishers (``ros.camera_channel``), the batch worker and ``/diagnostics``; raises ``SemanticDepthError`` (one
  line naming the file or parameter) and leaves nothing behind when that fails;
- ``activate``: frames are served; ``deactivate``: incoming frames are dropped and counted, the model stays loaded.
  Each of ``activate``/``deactivate``/``cleanup`` starts a new activation generation: a batch publishes only while
  the generation it started in is still the current one, so a batch that outlives ``deactivate``'s wait publishes
  nothing after a quick re-activate (its frames count as dropped);
- ``cleanup``: everything ``configure`` created is destroyed and the model released (GPU memory too).

Several cameras share one network: each camera's newest frame waits in its own slot of one ``BatchWorker``; each
time the worker is free it takes every waiting frame and runs them as ONE ``estimate_batch`` requesting the union
of the outputs the cameras' subscribers want; each camera then serializes only its own wanted outputs (a frame's
values do not depend on the other outputs computed alongside it) and hands them to the publisher thread
(``ros.frame_publisher``: latest frame wins per camera, a frame publishes only while its generation is current),
so the network of frame N+1 runs while frame N is being published. A bad message is rejected for its camera alone;
a frame whose network run fails otherwise (e.g. a CUDA error) is counted as failed for its camera and logged.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from typing import Any

import torch
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.parameter import Parameter

from ..errors import ConfigError
from ..inference.benchmark import process_memory_mb
from ..inference.estimator import DepthEstimator
from ..pipeline.chain import frame_stages
from ..temporal import TemporalSettings, TemporalStage
from .batch_estimate import estimate_prepared
from .batch_worker import BatchWorker
from .camera_channel import CameraChannel, PreparedFrame, ReceivedFrame, qos_profile
from .distro import add_parameter_callbacks
from .diagnostics import LogThrottle, NodeStats, batch_figures, diagnostic_array
from .frame_publisher import FramePublisher
from .odometry_input import OdometryInput
from .params import (
    PARAMETER_NAMES,
    NodeSettings,
    apply_changes,
    check_model_settings,
    declaration_list,
    settings_from_values,
    unset_defaults,
    validate_value,
)

NODE_NAME = "depth_node"
DIAGNOSTICS_PERIOD_S = 1.0
LOG_THROTTLE_S = 5.0
BATCH_SAMPLES = 300
ODOMETRY_QOS_DEPTH = 100  # odometry comes at up to ~100 Hz while the executor may be busy with images
ChannelFrame = tuple[CameraChannel, ReceivedFrame]


class DepthNodeCore:
    """Parameters, model, cameras, worker and diagnostics of the depth node hosted by ``node``.

    The constructor declares the parameters (ConfigError for an override that violates its descriptor); see the
    module docstring for ``configure``/``activate``/``deactivate``/``cleanup``.
    """

    def __init__(self, node: Node) -> None:
        self.node = node
        self.estimator: DepthEstimator | None = None
        self.channels: dict[str, CameraChannel] = {}
        self.worker: BatchWorker[str, ChannelFrame] | None = None
        self.publisher: FramePublisher | None = None  # serialized frames -> DDS, off the worker thread
        self.stats = NodeStats()  # every camera together
        self.active = False
        self._generation = 0  # activation generation: bumped by activate/deactivate/cleanup
        self._state_lock = threading.Lock()
        self._settings: NodeSettings | None = None
        self._throttle = LogThrottle(LOG_THROTTLE_S)
        self._estimator_update: NodeSettings | None = None  # applied by the worker before its next batch
        self._temporal_update: TemporalSettings | None = None  # likewise, to every camera's temporal stage
        self.odometry: OdometryInput | None = None
        self._stages_stale = False  # deactivate could not reset the stages: the worker does before its next batch
        self._update_lock = threading.Lock()
        self._batches: deque[tuple[int, float]] = deque(maxlen=BATCH_SAMPLES)  # (frames, estimate seconds)
        self._diagnostics_pub = None
        self._diagnostics_timer = None
        self._declare_parameters()
        add_parameter_callbacks(node, self._on_set_parameters, self._after_set_parameters)

    # ----------------------------------------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        try:
            self.node.declare_parameters("", declaration_list())
        except ParameterException as exc:  # rclpy formats these as "<message>: <parameter name>"
            message, _, name = str(exc).splitlines()[0].rpartition(": ")
            raise ConfigError(f"invalid parameter {name}: {message}") from None
        unset = unset_defaults({name: self.node.get_parameter_or(name) for name in PARAMETER_NAMES})
        if unset:
            self.node.set_parameters(unset)

    def read_settings(self) -> NodeSettings:
        """The node's parameter values, validated (ConfigError naming the parameter)."""
        return settings_from_values({name: self.node.get_parameter(name).value for name in PARAMETER_NAMES})

    @property
    def settings(self) -> NodeSettings:
        """The validated settings in use (read at ``configure``, then updated by dynamic changes)."""
        return self._settings if self._settings is not None else self.read_settings()

    @property
    def configured(self) -> bool:
        """Whether the model is loaded and the cameras are set up."""
        return self.estimator is not None

    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params}
        try:
            if self._settings is None:  # nothing loaded yet: any parameter may change, each value is checked
                for name, value in changes.items():
                    validate_value(name, value)
            else:
                changed = apply_changes(self._settings, changes)
                if self.estimator is not None:
                    check_model_settings(changed, self.estimator)
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Parameter]) -> None:
        previous = self._settings
        if previous is None:
            return
        self._settings = apply_changes(previous, {p.name: p.value for p in params})
        if (self._settings.mask_sky, self._settings.depth_range) != (previous.mask_sky, previous.depth_range):
            with self._update_lock:
                self._estimator_update = self._settings
        if self._settings.temporal != previous.temporal:
            with self._update_lock:
                self._temporal_update = self._settings.temporal
        self.node.get_logger().info("parameters changed: " + ", ".join(f"{p.name}={p.value!r}" for p in params))

    def _apply_updates(self, estimator: DepthEstimator) -> None:
        """Worker thread, between batches: hand changed ``mask_sky``/depth range to the estimator and reset the
        stages after a deactivate that did not wait for the last batch, once each."""
        with self._update_lock:
            settings, self._estimator_update = self._estimator_update, None
            temporal, self._temporal_update = self._temporal_update, None
            stale, self._stages_stale = self._stages_stale, False
        if settings is not None:
            estimator.mask_sky = settings.mask_sky
            estimator.min_depth, estimator.max_depth = settings.depth_range
        if temporal is not None:
            for channel in self.channels.values():
                for stage in channel.outputs.stages:
                    if isinstance(stage, TemporalStage):
                        stage.configure(temporal)
        if stale:
            self._reset_stages()

    def _reset_stages(self) -> None:
        """Every camera's stages forget their state (deactivate, cleanup)."""
        for channel in self.channels.values():
            channel.outputs.reset()

    # ------------------------------------------------------------------------------------------------ stages
    def configure(self) -> float:
        """Validate, load, warm up, create cameras/worker/diagnostics; return the warm-up time in milliseconds."""
        settings = self.read_settings()
        if not settings.model_path:
            raise ConfigError("parameter model_path is empty: set it to a checkpoint (.pt) or ONNX model (.onnx)")
        low, high = settings.depth_range
        estimator = DepthEstimator(settings.model_path, device=settings.device, precision=settings.precision,
                                   mask_sky=settings.mask_sky, min_depth=low, max_depth=high,
                                   backend=settings.backend, trt_cache_dir=settings.trt_cache_dir)
        check_model_settings(settings, estimator)
        start = time.monotonic()
        config = estimator.config
        # every batch size a round can have (1..cameras), so that CUDA graphs never capture mid-stream
        for batch_size in range(1, max(1, len(settings.cameras)) + 1):
            estimator.warmup(config.input_height, config.input_width, batch_size=batch_size)
        warmup_ms = (time.monotonic() - start) * 1e3
        self._settings, self.estimator = settings, estimator
        with self._update_lock:
            self._estimator_update, self._temporal_update, self._stages_stale = None, None, False
        self.worker = BatchWorker(self._process_batch, name="depth_worker", on_error=self._on_worker_error)
        self.publisher = FramePublisher(self._still_serving, self._on_worker_error)
        mountings = settings.mountings
        if settings.odom_topic:
            self.odometry = OdometryInput(self.node, settings.odom_topic,
                                          qos_profile(settings.input_qos_reliability, ODOMETRY_QOS_DEPTH),
                                          self._throttle)
        self.channels = {
            name: CameraChannel(self.node, name, settings, self._on_frame, self._throttle, self.stats,
                                available=estimator.available_outputs,
                                stages=frame_stages(settings.road_scale(name), settings.temporal),
                                poses=self.odometry.poses(mountings[name]) if self.odometry is not None else None)
            for name in (settings.cameras or ("",))}
        self.worker.start()
        self.publisher.worker.start()
        self._diagnostics_pub = self.node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.node.create_timer(DIAGNOSTICS_PERIOD_S, self.publish_diagnostics)
        if not estimator.trained:
            self.node.get_logger().warning(f"{settings.model_path} is an UNTRAINED checkpoint: its depth and "
                                           "labels are meaningless")
        return warmup_ms

    def describe(self, warmup_ms: float) -> str:
        """One line on the loaded model and the inputs (logged when the node is ready)."""
        estimator = self.estimator
        inputs = ", ".join(self.node.resolve_topic_name(c.image_topic) for c in self.channels.values())
        return (f"model {estimator.model_name} on {estimator.device} ({estimator.precision}, {estimator.backend}; "
                f"{estimator.runner.description}), "
                f"input {inputs}, warm-up {warmup_ms:.0f} ms")

    def _set_active(self, active: bool) -> None:
        """Enter a new activation generation, serving frames or not."""
        with self._state_lock:
            self._generation += 1
            self.active = active

    def _serving_generation(self) -> int | None:
        """The current activation generation while active, else None."""
        with self._state_lock:
            return self._generation if self.active else None

    def _still_serving(self, generation: int) -> bool:
        """Whether the node is active in ``generation`` (no deactivate/activate/cleanup since)."""
        with self._state_lock:
            return self.active and self._generation == generation

    def activate(self) -> None:
        """Serve frames from now on."""
        self._set_active(True)

    def deactivate(self, timeout: float = 5.0) -> None:
        """Stop serving: waiting frames are dropped (counted), those in flight (in the network, or serialized and
        handed to the publisher) publish nothing more, even if they outlive the ``timeout`` seconds waited for
        them and the node is activated again meanwhile."""
        self._set_active(False)
        if self.worker is not None and self.publisher is not None:
            self.worker.discard_pending()
            self.publisher.worker.discard_pending()
            worker_idle = self.worker.wait_idle(timeout)
            self.publisher.worker.wait_idle(timeout)  # a frame the worker hands over now is dropped by generation
            if worker_idle:
                self._reset_stages()
            else:  # the batch in flight may still run a stage: the worker resets them before its next batch
                with self._update_lock:
                    self._stages_stale = True

    def cleanup(self) -> None:
        """Destroy what ``configure`` created and release the model and its GPU memory."""
        self._set_active(False)
        for worker in (self.worker, self.publisher and self.publisher.worker):  # joined before the publishers go
            if worker is not None:
                worker.stop()
        self.worker = self.publisher = None
        for channel in self.channels.values():
            channel.outputs.reset()  # the worker has stopped: nothing runs a stage now
            channel.destroy()
        self.channels = {}
        if self.odometry is not None:
            self.odometry.destroy()
            self.odometry = None
        if self._diagnostics_timer is not None:
            self.node.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = None
        if self._diagnostics_pub is not None:
            self.node.destroy_publisher(self._diagnostics_pub)
            self._diagnostics_pub = None
        self.estimator = None
        self._settings = None
        gc.collect()  # the runner's module and graphs: their CUDA memory returns only once unreferenced
        # also after a configure that failed once its estimator was on the GPU (self.estimator was never set)
        if torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    # ---------------------------------------------------------------------------------------------- hot path
    def _on_frame(self, channel: CameraChannel, frame: ReceivedFrame) -> None:
        """Executor thread: hand the frame to the worker, or count it dropped while inactive."""
        worker = self.worker
        if worker is None:
            return
        if self.active:
            worker.submit(channel.name, (channel, frame))
        else:
            worker.count_dropped(channel.name)

    def _on_worker_error(self, exc: BaseException) -> None:
        if self._throttle.allow(f"worker:{type(exc).__name__}", time.monotonic()):
            self.node.get_logger().error(f"frame failed: {type(exc).__name__}: {exc}")

    def _process_batch(self, batch: list[tuple[str, ChannelFrame]]) -> None:
        """Worker thread: every camera's newest frame -> ONE estimate_batch -> each camera's wanted outputs."""
        estimator, settings, worker, publisher = self.estimator, self._settings, self.worker, self.publisher
        generation = self._serving_generation()
        if estimator is None or settings is None or worker is None or publisher is None or generation is None:
            for name, _ in batch:
                if worker is not None:
                    worker.count_dropped(name)
            return
        self._apply_updates(estimator)
        prepared: list[tuple[CameraChannel, PreparedFrame]] = []
        decode_s: list[float] = []
        for _, (channel, frame) in batch:
            start = time.perf_counter()
            ready = channel.prepare(frame, settings)
            if ready is not None:
                prepared.append((channel, ready))
                decode_s.append(time.perf_counter() - start)
        if not prepared:
            return
        start = time.perf_counter()
        try:
            results = estimate_prepared(estimator, settings, prepared, self._on_worker_error)
            if estimator.device.type == "cuda":
                torch.cuda.synchronize(estimator.device)  # so that the time below is the work's, not its launch
        except Exception as exc:
            for channel, _ in prepared:
                channel.record_failure(exc)
            raise  # the worker hands it to _on_worker_error (logged, throttled) and counts the failed batch
        network_s = time.perf_counter() - start
        self._batches.append((len(prepared), network_s))
        depth_range = estimator.depth_range()
        posed = settings.temporal.temporal_filter == "auto" and self.odometry is not None
        if posed:  # once for the batch: its newest frame's odometry sample, at most odom_wait_s
            self.odometry.buffer.wait_for(max(ready.frame.stamp_ns for _, ready in prepared), settings.odom_wait_s)
        for (channel, ready), outputs, decoded_s in zip(prepared, results, decode_s):
            if outputs is None:
                continue  # rejected or failed: counted already
            if not self._still_serving(generation):
                worker.count_dropped(channel.name)  # received before a deactivate: never published as current
                continue
            try:
                pose = channel.pose_at(ready.frame.stamp_ns) if posed else None
                serialized = channel.serialize(ready, outputs, depth_range=depth_range, pose=pose,
                                               seconds={"decode": decoded_s, "network": network_s})
            except Exception as exc:  # noqa: BLE001 - one camera's failure must not cost the others their frame
                channel.record_failure(exc)
                self._on_worker_error(exc)
                continue
            publisher.submit(channel, serialized, generation)

    def _workers(self) -> list[BatchWorker[str, Any]]:
        """The worker and the publisher thread's worker, those that exist."""
        return [worker for worker in (self.worker, self.publisher and self.publisher.worker) if worker is not None]

    def dropped_of(self, name: str) -> int:
        """Frames of camera ``name`` dropped so far: replaced or discarded before the network or before
        publishing, or received or published while inactive."""
        return sum(worker.dropped_of(name) for worker in self._workers())

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame waits or is in the network or being published; True if within ``timeout`` s
        (each)."""
        return all(worker.wait_idle(timeout) for worker in self._workers())

    # -------------------------------------------------------------------------------------------- diagnostics
    def batch_figures(self) -> dict[str, str]:
        """Batch size and estimate_batch time over recent batches (``diagnostics.batch_figures``)."""
        return batch_figures(self._batches)

    def publish_diagnostics(self) -> None:
        """One status for the node (all cameras, model, memory, batches) and, with named cameras, one per camera."""
        estimator, worker, publisher = self.estimator, self.worker, self._diagnostics_pub
        if estimator is None or worker is None or publisher is None:
            return
        now = time.monotonic()
        for name, channel in self.channels.items():
            channel.stats.set_dropped(self.dropped_of(name))
        self.stats.set_dropped(sum(self.dropped_of(name) for name in self.channels))
        cameras = [(name, channel.stats.snapshot(now)) for name, channel in self.channels.items() if name]
        stages = {name: {**channel.input_diagnostics(), **channel.outputs.diagnostics(),
                         **channel.timings.values(now)}
                  for name, channel in self.channels.items()}
        extra: dict[str, Any] = {"state": "active" if self.active else "inactive", **self.batch_figures(),
                                 **stages.get("", {})}  # the unnamed camera's stages: the node's one status
        if self.odometry is not None:
            extra.update(self.odometry.diagnostics())
        publisher.publish(diagnostic_array(
            self.stats.snapshot(now), stamp=self.node.get_clock().now().to_msg(),
            name=f"{self.node.get_name()}: semantic depth", hardware_id=str(estimator.device),
            device=str(estimator.device), model_name=estimator.model_name, precision=estimator.precision,
            trained=estimator.trained, memory_mb=process_memory_mb(estimator.device), extra=extra, cameras=cameras,
            camera_values={name: values for name, values in stages.items() if name},
            runtime=estimator.runner.description))

"""End-to-end node benchmark over DDS: image published -> outputs received, in a separate node process.

The node runs as ``semantic-depth node`` in a child process (as on the vehicle) on a private ROS domain; this
process publishes Image + CameraInfo and subscribes to the outputs *serialized* (no Python deserialization of
multi-megabyte clouds on the measuring side: the header stamp is read from the CDR bytes), so the latency is
the node's plus DDS transport, the way a C++ consumer such as rviz2 would see it.

Modes: ``latency`` (closed loop, one frame in flight), and open-loop input at a fixed rate (e.g. 30 Hz) or at a
saturating rate (several times what the node serves) to measure the sustained output rate; the node drops the
frames it cannot serve (latest-frame-wins).
"""

from __future__ import annotations

import math
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..errors import ConfigError
from ..resources import find_data_file
from .node import OUTPUTS

NAMESPACE = "/semantic_depth_bench"
READY_TIMEOUT_S = 180.0
FRAME_TIMEOUT_S = 5.0
KITTI_FX_AT_1242 = 721.5377
SATURATING_FACTOR = 3.0  # saturating input rate = this times the closed-loop frame rate ...
SATURATING_MIN_HZ = 60.0  # ... and at least this
_CDR_STAMP = struct.Struct("<iI")  # after the 4-byte encapsulation header: header.stamp.sec, header.stamp.nanosec


@dataclass(frozen=True)
class NodeRun:
    """One measurement: input rate (None = closed loop, inf = saturating), outputs waited for, results.

    Latencies in milliseconds from publishing an image to receiving the last of ``outputs`` for it; rates in Hz
    over the measurement; ``completed`` frames got every output, the others were dropped by the node.
    """

    mode: str
    outputs: tuple[str, ...]
    sent: int
    completed: int
    input_rate_hz: float
    output_rate_hz: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class NodeBenchmark:
    """All runs of one node configuration plus the node process's memory (MiB) and its own latency figures."""

    height: int
    width: int
    runs: list[NodeRun]
    node_peak_rss_mb: float
    node_peak_gpu_mb: float | None
    node_latency_p50_ms: float | None


def stamp_of(serialized: bytes) -> int:
    """Frame number (``sec * 1e9 + nanosec``) from a serialized message whose first field is a Header."""
    sec, nanosec = _CDR_STAMP.unpack_from(serialized, 4)
    return sec * 1_000_000_000 + nanosec


def bench_image(height: int, width: int) -> Image:
    """An rgb8 image message of random pixels (content does not change the work done)."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image(height=height, width=width, encoding="rgb8", step=width * 3, data=pixels.tobytes())


def camera_info(height: int, width: int) -> CameraInfo:
    """KITTI-like intrinsics at ``width`` x ``height`` (fx scaled from 721.5 px at 1242 px wide)."""
    fx = KITTI_FX_AT_1242 * width / 1242
    return CameraInfo(height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[fx, 0.0, (width - 1) / 2, 0.0, fx, (height - 1) / 2, 0.0, 0.0, 1.0])


class _Harness:
    """Publisher of frames and receiver of outputs in this process (own context, executor thread)."""

    def __init__(self, domain_id: int, height: int, width: int, outputs: Sequence[str]) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("semantic_depth_bench_client", namespace=NAMESPACE, context=self.context)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.node.create_publisher(Image, "image", qos)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", qos)
        self.image = bench_image(height, width)
        self.info = camera_info(height, width)
        self.lock = threading.Condition()
        self.arrivals: dict[str, dict[int, float]] = {}
        self.subscriptions: list = []
        self.diagnostics: DiagnosticArray | None = None
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self._subscribe(outputs)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._spin = threading.Thread(target=self._spin_forever, daemon=True)
        self._spin.start()

    def _spin_forever(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - the executor ends when the context shuts down
            pass

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        self.diagnostics = msg

    def _subscribe(self, outputs: Sequence[str]) -> None:
        """Receive ``outputs`` serialized; remember when each frame's message arrived (perf_counter seconds)."""
        for key in outputs:
            topic, msg_type = OUTPUTS[key]

            def arrived(data: bytes, key: str = key) -> None:
                now = time.perf_counter()
                with self.lock:
                    self.arrivals.setdefault(key, {})[stamp_of(data)] = now
                    self.lock.notify_all()

            qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
            self.subscriptions.append(self.node.create_subscription(msg_type, topic, arrived, qos, raw=True))

    def publish(self, frame: int) -> float:
        """Publish camera_info and image with stamp ``frame`` (ns); return the publish time (perf_counter)."""
        self.image.header.stamp.sec, self.image.header.stamp.nanosec = divmod(frame, 1_000_000_000)
        self.info.header.stamp = self.image.header.stamp
        self.info_pub.publish(self.info)
        sent = time.perf_counter()
        self.image_pub.publish(self.image)
        return sent

    def done_at(self, frame: int, outputs: Sequence[str]) -> float | None:
        """When the last of ``outputs`` for ``frame`` arrived, or None if one is missing (call with the lock)."""
        times = [self.arrivals.get(key, {}).get(frame) for key in outputs]
        return None if any(t is None for t in times) else max(times)

    def wait_connected(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.image_pub.get_subscription_count() == 0 or any(
                s.get_publisher_count() == 0 for s in self.subscriptions):
            if time.monotonic() > deadline:
                raise ConfigError("benchmark: the node process never connected to the benchmark topics")
            time.sleep(0.05)

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    if not samples:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.asarray(samples), [50.0, 95.0])
    return float(p50), float(p95)


def _latency_run(harness: _Harness, outputs: tuple[str, ...], duration_s: float, first_frame: int) -> NodeRun:
    """Closed loop: publish, wait for every output of that frame, repeat for ``duration_s``."""
    samples: list[float] = []
    frame = first_frame
    sent = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration_s:
        frame += 1
        published = harness.publish(frame)
        sent += 1
        with harness.lock:
            harness.lock.wait_for(lambda: harness.done_at(frame, outputs) is not None, timeout=FRAME_TIMEOUT_S)
            done = harness.done_at(frame, outputs)
        if done is not None:
            samples.append((done - published) * 1e3)
    elapsed = time.perf_counter() - start
    p50, p95 = _percentiles(samples)
    return NodeRun("latency (one frame in flight)", outputs, sent, len(samples), sent / elapsed,
                   len(samples) / elapsed, p50, p95)


def _rate_run(harness: _Harness, outputs: tuple[str, ...], rate_hz: float, duration_s: float,
              first_frame: int, label: str = "") -> NodeRun:
    """Open loop at ``rate_hz`` for ``duration_s``; then wait briefly for the frames still in flight."""
    published: dict[int, float] = {}
    period = 1.0 / rate_hz
    frame = first_frame
    start = time.perf_counter()
    next_time = start
    while True:
        now = time.perf_counter()
        if now - start >= duration_s:
            break
        if now < next_time:
            time.sleep(next_time - now)
        frame += 1
        published[frame] = harness.publish(frame)
        next_time += period
    elapsed = time.perf_counter() - start
    time.sleep(min(2.0, FRAME_TIMEOUT_S))  # the last frames in flight
    with harness.lock:
        done = {f: harness.done_at(f, outputs) for f in published}
    samples = [(t - published[f]) * 1e3 for f, t in done.items() if t is not None]
    p50, p95 = _percentiles(samples)
    mode = f"{label} input ({rate_hz:.0f} Hz)" if label else f"{rate_hz:g} Hz input"
    return NodeRun(mode, outputs, len(published), len(samples), len(published) / elapsed, len(samples) / elapsed,
                   p50, p95)


# Fast DDS 2.x (ROS 2 Jazzy's rmw_fastrtps) loads the XML profile named by the first; a user who set either keeps theirs
DDS_PROFILE_ENV = "FASTRTPS_DEFAULT_PROFILES_FILE"
USER_DDS_PROFILE_ENVS = (DDS_PROFILE_ENV, "FASTDDS_DEFAULT_PROFILES_FILE")


def dds_profile_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``{DDS_PROFILE_ENV: installed config/fastdds.xml}``, or {} when ``environ`` already names a profile.

    The package's profile (a shared-memory segment that holds a whole frame of outputs, a 100 ms heartbeat) avoids
    the ~3 s per-frame stalls Fast DDS defaults give a subscriber to every multi-megabyte output.
    """
    if any(name in environ for name in USER_DDS_PROFILE_ENVS):
        return {}
    profile = find_data_file("config", "fastdds.xml")
    return {} if profile is None else {DDS_PROFILE_ENV: str(profile)}


def start_node_process(checkpoint: Path, *, device: str, precision: str, backend: str, domain_id: int,
                       num_threads: int | None, input_reliability: str) -> subprocess.Popen:
    """``semantic-depth node`` on ``checkpoint`` in a child process on ROS domain ``domain_id``, under NAMESPACE.

    The child gets the package's Fast DDS profile unless the environment already names one.
    """
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id))
    env.update(dds_profile_environment(os.environ))
    if num_threads is not None:
        env["OMP_NUM_THREADS"] = str(num_threads)  # torch's CPU thread count in the node process
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    command = [sys.executable, "-m", "semantic_depth_ros.cli", "node", "--model-path", str(checkpoint),
               "--device", device, "--precision", precision, "--backend", backend,
               "--ros-args", "-r", f"__ns:={NAMESPACE}", "-p", f"input_qos_reliability:={input_reliability}"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_node_ready(process: subprocess.Popen) -> list[str]:
    """Block until the node logs ``ready``; ConfigError with its last lines if it exits or times out."""
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        for line in process.stderr:
            lines.append(line.rstrip())
            if "ready: model" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not ready.wait(0.1):
        if process.poll() is not None or time.monotonic() > deadline:
            detail = lines[-1] if lines else "no output"
            raise ConfigError(f"benchmark: the node process did not start ({detail})")
    return lines


def stop_node_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGINT (the node's clean shutdown), then kill if it has not exited within ``timeout`` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _peak_rss_mb(pid: int) -> float:
    """Peak resident memory (MiB) of process ``pid`` from /proc (Linux); NaN elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _diagnostic(harness: _Harness, key: str) -> float | None:
    message = harness.diagnostics
    if message is None:
        return None
    for status in message.status:
        if status.name.startswith("depth_node"):
            for value in status.values:
                if value.key == key:
                    return float(value.value)
    return None


def run_node_benchmark(checkpoint: Path, *, height: int, width: int, device: str = "auto",
                       precision: str = "fp32", backend: str = "eager",
                       output_sets: Sequence[tuple[str, ...]] = (("depth", "points"),),
                       rates_hz: Sequence[float] = (30.0, float("inf")), duration_s: float = 5.0,
                       domain_id: int | None = None, num_threads: int | None = None,
                       input_reliability: str = "reliable") -> NodeBenchmark:
    """Start the node on ``checkpoint`` in a child process and measure every output set in every mode.

    ``rates_hz``: open-loop input rates; ``inf`` means saturating: ``SATURATING_FACTOR`` times the closed-loop
    frame rate (at least ``SATURATING_MIN_HZ``), far above what the node serves. A closed-loop latency run always
    comes first.
    ``domain_id``: ROS domain of the benchmark graph (default: a random one, so no real robot sees it).
    ``num_threads``: torch CPU threads of the node process (default: torch's own choice).
    ``input_reliability``: the node's input QoS; ``reliable`` by default here so that a large image lost by the
    transport (best effort over UDP fragments on a loaded machine) does not count as node latency.
    """
    if duration_s <= 0:
        raise ConfigError(f"benchmark duration {duration_s} s must be positive")
    unknown = sorted({key for outputs in output_sets for key in outputs} - set(OUTPUTS))
    if unknown:
        raise ConfigError(f"unknown node output(s) {', '.join(unknown)}: choose from {', '.join(OUTPUTS)}")
    domain = random.SystemRandom().randint(1, 100) if domain_id is None else domain_id
    process = start_node_process(checkpoint, device=device, precision=precision, backend=backend, domain_id=domain,
                          num_threads=num_threads, input_reliability=input_reliability)
    harness: _Harness | None = None
    runs: list[NodeRun] = []
    try:
        wait_node_ready(process)
        frame = 0
        for outputs in output_sets:  # a fresh client per set: the node sees only that set's subscribers
            if harness is not None:
                harness.close()
            harness = _Harness(domain, height, width, outputs)
            harness.wait_connected(timeout=30.0)
            _latency_run(harness, outputs, min(1.0, duration_s), frame)  # warm the transport up
            frame += 1_000_000
            closed_loop = _latency_run(harness, outputs, duration_s, frame)
            runs.append(closed_loop)
            for rate in rates_hz:
                frame += 1_000_000
                if math.isinf(rate):  # well above what the node serves, without burning a core on publishing
                    rate = max(SATURATING_MIN_HZ, SATURATING_FACTOR * closed_loop.output_rate_hz)
                    runs.append(_rate_run(harness, outputs, rate, duration_s, frame, label="saturating"))
                else:
                    runs.append(_rate_run(harness, outputs, rate, duration_s, frame))
        time.sleep(1.2)  # one more /diagnostics message
        node_latency = _diagnostic(harness, "latency_p50_ms") if harness else None
        gpu = _diagnostic(harness, "peak_gpu_mb") if harness else None
        rss = _peak_rss_mb(process.pid)
    finally:
        if harness is not None:
            harness.close()
        stop_node_process(process)
    return NodeBenchmark(height=height, width=width, runs=runs, node_peak_rss_mb=rss, node_peak_gpu_mb=gpu,
                         node_latency_p50_ms=node_latency)

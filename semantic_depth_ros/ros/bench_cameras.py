"""Multi-camera node benchmark over DDS: one node batching N cameras against N single-camera nodes.

Both configurations serve the same topics (``<ns>/cam<i>/image`` in, ``<ns>/cam<i>/<output>`` out) to the same
client, which publishes a frame to every camera at ``rate_hz`` (open loop) for ``duration_s`` and measures, per
camera, the sustained output rate and the image-published -> last-output-received latency. Memory is the node
processes' peak resident set (``VmHWM``, summed over the N processes) and, on CUDA, their peak GPU memory as each
node reports it on ``/diagnostics`` (summed too).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray

from ..errors import ConfigError
from .bench_node import FRAME_TIMEOUT_S, NAMESPACE, bench_frame, percentiles
from .client import DepthClient
from .camera_channel import OUTPUT_MESSAGES
from .node_process import NodeProcess, random_domain_id


@dataclass(frozen=True)
class CameraRun:
    """One camera in one configuration: frames sent and served, output rate (Hz), latency p50/p95 (ms)."""

    camera: str
    sent: int
    completed: int
    output_rate_hz: float
    p50_ms: float
    p95_ms: float


@dataclass(frozen=True)
class CamerasConfiguration:
    """A configuration ("one batched node" or "N single-camera nodes"): per-camera runs and memory (MiB)."""

    name: str
    processes: int
    cameras: list[CameraRun]
    peak_rss_mb: float
    peak_gpu_mb: float | None


def peak_rss_of(pid: int) -> float:
    """Peak resident set (MiB) of a running process (Linux ``/proc/<pid>/status`` VmHWM); NaN if unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _camera_namespaces(count: int) -> list[str]:
    return [f"{NAMESPACE}/cam{index}" for index in range(count)]


def _measure(client: DepthClient, outputs: tuple[str, ...], height: int, width: int, rate_hz: float,
             duration_s: float, first_frame: int) -> list[CameraRun]:
    """Publish a frame to every camera at ``rate_hz`` for ``duration_s``; per-camera results."""
    image, info = bench_frame(height, width)
    published: dict[str, dict[int, float]] = {camera: {} for camera in client.cameras}
    period = 1.0 / rate_hz
    frame = first_frame
    start = time.perf_counter()
    next_time = start
    while time.perf_counter() - start < duration_s:
        now = time.perf_counter()
        if now < next_time:
            time.sleep(next_time - now)
        frame += 1
        for camera in client.cameras:
            published[camera][frame] = client.publish(frame, image, info, camera=camera)
        next_time += period
    elapsed = time.perf_counter() - start
    time.sleep(min(2.0, FRAME_TIMEOUT_S))  # the frames still in flight
    runs = []
    for camera, sent in published.items():
        latencies = [(done - at) * 1e3 for f, at in sent.items()
                     if (done := client.done_at(f, outputs, camera=camera)) is not None]
        p50, p95 = percentiles(latencies)
        runs.append(CameraRun(camera.rsplit("/", 1)[-1], len(sent), len(latencies), len(latencies) / elapsed,
                              p50, p95))
    return runs


def _gpu_peak(statuses: dict[str, dict[str, str]]) -> float | None:
    values = [float(v["peak_gpu_mb"]) for v in statuses.values() if "peak_gpu_mb" in v]
    return sum(values) if values else None


def _run_configuration(name: str, nodes: list[NodeProcess], domain: int, cameras: int, outputs: tuple[str, ...],
                       height: int, width: int, rate_hz: float, duration_s: float) -> CamerasConfiguration:
    statuses: dict[str, dict[str, str]] = {}

    def on_diagnostics(message: DiagnosticArray) -> None:
        for status in message.status:
            if status.name.endswith(": semantic depth"):  # one node-level status per node process
                statuses[status.name] = {kv.key: kv.value for kv in status.values}

    with ExitStack() as stack:
        for node in nodes:
            node.start()
            stack.callback(node.stop)
        for node in nodes:
            node.wait_ready()
        with DepthClient(domain_id=domain, cameras=_camera_namespaces(cameras), outputs=outputs,
                         name="semantic_depth_cameras_bench_client") as client:
            client.node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
            client.wait_connected(timeout=60.0)
            _measure(client, outputs, height, width, rate_hz, min(1.0, duration_s), 0)  # warm the transport up
            runs = _measure(client, outputs, height, width, rate_hz, duration_s, 1_000_000)
            time.sleep(1.2)  # one more /diagnostics message from every node
        rss = sum(peak_rss_of(node.pid) for node in nodes)
    return CamerasConfiguration(name, len(nodes), runs, rss, _gpu_peak(statuses))


def run_cameras_benchmark(checkpoint: Path, *, cameras: int, height: int, width: int, rate_hz: float,
                          outputs: tuple[str, ...] = tuple(OUTPUT_MESSAGES), duration_s: float = 5.0,
                          device: str = "auto", precision: str = "fp32", backend: str = "eager",
                          domain_id: int | None = None, num_threads: int | None = None,
                          input_reliability: str = "reliable") -> list[CamerasConfiguration]:
    """One node with ``cameras`` cameras (one batch per round), then ``cameras`` single-camera nodes, each camera
    fed ``height`` x ``width`` frames at ``rate_hz``; ``outputs`` subscribed on every camera."""
    if cameras < 1 or duration_s <= 0 or not rate_hz > 0:
        raise ConfigError(f"--cameras {cameras}, duration {duration_s} s, rate {rate_hz} Hz: need at least one "
                          "camera, a positive duration and a positive rate")
    domain = random_domain_id() if domain_id is None else domain_id
    common = {"checkpoint": checkpoint, "domain_id": domain, "device": device, "precision": precision,
              "backend": backend, "num_threads": num_threads}
    names = [f"cam{index}" for index in range(cameras)]
    batched = [NodeProcess(namespace=NAMESPACE, parameters={"input_qos_reliability": input_reliability,
                                                            "cameras": f"[{','.join(names)}]"}, **common)]
    separate = [NodeProcess(namespace=namespace, parameters={"input_qos_reliability": input_reliability},
                            ros_args=["-r", f"__node:=depth_node_{name}"], **common)
                for name, namespace in zip(names, _camera_namespaces(cameras))]
    return [_run_configuration(label, nodes, domain, cameras, outputs, height, width, rate_hz, duration_s)
            for label, nodes in ((f"one node, {cameras} cameras batched", batched),
                                 (f"{cameras} single-camera nodes", separate))]


def configuration_rows(configurations: Sequence[CamerasConfiguration]) -> list[str]:
    """Printable table lines: one per camera and configuration, then each configuration's memory."""
    lines = [f"  {'configuration':<30} {'camera':<7} {'sent':>6} {'served':>6} {'out Hz':>7} {'p50 ms':>8} "
             f"{'p95 ms':>8}"]
    for configuration in configurations:
        for run in configuration.cameras:
            lines.append(f"  {configuration.name:<30} {run.camera:<7} {run.sent:>6} {run.completed:>6} "
                         f"{run.output_rate_hz:>7.1f} {run.p50_ms:>8.1f} {run.p95_ms:>8.1f}")
    for configuration in configurations:
        gpu = configuration.peak_gpu_mb
        lines.append(f"  {configuration.name}: {configuration.processes} process(es), peak RSS "
                     f"{configuration.peak_rss_mb:.0f} MiB" + (f", peak GPU memory {gpu:.0f} MiB" if gpu else ""))
    return lines

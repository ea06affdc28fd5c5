"""End-to-end node benchmark over DDS: image published -> outputs received, in a separate node process.

The node runs as ``semantic-depth node`` in a child process (as on the vehicle) on a private ROS domain; this
process publishes Image + CameraInfo and subscribes to the outputs *serialized* (rclpy ``raw=True``: no Python
deserialization of multi-megabyte clouds on the measuring side, the header stamp is read from the CDR bytes), so
the latency is the node's plus DDS transport, the way a C++ consumer such as rviz2 would see it. What a Python
consumer would pay on top (``deserialize_message`` of one frame's outputs) is measured separately, and the node's
own ``/diagnostics`` give the split of its time (decode, network, stages, outputs, publish).

Modes: ``latency`` (closed loop, one frame in flight), and open-loop input at a fixed rate (e.g. 30 Hz) or at a
saturating rate (several times what the node serves) to measure the sustained output rate; the node drops the
frames it cannot serve (latest-frame-wins).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from ..cameras import kitti_fx
from ..errors import ConfigError, SemanticDepthError
from ..geometry.intrinsics import Intrinsics
from ..inference.benchmark import process_peak_rss_mb
from ..messages import camera_info_fields, image_fields
from .client import DepthClient, Received
from .messages import camera_info_msg, image_msg
from .camera_channel import OUTPUT_MESSAGES
from .node_process import NodeProcess, random_domain_id

NAMESPACE = "/semantic_depth_bench"
FRAME_TIMEOUT_S = 5.0
DIAGNOSTICS_WAIT_S = 1.2  # the node publishes /diagnostics every second: one sent after the run
SPLIT_SUFFIX = "_ms_p50"
SATURATING_FACTOR = 3.0  # saturating input rate = this times the closed-loop frame rate ...
SATURATING_MIN_HZ = 60.0  # ... and at least this


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
    split_ms: dict[str, float] | None = None  # closed loop: the node's p50 per part of the frame path
    published_mb_per_s: float | None = None  # closed loop: what the node published (1e6 bytes a second)
    deserialize_ms: float | None = None  # closed loop: rclpy deserialize_message of one frame's outputs


@dataclass(frozen=True)
class NodeBenchmark:
    """All runs of one node configuration plus the node process's memory (MiB) and its own latency figures."""

    height: int
    width: int
    runs: list[NodeRun]
    node_peak_rss_mb: float
    node_peak_gpu_mb: float | None
    node_latency_p50_ms: float | None


def bench_frame(height: int, width: int) -> tuple[Image, CameraInfo]:
    """An rgb8 image of random pixels (content does not change the work done) and its KITTI-like camera_info."""
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    fx = kitti_fx(width)
    intrinsics = Intrinsics(fx=fx, fy=fx, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)
    return image_msg(Header(), image_fields(pixels, "rgb8")), camera_info_msg(Header(), camera_info_fields(intrinsics))


class _Sender:
    """The benchmark's client with its one frame: ``publish(frame)`` sends it with stamp ``frame`` (ns)."""

    def __init__(self, client: DepthClient, height: int, width: int) -> None:
        self.client = client
        self.image, self.info = bench_frame(height, width)

    def publish(self, frame: int) -> float:
        return self.client.publish(frame, self.image, self.info)


def percentiles(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) of ``samples``; NaN for none."""
    if not samples:
        return float("nan"), float("nan")
    p50, p95 = np.percentile(np.asarray(samples), [50.0, 95.0])
    return float(p50), float(p95)


def _latency_run(sender: _Sender, outputs: tuple[str, ...], duration_s: float, first_frame: int,
                 split: bool = True) -> NodeRun:
    """Closed loop: publish, wait for every output of that frame, repeat for ``duration_s``; then the node's split
    of its time (``/diagnostics``) and what deserializing the last frame's outputs costs in Python."""
    samples: list[float] = []
    frame = first_frame
    sent = 0
    last: dict[str, Received] = {}
    start = time.perf_counter()
    while time.perf_counter() - start < duration_s:
        frame += 1
        published = sender.publish(frame)
        sent += 1
        done = sender.client.wait(frame, outputs, timeout=FRAME_TIMEOUT_S)
        received = sender.client.take(frame)  # not kept: a frame of every output is 14 MB at 375x1242
        if done is not None:
            samples.append((done - published) * 1e3)
            last = received
    elapsed = time.perf_counter() - start
    p50, p95 = percentiles(samples)
    run = NodeRun("latency (one frame in flight)", outputs, sent, len(samples), sent / elapsed,
                  len(samples) / elapsed, p50, p95)
    if not split:
        return run
    parts, rate = _node_split(sender.client)
    return dataclasses.replace(run, split_ms=parts, published_mb_per_s=rate,
                               deserialize_ms=_deserialize_ms(last) if last else None)


def _deserialize_ms(received: dict[str, Received], repeats: int = 3) -> float:
    """Milliseconds rclpy's ``deserialize_message`` takes for one frame's outputs (the best of ``repeats``)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for key, message in received.items():
            DepthClient.message(key, message)
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def _node_split(client: DepthClient) -> tuple[dict[str, float], float | None]:
    """The node's p50 per part of the frame path (``<part>_ms_p50`` of its ``/diagnostics``, over the window
    just measured) and its published MB a second; the message sent after the run is waited for."""
    time.sleep(DIAGNOSTICS_WAIT_S)
    try:
        values = client.node_diagnostics(timeout=FRAME_TIMEOUT_S)
    except SemanticDepthError:
        return {}, None
    split = {key[:-len(SPLIT_SUFFIX)]: float(value) for key, value in values.items()
             if key.endswith(SPLIT_SUFFIX) and key != "batch" + SPLIT_SUFFIX}
    rate = values.get("published_mb_per_s")
    return split, None if rate is None else float(rate)


def _rate_run(sender: _Sender, outputs: tuple[str, ...], rate_hz: float, duration_s: float,
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
        published[frame] = sender.publish(frame)
        next_time += period
    elapsed = time.perf_counter() - start
    time.sleep(min(2.0, FRAME_TIMEOUT_S))  # the last frames in flight
    done = {f: sender.client.done_at(f, outputs) for f in published}
    for f in published:
        sender.client.take(f)  # free what arrived
    samples = [(t - published[f]) * 1e3 for f, t in done.items() if t is not None]
    p50, p95 = percentiles(samples)
    mode = f"{label} input ({rate_hz:.0f} Hz)" if label else f"{rate_hz:g} Hz input"
    return NodeRun(mode, outputs, len(published), len(samples), len(published) / elapsed, len(samples) / elapsed,
                   p50, p95)


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
    unknown = sorted({key for outputs in output_sets for key in outputs} - set(OUTPUT_MESSAGES))
    if unknown:
        raise ConfigError(f"unknown node output(s) {', '.join(unknown)}: choose from {', '.join(OUTPUT_MESSAGES)}")
    domain = random_domain_id() if domain_id is None else domain_id
    node = NodeProcess(checkpoint, domain_id=domain, namespace=NAMESPACE, device=device, precision=precision,
                       backend=backend, num_threads=num_threads,
                       parameters={"input_qos_reliability": input_reliability})
    runs: list[NodeRun] = []
    node_latency = gpu = None
    with node:
        frame = 0
        # a fresh client per set: the node sees only that set's subscribers
        for index, outputs in enumerate(output_sets):
            with DepthClient(domain_id=domain, cameras=(NAMESPACE,), outputs=outputs, diagnostics=True,
                             name="semantic_depth_bench_client") as client:
                client.wait_connected(timeout=30.0)
                sender = _Sender(client, height, width)
                _latency_run(sender, outputs, min(1.0, duration_s), frame, split=False)  # warm the transport up
                frame += 1_000_000
                closed_loop = _latency_run(sender, outputs, duration_s, frame)
                runs.append(closed_loop)
                for rate in rates_hz:
                    frame += 1_000_000
                    if math.isinf(rate):  # well above what the node serves, without burning a core on publishing
                        rate = max(SATURATING_MIN_HZ, SATURATING_FACTOR * closed_loop.output_rate_hz)
                        runs.append(_rate_run(sender, outputs, rate, duration_s, frame, label="saturating"))
                    else:
                        runs.append(_rate_run(sender, outputs, rate, duration_s, frame))
                if index == len(output_sets) - 1:
                    time.sleep(DIAGNOSTICS_WAIT_S)  # one more /diagnostics message
                    try:
                        values = client.node_diagnostics(timeout=FRAME_TIMEOUT_S)
                    except SemanticDepthError:
                        values = {}
                    node_latency = float(values["latency_p50_ms"]) if "latency_p50_ms" in values else None
                    gpu = float(values["peak_gpu_mb"]) if "peak_gpu_mb" in values else None
    rss = process_peak_rss_mb(children=True)  # the node process has exited and been waited for
    return NodeBenchmark(height=height, width=width, runs=runs, node_peak_rss_mb=rss, node_peak_gpu_mb=gpu,
                         node_latency_p50_ms=node_latency)

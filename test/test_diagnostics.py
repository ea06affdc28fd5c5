"""Node health figures (rates, latency percentiles, counters), log throttling and the DiagnosticArray."""

from __future__ import annotations

import math

import pytest
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus

from semantic_depth_ros.pipeline.stages import FRAME_PATH_PARTS
from semantic_depth_ros.ros.diagnostics import LogThrottle, NodeStats, StageTimes, diagnostic_array, status_level

pytestmark = pytest.mark.ros  # the DiagnosticArray messages


def test_rates_latencies_and_counters() -> None:
    stats = NodeStats(window_s=5.0)
    for i in range(20):  # 10 Hz input for 2 s, every other frame published 40 ms (even i) or 60 ms later
        t = 100.0 + i * 0.1
        stats.record_input(t)
        if i % 2 == 0:
            stats.record_output(t, t + (0.040 if i % 4 == 0 else 0.060))
    stats.record_rejected()
    stats.set_dropped(3)
    snap = stats.snapshot(102.0)
    assert math.isclose(snap.window_s, 2.0)
    assert math.isclose(snap.input_rate_hz, 10.0)
    assert math.isclose(snap.output_rate_hz, 5.0)
    assert math.isclose(snap.latency_p50_ms, 50.0)  # five 40 ms and five 60 ms samples
    assert math.isclose(snap.latency_p95_ms, 60.0)
    assert (snap.frames_received, snap.frames_published, snap.frames_dropped, snap.messages_rejected) == (20, 10, 3, 1)
    later = stats.snapshot(110.0)  # nothing in the last 5 s
    assert (later.input_rate_hz, later.output_rate_hz, later.window_s) == (0.0, 0.0, 5.0)


def test_latency_is_nan_before_the_first_output() -> None:
    snap = NodeStats().snapshot(1.0)
    assert math.isnan(snap.latency_p50_ms) and math.isnan(snap.latency_p95_ms)


def test_log_throttle_is_per_key() -> None:
    throttle = LogThrottle(period_s=5.0)
    assert throttle.allow("image.encoding", 0.0)
    assert not throttle.allow("image.encoding", 4.9)
    assert throttle.allow("image.step", 4.9)
    assert throttle.allow("image.encoding", 5.0)


def test_diagnostic_array_fields() -> None:
    stats = NodeStats()
    stats.record_input(1.0)
    stats.record_output(1.0, 1.02)
    array = diagnostic_array(stats.snapshot(2.0), stamp=Time(sec=7), name="depth_node: semantic depth",
                             hardware_id="cpu", device="cpu", model_name="tiny", precision="fp32", trained=False,
                             runtime="onnxruntime CPUExecutionProvider (fp32)")
    assert array.header.stamp.sec == 7
    (status,) = array.status
    assert (status.name, status.hardware_id, status.level) == ("depth_node: semantic depth", "cpu", DiagnosticStatus.OK)
    values = {kv.key: kv.value for kv in status.values}
    assert values["input_rate_hz"] == "1.00" and values["output_rate_hz"] == "1.00"
    assert values["latency_p50_ms"] == "20.00" and values["latency_p95_ms"] == "20.00"
    assert (values["frames_dropped"], values["device"], values["model"], values["trained"]) == ("0", "cpu", "tiny",
                                                                                                "false")
    assert values["runtime"] == "onnxruntime CPUExecutionProvider (fp32)"


def test_status_warns_when_frames_arrive_but_nothing_is_published() -> None:
    stats = NodeStats()
    stats.record_input(1.0)
    array = diagnostic_array(stats.snapshot(1.5), stamp=Time(), name="n", hardware_id="cpu", device="cpu",
                             model_name="m", precision="fp32", trained=True)
    assert array.status[0].level == DiagnosticStatus.WARN


def test_failed_frames_are_counted_and_make_the_status_an_error_naming_the_failure() -> None:
    stats = NodeStats(window_s=5.0)
    for t in (1.0, 1.1):
        stats.record_input(t)
        stats.record_failed(t + 0.01, "RuntimeError")
    snap = stats.snapshot(1.5)
    assert (snap.frames_failed, snap.failures_in_window, snap.last_failure) == (2, 2, "RuntimeError")
    array = diagnostic_array(snap, stamp=Time(), name="n", hardware_id="cuda:0", device="cuda:0",
                             model_name="m", precision="fp16", trained=True, cameras=[("front", snap)])
    for status in array.status:  # the node's and the camera's
        assert status.level == DiagnosticStatus.ERROR
        assert "RuntimeError" in status.message
        values = {kv.key: kv.value for kv in status.values}
        assert (values["frames_failed"], values["last_failure"]) == ("2", "RuntimeError")
    stats.record_input(2.0)  # recovered: published again, the failures are still in the window
    stats.record_output(2.0, 2.05)
    level, message = status_level(stats.snapshot(2.1))
    assert level == DiagnosticStatus.OK and message.startswith("publishing")
    later = stats.snapshot(20.0)  # the failures left the window; the counter stays
    assert (later.frames_failed, later.failures_in_window) == (2, 0)
    assert status_level(later)[0] == DiagnosticStatus.OK


def test_diagnostic_array_adds_extra_values_and_one_status_per_camera() -> None:
    front, left = NodeStats(), NodeStats()
    front.record_input(1.0)
    front.record_output(1.0, 1.05)
    left.record_input(1.0)  # received, nothing published: this camera warns, the other does not
    array = diagnostic_array(front.snapshot(2.0), stamp=Time(), name="n: semantic depth", hardware_id="cpu",
                             device="cpu", model_name="m", precision="fp32", trained=True,
                             extra={"batch_size": "2"}, cameras=[("front", front.snapshot(2.0)),
                                                                 ("left", left.snapshot(2.0))],
                             camera_values={"left": {"fusion_frames": "3"}})  # the left camera's stages
    node, camera_front, camera_left = array.status
    assert [s.name for s in array.status] == ["n: semantic depth", "n: semantic depth front", "n: semantic depth left"]
    assert {kv.key: kv.value for kv in node.values}["batch_size"] == "2"
    front_values = {kv.key: kv.value for kv in camera_front.values}
    assert front_values["camera"] == "front" and front_values["latency_p50_ms"] == "50.00"
    assert "fusion_frames" not in front_values
    assert {kv.key: kv.value for kv in camera_left.values}["fusion_frames"] == "3"
    assert (camera_front.level, camera_left.level) == (DiagnosticStatus.OK, DiagnosticStatus.WARN)


def test_batch_figures_while_the_worker_appends() -> None:
    """The diagnostics timer (executor thread) reads the batch history while the worker thread appends to it: no
    'deque mutated during iteration' may escape into the executor and stop the node."""
    import sys
    import threading
    import time
    from collections import deque
    from types import SimpleNamespace

    from semantic_depth_ros.ros.node_core import BATCH_SAMPLES, DepthNodeCore

    core = SimpleNamespace(_batches=deque([(2, 0.01)] * BATCH_SAMPLES, maxlen=BATCH_SAMPLES))
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            core._batches.append((3, 0.02))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so an unprotected read is caught
    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            figures = DepthNodeCore.batch_figures(core)
            assert figures["batch_size"] in ("2", "3")
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)


def test_stage_times_report_each_part_and_the_published_bytes_over_the_window() -> None:
    times = StageTimes(window_s=5.0)
    values = times.values(now=0.0)
    for part in FRAME_PATH_PARTS:  # always there, NaN before the first frame
        assert math.isnan(float(values[f"{part}_ms_p50"])) and math.isnan(float(values[f"{part}_ms_p95"]))
    assert "temporal_ms_p50" not in values and values["published_mb_per_s"] == "0.00"
    for i in range(10):
        times.record({"decode": 0.001, "network": 0.010 + 0.001 * i, "temporal": 0.004, "outputs": 0.002,
                      "publish": 0.003}, now=1.0 + 0.1 * i)
        times.record_published(2_000_000, now=1.0 + 0.1 * i)
    times.record_publish_failure()
    values = times.values(now=2.0)
    assert values["decode_ms_p50"] == "1.00" and values["publish_ms_p95"] == "3.00"
    assert values["network_ms_p50"] == "14.50" and values["network_ms_p95"] == "18.55"
    assert values["temporal_ms_p50"] == "4.00"  # a stage while it runs
    assert values["published_mb_per_s"] == "20.00"  # 20 MB over the 1 s since the first publish
    assert values["publish_failures"] == "1"
    later = times.values(now=7.0)  # the window has passed: the stage is gone, the frame path's parts are NaN
    assert "temporal_ms_p50" not in later and later["network_ms_p50"] == "nan"
    assert later["published_mb_per_s"] == "0.00" and later["publish_failures"] == "1"

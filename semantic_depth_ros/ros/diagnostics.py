"""Node health: input/output rates, receipt-to-publish latency percentiles, drops, failures, the time of every
stage of the frame path -> ``diagnostic_msgs``.

``NodeStats`` and ``StageTimes`` are plain Python (thread-safe, time passed in by the caller, so they are
unit-testable); only ``diagnostic_array`` builds the ROS message (one status for the node, one per named camera).
``LogThrottle`` limits repeated error logs per key (e.g. per field).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from ..pipeline.stages import FRAME_PATH_PARTS

RATE_WINDOW_S = 5.0
LATENCY_SAMPLES = 300


@dataclass(frozen=True)
class StatsSnapshot:
    """Health figures at one instant. Rates in Hz over the last ``window_s`` seconds; latencies in milliseconds
    (NaN before the first output); counters since start. ``failures_in_window``: frames that failed (the network
    raised) in the last ``window_s`` seconds; ``last_failure``: the exception type of the newest failure ("" if
    none)."""

    input_rate_hz: float
    output_rate_hz: float
    latency_p50_ms: float
    latency_p95_ms: float
    frames_received: int
    frames_published: int
    frames_dropped: int
    messages_rejected: int
    window_s: float
    frames_failed: int = 0
    failures_in_window: int = 0
    last_failure: str = ""


class NodeStats:
    """Counts frames in, frames out, drops, rejects and failures; keeps recent event times and latencies (bounded
    memory).

    Times are seconds on any monotonic clock, supplied by the caller.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S, latency_samples: int = LATENCY_SAMPLES) -> None:
        self._window_s = window_s
        self._lock = threading.Lock()
        self._inputs: deque[float] = deque()
        self._outputs: deque[float] = deque()
        self._latencies_s: deque[float] = deque(maxlen=latency_samples)
        self._failures: deque[float] = deque()
        self.last_failure = ""
        self._start: float | None = None
        self.frames_received = 0
        self.frames_published = 0
        self.messages_rejected = 0
        self.frames_dropped = 0
        self.frames_failed = 0

    def _trim(self, events: deque[float], now: float) -> None:
        while events and events[0] <= now - self._window_s:
            events.popleft()

    def record_input(self, now: float) -> None:
        """A frame arrived at ``now``."""
        with self._lock:
            if self._start is None:
                self._start = now
            self.frames_received += 1
            self._inputs.append(now)
            self._trim(self._inputs, now)

    def record_output(self, received: float, published: float) -> None:
        """The outputs of a frame received at ``received`` were published at ``published``."""
        with self._lock:
            self.frames_published += 1
            self._outputs.append(published)
            self._trim(self._outputs, published)
            self._latencies_s.append(published - received)

    def record_rejected(self) -> None:
        """A message was rejected as invalid."""
        with self._lock:
            self.messages_rejected += 1

    def record_failed(self, now: float, error: str) -> None:
        """A frame failed at ``now``: the network raised ``error`` (the exception's type name), not bad input."""
        with self._lock:
            self.frames_failed += 1
            self.last_failure = error
            self._failures.append(now)
            self._trim(self._failures, now)

    def set_dropped(self, dropped: int) -> None:
        """Total frames dropped so far (the hand-off counts them)."""
        with self._lock:
            self.frames_dropped = dropped

    def snapshot(self, now: float) -> StatsSnapshot:
        """Rates over the last window (or since the first input when shorter) and latency p50/p95."""
        with self._lock:
            self._trim(self._inputs, now)
            self._trim(self._outputs, now)
            self._trim(self._failures, now)
            span = self._window_s if self._start is None else min(self._window_s, max(now - self._start, 1e-9))
            if self._latencies_s:
                p50, p95 = np.percentile(np.fromiter(self._latencies_s, dtype=np.float64), [50.0, 95.0]) * 1e3
            else:
                p50 = p95 = float("nan")
            return StatsSnapshot(
                input_rate_hz=len(self._inputs) / span,
                output_rate_hz=len(self._outputs) / span,
                latency_p50_ms=float(p50),
                latency_p95_ms=float(p95),
                frames_received=self.frames_received,
                frames_published=self.frames_published,
                frames_dropped=self.frames_dropped,
                messages_rejected=self.messages_rejected,
                window_s=span,
                frames_failed=self.frames_failed,
                failures_in_window=len(self._failures),
                last_failure=self.last_failure,
            )


class StageTimes:
    """Recent durations of the frame path's parts (``FRAME_PATH_PARTS`` and the stages) and the bytes published,
    over the last ``window_s`` seconds (at most ``samples`` per part); publish failures since start.

    Thread-safe (the worker records, the executor reports); times are seconds on any monotonic clock, supplied by
    the caller.
    """

    def __init__(self, window_s: float = RATE_WINDOW_S, samples: int = LATENCY_SAMPLES) -> None:
        self._window_s = window_s
        self._samples = samples
        self._lock = threading.Lock()
        self._times: dict[str, deque[tuple[float, float]]] = {key: deque(maxlen=samples) for key in FRAME_PATH_PARTS}
        self._published: deque[tuple[float, int]] = deque()
        self._start: float | None = None
        self.publish_failures = 0

    def record(self, seconds: dict[str, float], now: float) -> None:
        """Durations (seconds) of parts by key, measured for a frame that finished at ``now``."""
        with self._lock:
            for key, value in seconds.items():
                self._times.setdefault(key, deque(maxlen=self._samples)).append((now, value))

    def record_published(self, nbytes: int, now: float) -> None:
        """``nbytes`` of serialized messages were published at ``now``."""
        with self._lock:
            if self._start is None:
                self._start = now
            self._published.append((now, nbytes))

    def record_publish_failure(self) -> None:
        """A message could not be published (e.g. its publisher was destroyed at shutdown)."""
        with self._lock:
            self.publish_failures += 1

    def values(self, now: float) -> dict[str, str]:
        """``<part>_ms_p50``/``<part>_ms_p95`` (milliseconds over the window; NaN for a ``FRAME_PATH_PARTS`` part
        without samples, a stage without samples is left out), ``published_mb_per_s`` (1e6 bytes a second) and
        ``publish_failures``."""
        horizon = now - self._window_s
        with self._lock:
            for events in (*self._times.values(), self._published):
                while events and events[0][0] <= horizon:
                    events.popleft()
            recent = {key: [value for _, value in events] for key, events in self._times.items()}
            published = sum(nbytes for _, nbytes in self._published)
            span = self._window_s if self._start is None else min(self._window_s, max(now - self._start, 1e-9))
            failures = self.publish_failures
        values: dict[str, str] = {}
        for key, samples in recent.items():
            if not samples and key not in FRAME_PATH_PARTS:
                continue
            p50, p95 = (np.percentile(np.asarray(samples), [50.0, 95.0]) * 1e3 if samples
                        else (float("nan"), float("nan")))
            values[f"{key}_ms_p50"], values[f"{key}_ms_p95"] = _format(float(p50)), _format(float(p95))
        values["published_mb_per_s"] = _format(published / span / 1e6)
        values["publish_failures"] = str(failures)
        return values


class LogThrottle:
    """Allows one log per ``key`` every ``period_s`` seconds (thread-safe; times supplied by the caller)."""

    def __init__(self, period_s: float = 5.0) -> None:
        self._period_s = period_s
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        """True if nothing was logged for ``key`` in the last ``period_s`` seconds (and remember ``now``)."""
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._period_s:
                return False
            self._last[key] = now
            return True


def _format(value: float) -> str:
    return "nan" if value != value else f"{value:.2f}"


def status_level(snapshot: StatsSnapshot) -> tuple[bytes, str]:
    """(DiagnosticStatus level, summary): ERROR when frames failed in the window and nothing was published (the
    message names the last failure's type), WARN when frames arrive but nothing is published, OK otherwise."""
    if snapshot.failures_in_window > 0 and snapshot.output_rate_hz == 0.0:
        return DiagnosticStatus.ERROR, (f"frames failing ({snapshot.last_failure}): publishing nothing, see the "
                                        "node's log")
    if snapshot.input_rate_hz > 0.0 and snapshot.output_rate_hz == 0.0:
        return DiagnosticStatus.WARN, "receiving images but publishing nothing (no subscribers or bad input)"
    if snapshot.input_rate_hz == 0.0:
        return DiagnosticStatus.OK, "waiting for images"
    return DiagnosticStatus.OK, f"publishing at {snapshot.output_rate_hz:.1f} Hz"


def _snapshot_values(snapshot: StatsSnapshot) -> dict[str, str]:
    return {
        "input_rate_hz": _format(snapshot.input_rate_hz),
        "output_rate_hz": _format(snapshot.output_rate_hz),
        "latency_p50_ms": _format(snapshot.latency_p50_ms),
        "latency_p95_ms": _format(snapshot.latency_p95_ms),
        "frames_received": str(snapshot.frames_received),
        "frames_published": str(snapshot.frames_published),
        "frames_dropped": str(snapshot.frames_dropped),
        "messages_rejected": str(snapshot.messages_rejected),
        "frames_failed": str(snapshot.frames_failed),
        "last_failure": snapshot.last_failure,
        "rate_window_s": _format(snapshot.window_s),
    }


def _status(snapshot: StatsSnapshot, name: str, hardware_id: str, values: dict[str, str]) -> DiagnosticStatus:
    level, message = status_level(snapshot)
    return DiagnosticStatus(level=level, name=name, message=message, hardware_id=hardware_id,
                            values=[KeyValue(key=k, value=v) for k, v in values.items()])


def diagnostic_array(snapshot: StatsSnapshot, *, stamp: Time, name: str, hardware_id: str, device: str,
                     model_name: str, precision: str, trained: bool,
                     memory_mb: dict[str, float] | None = None, extra: dict[str, str] | None = None,
                     cameras: Sequence[tuple[str, StatsSnapshot]] = (), runtime: str = "",
                     camera_values: Mapping[str, Mapping[str, str]] | None = None) -> DiagnosticArray:
    """A ``DiagnosticStatus`` named ``name`` with rates (Hz), latency percentiles (ms), counters, the model,
    ``runtime`` (what executes the network: the runner's ``description``, e.g. "onnxruntime
    TensorrtExecutionProvider gpu 0 (fp16)"), ``memory_mb`` figures (e.g. ``{"peak_rss_mb": ...,
    "peak_gpu_mb": ...}``, MiB) and ``extra`` values (e.g. the batch size and network time); then one status per
    ``(camera name, snapshot)``, named ``"<name> <camera>"``, with that camera's ``camera_values`` (its stages')."""
    values = _snapshot_values(snapshot)
    values.update({"device": device, "model": model_name, "precision": precision, "runtime": runtime,
                   "trained": str(bool(trained)).lower()})
    values.update({key: _format(value) for key, value in (memory_mb or {}).items()})
    values.update(extra or {})
    statuses = [_status(snapshot, name, hardware_id, values)]
    per_camera = camera_values or {}
    statuses += [_status(camera_snapshot, f"{name} {camera}", hardware_id,
                         {"camera": camera, **_snapshot_values(camera_snapshot), **per_camera.get(camera, {})})
                 for camera, camera_snapshot in cameras]
    array = DiagnosticArray(status=statuses)
    array.header.stamp = stamp
    return array


def batch_figures(batches: Iterable[tuple[int, float]]) -> dict[str, str]:
    """Batch size (last, mean) and estimate_batch time (p50/p95 ms) of (frames, seconds) samples, as diagnostic
    values (``list`` takes one C-level copy: the worker thread appends while the executor reads)."""
    samples = list(batches)
    if not samples:
        return {"batch_size": "0", "batch_size_mean": "nan", "batch_ms_p50": "nan", "batch_ms_p95": "nan"}
    sizes = np.array([size for size, _ in samples], dtype=np.float64)
    p50, p95 = np.percentile(np.array([s for _, s in samples]), [50.0, 95.0]) * 1e3
    return {"batch_size": str(int(sizes[-1])), "batch_size_mean": f"{sizes.mean():.2f}",
            "batch_ms_p50": f"{p50:.2f}", "batch_ms_p95": f"{p95:.2f}"}

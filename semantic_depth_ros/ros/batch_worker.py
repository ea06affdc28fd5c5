"""Latest-frame-wins per camera, one worker thread that serves every camera's newest frame as one batch (no ROS).

Each camera's subscription callback calls :meth:`BatchWorker.submit` with its camera key; that never blocks on the
work: the item goes into the camera's one-item slot, replacing (and counting as dropped for that camera) an item
still waiting there. Each time the worker is free it takes the pending item of every camera that has one and hands
them to ``process`` together (in the order the items arrived), so a slow batch drops frames instead of
growing a queue, and a camera that stops sending simply has no item in the next batch: it never stalls the others.
With one camera this is the single-slot hand-off of ``worker.LatestFrameWorker``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")


class BatchWorker(Generic[K, T]):
    """One worker thread fed through one slot per camera key; ``process([(key, item), ...])`` runs per batch.

    An exception from ``process`` goes to ``on_error`` (if given; an exception from ``on_error`` is ignored) and
    the worker carries on. Counters:
    ``submitted`` and ``dropped`` per key (``dropped_of``), ``batches`` processed, ``failed`` batches.
    """

    def __init__(self, process: Callable[[list[tuple[K, T]]], None], *, name: str = "batch_worker",
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._process = process
        self._on_error = on_error
        self._name = name
        self._condition = threading.Condition()
        self._pending: dict[K, T] = {}
        self._stopping = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self._dropped: dict[K, int] = {}
        self._submitted: dict[K, int] = {}
        self.batches = 0
        self.failed = 0

    def start(self) -> None:
        """Start the worker thread (once; again after ``stop``)."""
        with self._condition:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def submit(self, key: K, item: T) -> bool:
        """Hand ``item`` of camera ``key`` to the worker; True if it replaced (dropped) that camera's waiting item."""
        with self._condition:
            replaced = key in self._pending
            if replaced:
                self._dropped[key] = self._dropped.get(key, 0) + 1
            self._pending[key] = item
            self._submitted[key] = self._submitted.get(key, 0) + 1
            self._condition.notify()
            return replaced

    def count_dropped(self, key: K) -> None:
        """Count a frame of ``key`` dropped before it reached the slot (e.g. the node was inactive)."""
        with self._condition:
            self._dropped[key] = self._dropped.get(key, 0) + 1

    def dropped_of(self, key: K) -> int:
        """Frames of camera ``key`` dropped so far (replaced, discarded at stop, or counted by the caller)."""
        with self._condition:
            return self._dropped.get(key, 0)

    def submitted_of(self, key: K) -> int:
        """Frames of camera ``key`` submitted so far."""
        with self._condition:
            return self._submitted.get(key, 0)

    def discard_pending(self) -> int:
        """Drop every waiting item (counted per camera); return how many."""
        with self._condition:
            return self._discard_locked()

    def _discard_locked(self) -> int:
        count = len(self._pending)
        for key in self._pending:
            self._dropped[key] = self._dropped.get(key, 0) + 1
        self._pending.clear()
        return count

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Finish the current batch and exit, dropping what is pending; True if the thread exited."""
        with self._condition:
            self._stopping = True
            self._discard_locked()
            self._condition.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being processed; True if that happened within ``timeout`` seconds."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._pending and not self._busy, timeout)

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _take(self) -> list[tuple[K, T]] | None:
        """Wait for items; every camera's pending one, or None when stopping."""
        with self._condition:
            self._condition.wait_for(lambda: bool(self._pending) or self._stopping)
            if self._stopping:
                return None
            batch = list(self._pending.items())
            self._pending.clear()
            self._busy = True
            return batch

    def _report(self, exc: Exception) -> None:
        """Hand ``exc`` to ``on_error``; an exception from the handler itself is ignored (the worker carries on)."""
        if self._on_error is None:
            return
        try:
            self._on_error(exc)
        except Exception:  # noqa: BLE001 - a failing handler (e.g. logging at shutdown) must not kill the worker
            pass

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            failed = False
            try:
                self._process(batch)
            except Exception as exc:  # noqa: BLE001 - one bad batch must not kill the worker
                failed = True
                self._report(exc)
            finally:
                with self._condition:
                    self.failed += int(failed)
                    self.batches += int(not failed)
                    self._busy = False
                    self._condition.notify_all()

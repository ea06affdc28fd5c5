"""Latest-frame-wins hand-off from a subscription callback to one worker thread (no ROS imports).

The callback calls :meth:`LatestFrameWorker.submit`, which never blocks on the work: it puts the item into a
single slot and returns. The worker thread takes the slot's item and processes it. An item submitted while the
slot still holds an unprocessed one replaces it, and the replaced item is counted as dropped, so a slow frame
drops frames instead of growing a queue and memory stays flat under any input rate.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrameWorker(Generic[T]):
    """One worker thread fed through a one-item slot; newer items replace older pending ones.

    ``process(item)`` runs on the worker thread for every item that is not replaced before the worker gets to it.
    An exception from ``process`` is passed to ``on_error`` (if given) and the worker carries on with the next item.
    Counters: ``submitted`` (every ``submit``), ``dropped`` (replaced or discarded unprocessed), ``processed``
    (``process`` returned) and ``failed`` (``process`` raised); once idle, submitted = dropped + processed + failed.
    """

    def __init__(self, process: Callable[[T], None], *, name: str = "latest_frame_worker",
                 on_error: Callable[[BaseException], None] | None = None) -> None:
        self._process = process
        self._on_error = on_error
        self._name = name
        self._condition = threading.Condition()
        self._pending: T | None = None
        self._has_pending = False
        self._stopping = False
        self._busy = False
        self._thread: threading.Thread | None = None
        self.submitted = 0
        self.processed = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        """Start the worker thread (once)."""
        with self._condition:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def submit(self, item: T) -> bool:
        """Hand ``item`` to the worker; return True if it replaced (dropped) an item still waiting."""
        with self._condition:
            replaced = self._has_pending
            if replaced:
                self.dropped += 1
            self._pending = item
            self._has_pending = True
            self.submitted += 1
            self._condition.notify()
            return replaced

    def stop(self, timeout: float | None = 5.0) -> bool:
        """Ask the worker to finish its current item and exit, dropping any pending one; True if it exited."""
        with self._condition:
            self._stopping = True
            if self._has_pending:
                self.dropped += 1
            self._pending = None
            self._has_pending = False
            self._condition.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is pending or being processed; True if that happened within ``timeout`` seconds."""
        with self._condition:
            return self._condition.wait_for(lambda: not self._has_pending and not self._busy, timeout)

    @property
    def running(self) -> bool:
        """Whether the worker thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _take(self) -> tuple[bool, T | None]:
        """Wait for an item; ``(False, None)`` when stopping."""
        with self._condition:
            self._condition.wait_for(lambda: self._has_pending or self._stopping)
            if self._stopping:
                return False, None
            item = self._pending
            self._pending = None
            self._has_pending = False
            self._busy = True
            return True, item

    def _run(self) -> None:
        while True:
            has_item, item = self._take()
            if not has_item:
                return
            failed = False
            try:
                self._process(item)  # type: ignore[arg-type]
            except Exception as exc:  # noqa: BLE001 - one bad item must not kill the worker
                failed = True
                if self._on_error is not None:
                    self._on_error(exc)
            finally:
                with self._condition:
                    if failed:
                        self.failed += 1
                    else:
                        self.processed += 1
                    self._busy = False
                    self._condition.notify_all()

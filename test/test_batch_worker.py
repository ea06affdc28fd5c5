"""Latest-frame-wins per camera, one batch per round: drops counted per camera, the newest frame of every camera
wins, a silent camera never holds a batch back, errors do not kill the worker."""

from __future__ import annotations

import threading

from semantic_depth_ros.ros.batch_worker import BatchWorker

Batch = list[tuple[str, int]]


def test_items_are_processed_in_order_when_the_worker_keeps_up() -> None:
    seen: list[Batch] = []
    worker: BatchWorker[str, int] = BatchWorker(seen.append)
    worker.start()
    for i in range(5):
        worker.submit("cam", i)
        assert worker.wait_idle(timeout=5.0)
    assert worker.stop()
    assert seen == [[("cam", i)] for i in range(5)]
    assert (worker.submitted_of("cam"), worker.batches, worker.dropped_of("cam"), worker.failed) == (5, 5, 0, 0)


def _blocking_worker(seen: list[Batch]) -> tuple[BatchWorker[str, int], threading.Event, threading.Event]:
    started, release = threading.Event(), threading.Event()

    def process(batch: Batch) -> None:
        seen.append(batch)
        if batch[0][1] == 0:
            started.set()
            release.wait(timeout=5.0)

    worker: BatchWorker[str, int] = BatchWorker(process)
    worker.start()
    return worker, started, release


def test_frames_arriving_during_a_slow_batch_replace_each_other_per_camera_and_count_as_dropped() -> None:
    seen: list[Batch] = []
    worker, started, release = _blocking_worker(seen)
    worker.submit("front", 0)
    assert started.wait(timeout=5.0)
    replaced = [worker.submit("front", i) for i in range(1, 101)]  # the worker is busy with frame 0
    assert replaced == [False] + [True] * 99
    assert worker.submit("left", 500) is False
    release.set()
    assert worker.wait_idle(timeout=5.0)
    assert seen == [[("front", 0)], [("front", 100), ("left", 500)]]  # the newest of each camera, ONE batch
    assert (worker.submitted_of("front"), worker.dropped_of("front"), worker.dropped_of("left")) == (101, 99, 0)
    assert worker.batches == 2
    assert worker.stop()


def test_a_silent_camera_does_not_hold_back_the_others() -> None:
    seen: list[Batch] = []
    worker: BatchWorker[str, int] = BatchWorker(seen.append)
    worker.start()
    worker.submit("front", 1)
    worker.submit("right", 1)
    assert worker.wait_idle(timeout=5.0)
    worker.submit("front", 2)  # "right" stays silent from now on
    assert worker.wait_idle(timeout=5.0)
    assert sorted(seen[0]) == [("front", 1), ("right", 1)] or seen[:2] == [[("front", 1)], [("right", 1)]]
    assert seen[-1] == [("front", 2)]
    assert worker.stop()


def test_an_exception_is_reported_and_the_next_batch_is_still_served() -> None:
    errors: list[BaseException] = []
    seen: list[Batch] = []

    def process(batch: Batch) -> None:
        if batch[0][1] < 0:
            raise ValueError(f"bad item {batch[0][1]}")
        seen.append(batch)

    worker: BatchWorker[str, int] = BatchWorker(process, on_error=errors.append)
    worker.start()
    worker.submit("cam", -1)
    assert worker.wait_idle(timeout=5.0)
    worker.submit("cam", 7)
    assert worker.wait_idle(timeout=5.0)
    assert worker.stop()
    assert seen == [[("cam", 7)]]
    assert [str(e) for e in errors] == ["bad item -1"]
    assert (worker.batches, worker.failed) == (1, 1)


def test_an_exception_from_the_error_handler_does_not_kill_the_worker() -> None:
    seen: list[Batch] = []
    handled: list[str] = []

    def process(batch: Batch) -> None:
        if batch[0][1] < 0:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        seen.append(batch)

    def failing_handler(exc: BaseException) -> None:
        handled.append(str(exc))
        raise ValueError("the logger is gone")

    worker: BatchWorker[str, int] = BatchWorker(process, on_error=failing_handler)
    worker.start()
    worker.submit("cam", -1)
    assert worker.wait_idle(timeout=5.0)
    worker.submit("cam", 3)
    assert worker.wait_idle(timeout=5.0)  # served: the thread survived its handler's exception
    assert worker.running
    assert worker.stop()
    assert seen == [[("cam", 3)]] and len(handled) == 1
    assert (worker.batches, worker.failed) == (1, 1)


def test_stop_and_discard_drop_pending_items_counted_per_camera() -> None:
    seen: list[Batch] = []
    worker, started, release = _blocking_worker(seen)
    worker.submit("a", 0)
    assert started.wait(timeout=5.0)
    worker.submit("a", 1)
    worker.submit("b", 1)
    assert worker.discard_pending() == 2
    worker.count_dropped("b")  # e.g. a frame that arrived while the node was inactive
    worker.submit("a", 2)  # pending while 0 runs
    assert not worker.stop(timeout=0.0)  # still busy with 0: asks it to stop and discards 2
    release.set()
    assert worker.stop(timeout=5.0)
    assert not worker.running
    assert seen == [[("a", 0)]]
    assert (worker.dropped_of("a"), worker.dropped_of("b")) == (2, 2)


def test_stop_without_start_is_harmless_and_start_again_works() -> None:
    seen: list[Batch] = []
    worker: BatchWorker[str, int] = BatchWorker(seen.append)
    assert worker.stop()
    assert not worker.running
    worker.start()
    worker.submit("cam", 3)
    assert worker.wait_idle(timeout=5.0)
    assert worker.stop()
    assert seen == [[("cam", 3)]]

"""Latest-frame-wins hand-off: drops are counted, the newest frame wins, errors do not kill the worker."""

from __future__ import annotations

import threading

from semantic_depth_ros.ros.worker import LatestFrameWorker


def test_items_are_processed_in_order_when_the_worker_keeps_up() -> None:
    seen: list[int] = []
    worker: LatestFrameWorker[int] = LatestFrameWorker(seen.append)
    worker.start()
    for i in range(5):
        worker.submit(i)
        assert worker.wait_idle(timeout=5.0)
    assert worker.stop()
    assert seen == [0, 1, 2, 3, 4]
    assert (worker.submitted, worker.processed, worker.dropped, worker.failed) == (5, 5, 0, 0)


def test_frames_arriving_during_a_slow_frame_replace_each_other_and_count_as_dropped() -> None:
    started = threading.Event()
    release = threading.Event()
    seen: list[int] = []

    def process(item: int) -> None:
        seen.append(item)
        if item == 0:
            started.set()
            release.wait(timeout=5.0)

    worker: LatestFrameWorker[int] = LatestFrameWorker(process)
    worker.start()
    worker.submit(0)
    assert started.wait(timeout=5.0)
    replaced = [worker.submit(i) for i in range(1, 101)]  # the worker is busy with frame 0
    assert replaced == [False] + [True] * 99
    release.set()
    assert worker.wait_idle(timeout=5.0)
    assert seen == [0, 100]  # only the newest pending frame was processed
    assert (worker.submitted, worker.processed, worker.dropped) == (101, 2, 99)
    assert worker.submitted == worker.processed + worker.dropped + worker.failed
    assert worker.stop()


def test_an_exception_is_reported_and_the_next_item_is_still_served() -> None:
    errors: list[BaseException] = []
    seen: list[int] = []

    def process(item: int) -> None:
        if item < 0:
            raise ValueError(f"bad item {item}")
        seen.append(item)

    worker: LatestFrameWorker[int] = LatestFrameWorker(process, on_error=errors.append)
    worker.start()
    worker.submit(-1)
    assert worker.wait_idle(timeout=5.0)
    worker.submit(7)
    assert worker.wait_idle(timeout=5.0)
    assert worker.stop()
    assert seen == [7]
    assert [str(e) for e in errors] == ["bad item -1"]
    assert (worker.processed, worker.failed) == (1, 1)


def test_stop_discards_the_pending_item_and_ends_the_thread() -> None:
    release = threading.Event()
    started = threading.Event()
    seen: list[int] = []

    def process(item: int) -> None:
        started.set()
        release.wait(timeout=5.0)
        seen.append(item)

    worker: LatestFrameWorker[int] = LatestFrameWorker(process)
    worker.start()
    worker.submit(1)
    assert started.wait(timeout=5.0)
    worker.submit(2)  # pending while 1 runs
    assert not worker.stop(timeout=0.0)  # still busy with 1: asks it to stop and discards 2
    release.set()
    assert worker.stop(timeout=5.0)
    assert not worker.running
    assert seen == [1]
    assert (worker.processed, worker.dropped) == (1, 1)


def test_stop_without_start_is_harmless() -> None:
    worker: LatestFrameWorker[int] = LatestFrameWorker(lambda item: None)
    assert worker.stop()
    assert not worker.running

"""Render generated frames on several threads, before a run reads them one by one.

A training run with ``num_workers: 0`` renders each generated frame on its first use, on the thread that trains:
the demo's first epoch spent about 18 s of its 1000 steps rendering on one core of two. ``prerender`` fills
``RENDERED`` first, on a thread per core (the frames are deterministic, so the run trains on the same samples);
``render_frames`` is ``render_frame`` over many indices, the same way.

Threads, not processes: the renderer's numpy work releases the GIL for about a third of a frame (two threads render
1.4 times as fast as one on 2 cores, two processes 1.9 times), but a fork of a process whose other threads (DDS,
TensorBoard's writer) hold a lock can hang (it did in the test suite), and spawned or fork-server workers import
the caller's ``__main__``, which a script without a main guard turns into endless workers.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor

from semantic_depth_ros.data.synthetic.dataset import RENDERED, SyntheticDataset, render_arrays
from semantic_depth_ros.data.synthetic.render import SyntheticFrame, render_frame

MIN_FRAMES_PER_WORKER = 8  # below this, the threads' start costs more than it saves


def missing_keys(datasets: Iterable[object]) -> list[tuple]:
    """Cache keys of the frames of the caching ``SyntheticDataset`` s among ``datasets`` that ``RENDERED`` lacks."""
    keys: dict[tuple, None] = {}
    for dataset in datasets:
        if isinstance(dataset, SyntheticDataset) and dataset.cache:
            keys.update((key, None) for key in map(dataset.cache_key, range(len(dataset))) if key not in RENDERED)
    return list(keys)


def prerender(datasets: Iterable[object], workers: int | None = None) -> int:
    """Render the frames ``missing_keys`` finds on ``workers`` threads (default: one per core) into ``RENDERED``;
    returns how many.

    Nothing is rendered (0) with fewer than two workers, too few frames to share, or more frames than the cache
    holds (they would evict each other: the datasets then render on use, as without this).
    """
    keys = missing_keys(datasets)
    workers = _cores() if workers is None else workers
    if workers < 2 or len(keys) < 2 * MIN_FRAMES_PER_WORKER or len(RENDERED) + len(keys) > RENDERED.max_entries:
        return 0
    with _executor(workers, len(keys)) as executor:
        for key, arrays in zip(keys, executor.map(render_arrays, keys)):
            RENDERED.get(key, lambda arrays=arrays: arrays)
    return len(keys)


def render_frames(domain: str, indices: Sequence[int], *, seed: int, height: int, width: int,
                  workers: int | None = None) -> list[SyntheticFrame]:
    """``render_frame(domain, index, seed=seed, height=height, width=width)`` of each index, in order; on
    ``workers`` threads (default: one per core) when there are enough frames to share."""
    workers = _cores() if workers is None else workers
    render = functools.partial(render_frame, domain, seed=seed, height=height, width=width)
    if workers < 2 or len(indices) < 2 * MIN_FRAMES_PER_WORKER:
        return [render(index) for index in indices]
    with _executor(workers, len(indices)) as executor:
        return list(executor.map(render, indices))


def _cores() -> int:
    return os.cpu_count() or 1


def _executor(workers: int, frames: int) -> ThreadPoolExecutor:
    """At most ``workers`` threads, each with ``MIN_FRAMES_PER_WORKER`` frames or more to render."""
    return ThreadPoolExecutor(min(workers, frames // MIN_FRAMES_PER_WORKER), thread_name_prefix="render")

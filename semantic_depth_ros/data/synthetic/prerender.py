"""Render generated frames in parallel, before a run reads them one by one.

A training run with ``num_workers: 0`` renders each generated frame on its first use, on the thread that trains:
the demo's first epoch spent about 18 s of its 1000 steps rendering on one core of two. ``prerender`` fills
``RENDERED`` with a process pool first (the frames are deterministic, so the run trains on the same samples);
``render_frames`` is ``render_frame`` over many indices, on the same pool.
"""

from __future__ import annotations

import functools
import multiprocessing
import sys
from collections.abc import Iterable, Sequence
from multiprocessing.pool import Pool

from semantic_depth_ros.data.synthetic.dataset import RENDERED, SyntheticDataset, render_arrays
from semantic_depth_ros.data.synthetic.render import SyntheticFrame, render_frame

MIN_FRAMES_PER_WORKER = 8  # below this, starting processes costs more than it saves


def missing_keys(datasets: Iterable[object]) -> list[tuple]:
    """Cache keys of the frames of the caching ``SyntheticDataset`` s among ``datasets`` that ``RENDERED`` lacks."""
    keys: dict[tuple, None] = {}
    for dataset in datasets:
        if isinstance(dataset, SyntheticDataset) and dataset.cache:
            keys.update((key, None) for key in map(dataset.cache_key, range(len(dataset))) if key not in RENDERED)
    return list(keys)


def prerender(datasets: Iterable[object], workers: int) -> int:
    """Render the frames ``missing_keys`` finds in ``workers`` processes into ``RENDERED``; returns how many.

    Nothing is rendered (0) with fewer than two workers, too few frames to share, or more frames than the cache
    holds (they would evict each other: the datasets then render on use, as without this).
    """
    keys = missing_keys(datasets)
    if workers < 2 or len(keys) < 2 * MIN_FRAMES_PER_WORKER or len(RENDERED) + len(keys) > RENDERED.max_entries:
        return 0
    with _pool(workers, len(keys)) as pool:
        for key, arrays in zip(keys, pool.imap(render_arrays, keys, chunksize=4)):
            RENDERED.get(key, lambda arrays=arrays: arrays)
    return len(keys)


def render_frames(domain: str, indices: Sequence[int], *, seed: int, height: int, width: int,
                  workers: int) -> list[SyntheticFrame]:
    """``render_frame(domain, index, seed=seed, height=height, width=width)`` of each index, in order; in
    ``workers`` processes when there are enough frames to share."""
    render = functools.partial(render_frame, domain, seed=seed, height=height, width=width)
    if workers < 2 or len(indices) < 2 * MIN_FRAMES_PER_WORKER:
        return [render(index) for index in indices]
    with _pool(workers, len(indices)) as pool:
        return pool.map(render, indices, chunksize=4)


def _pool(workers: int, frames: int) -> Pool:
    """A pool of at most ``workers`` processes, each with ``MIN_FRAMES_PER_WORKER`` frames or more to render."""
    # fork where the platform has it: the children need nothing but the renderer, already imported
    context = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    return context.Pool(min(workers, frames // MIN_FRAMES_PER_WORKER))

"""Pair messages of two streams by time: the nearest within a tolerance, or the latest at or before.

Times are integer nanoseconds (header stamps or bag receive times). Results are indices into the candidate
sequence as given (not sorted), -1 where there is no match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semantic_depth_ros.errors import InvalidInputError


def nearest_within(query_ns: Sequence[int], candidate_ns: Sequence[int], max_dt_s: float) -> np.ndarray:
    """For each query time, the index of the candidate nearest in time if at most ``max_dt_s`` seconds away.

    Returns (len(query_ns),) int64, -1 = none within tolerance. On a tie the earlier candidate wins; among equal
    candidate times the first given wins.
    """
    if not np.isfinite(max_dt_s) or max_dt_s < 0:
        raise InvalidInputError(f"max_dt must be a finite number of seconds >= 0, got {max_dt_s}")
    wanted = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    stamps = np.asarray(candidate_ns, dtype=np.int64).reshape(-1)
    result = np.full(wanted.shape, -1, dtype=np.int64)
    if stamps.size == 0 or wanted.size == 0:
        return result
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    right = np.clip(np.searchsorted(sorted_stamps, wanted), 0, sorted_stamps.size - 1)
    left = np.clip(right - 1, 0, sorted_stamps.size - 1)
    use_left = np.abs(wanted - sorted_stamps[left]) <= np.abs(sorted_stamps[right] - wanted)
    nearest = np.where(use_left, left, right)
    within = np.abs(sorted_stamps[nearest] - wanted) <= max_dt_s * 1e9
    result[within] = order[nearest[within]]
    return result


def latest_at_or_before(query_ns: Sequence[int], candidate_ns: Sequence[int]) -> np.ndarray:
    """For each query time, the index of the last candidate at or before it (e.g. the CameraInfo in force when an
    image arrived). Returns (len(query_ns),) int64, -1 = every candidate is later; among equal candidate times the
    last given wins."""
    wanted = np.asarray(query_ns, dtype=np.int64).reshape(-1)
    stamps = np.asarray(candidate_ns, dtype=np.int64).reshape(-1)
    if stamps.size == 0:
        return np.full(wanted.shape, -1, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    position = np.searchsorted(stamps[order], wanted, side="right") - 1
    return np.where(position >= 0, order[np.maximum(position, 0)], -1).astype(np.int64)

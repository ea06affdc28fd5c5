"""Time pairing: nearest within a tolerance and latest at or before, on hand-made stamps."""

from __future__ import annotations

import numpy as np
import pytest

from semantic_depth_ros.data.time_pairing import latest_at_or_before, nearest_within
from semantic_depth_ros.errors import InvalidInputError

MS = 1_000_000


def test_nearest_within_picks_the_closest_candidate_in_tolerance_or_none() -> None:
    scans = [300 * MS, 100 * MS, 200 * MS]  # unsorted on purpose: indices refer to this order
    images = [104 * MS, 149 * MS, 151 * MS, 360 * MS, 400 * MS, 0]
    np.testing.assert_array_equal(nearest_within(images, scans, 0.05), [1, 1, 2, -1, -1, -1])
    np.testing.assert_array_equal(nearest_within(images, scans, 0.1), [1, 1, 2, 0, 0, 1])


def test_nearest_within_prefers_the_earlier_candidate_on_a_tie_and_handles_empty_inputs() -> None:
    np.testing.assert_array_equal(nearest_within([150 * MS], [200 * MS, 100 * MS], 0.05), [1])
    np.testing.assert_array_equal(nearest_within([1, 2], [], 1.0), [-1, -1])
    assert nearest_within([], [1, 2], 1.0).shape == (0,)
    with pytest.raises(InvalidInputError, match="max_dt must be a finite number of seconds >= 0, got -1"):
        nearest_within([1], [1], -1)


def test_latest_at_or_before_counts_equal_times_as_before() -> None:
    infos = [100, 300, 200]
    np.testing.assert_array_equal(latest_at_or_before([50, 100, 250, 300, 999], infos), [-1, 0, 2, 1, 1])
    np.testing.assert_array_equal(latest_at_or_before([5], []), [-1])

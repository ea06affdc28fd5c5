"""Forward warping of depth (temporal/warp.py) on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from semantic_depth_ros.data.tf_chain import rigid_transform, rotation_rpy
from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.temporal.warp import fill_small_holes, forward_warp, project_depth

NAN = float("nan")


def _translation(x: float, y: float, z: float) -> np.ndarray:
    return rigid_transform(np.eye(3), (x, y, z))


def test_plane_moved_away_lands_at_the_new_depth_and_shrinks() -> None:
    intr = Intrinsics(fx=50.0, fy=50.0, cx=15.5, cy=9.5, width=32, height=20)
    depth = torch.full((20, 32), 10.0)
    # the camera moves 2 m back: p_current = p_previous + (0, 0, 2)
    warped = forward_warp(depth, intr, _translation(0.0, 0.0, 2.0))
    finite = torch.isfinite(warped.depth)
    np.testing.assert_allclose(warped.depth[finite].numpy(), 12.0, rtol=1e-6)
    # column u lands at cx + (u - cx) * 10 / 12, rounded to the nearest pixel centre: those columns are covered
    cols = {math.floor(15.5 + (u - 15.5) * 10 / 12 + 0.5) for u in range(32)}
    rows = {math.floor(9.5 + (v - 9.5) * 10 / 12 + 0.5) for v in range(20)}
    expected = np.zeros((20, 32), dtype=bool)
    expected[np.ix_(sorted(rows), sorted(cols))] = True
    np.testing.assert_array_equal(finite.numpy(), expected)
    assert not expected[:, 0].any() and not expected[0, :].any()  # the borders became holes


def test_plane_approached_lands_at_the_new_depth_with_holes() -> None:
    intr = Intrinsics(fx=50.0, fy=50.0, cx=15.5, cy=9.5, width=32, height=20)
    warped = forward_warp(torch.full((20, 32), 10.0), intr, _translation(0.0, 0.0, -2.0))
    finite = torch.isfinite(warped.depth)
    np.testing.assert_allclose(warped.depth[finite].numpy(), 8.0, rtol=1e-6)
    assert 0 < int((~finite).sum()) < 20 * 32 // 2  # magnification by 1.25 leaves holes between the points


def test_rotation_about_the_optical_axis_rotates_the_image() -> None:
    n = 9
    intr = Intrinsics(fx=20.0, fy=20.0, cx=(n - 1) / 2, cy=(n - 1) / 2, width=n, height=n)
    depth = torch.arange(1, n * n + 1, dtype=torch.float32).reshape(n, n)
    # (x, y) -> (-y, x): pixel (u, v) moves to (n-1-v, u), depth unchanged, i.e. a clockwise quarter turn
    warped = forward_warp(depth, intr, rigid_transform(rotation_rpy(0.0, 0.0, math.pi / 2), (0, 0, 0)))
    np.testing.assert_allclose(warped.depth.numpy(), np.rot90(depth.numpy(), -1), rtol=1e-6)
    np.testing.assert_array_equal(warped.source.numpy(), np.rot90(np.arange(n * n).reshape(n, n), -1))


def test_invalid_depth_leaves_holes_and_carried_values_are_nan_there() -> None:
    intr = Intrinsics(fx=10.0, fy=10.0, cx=2.0, cy=1.5, width=5, height=4)
    depth = torch.full((4, 5), 7.0)
    depth[1, 2], depth[2, 3], depth[0, 0] = NAN, 0.0, -1.0
    value = torch.arange(20, dtype=torch.float32).reshape(4, 5)
    warped = forward_warp(depth, intr, np.eye(4), values=(value,))
    holes = np.zeros((4, 5), dtype=bool)
    holes[1, 2] = holes[2, 3] = holes[0, 0] = True
    np.testing.assert_array_equal(torch.isnan(warped.depth).numpy(), holes)
    np.testing.assert_array_equal(torch.isnan(warped.values[0]).numpy(), holes)
    np.testing.assert_array_equal((warped.source < 0).numpy(), holes)
    np.testing.assert_array_equal(warped.values[0][~torch.from_numpy(holes)].numpy(), value.numpy()[~holes])


def test_zbuffer_keeps_the_nearer_point() -> None:
    intr = Intrinsics(fx=10.0, fy=10.0, cx=3.5, cy=0.0, width=8, height=1)
    depth = torch.full((1, 8), 10.0)
    depth[0, 3] = 5.0
    label = torch.arange(8, dtype=torch.float32)[None]
    # the camera moves 1 m left: a point at z moves right by fx * 1 / z pixels: 1 px at 10 m, 2 px at 5 m
    warped = forward_warp(depth, intr, _translation(1.0, 0.0, 0.0), values=(label,))
    np.testing.assert_allclose(warped.depth[0].numpy(), [NAN, 10, 10, 10, NAN, 5, 10, 10], rtol=1e-6)
    assert warped.source[0, 5] == 3 and warped.values[0][0, 5] == 3.0  # pixel 4 (10 m) lost to pixel 3 (5 m)


def test_project_depth_gives_the_new_depth_and_pixel() -> None:
    intr = Intrinsics(fx=10.0, fy=10.0, cx=2.0, cy=2.0, width=5, height=5)
    depth = torch.full((5, 5), 4.0)
    z, u, v = project_depth(depth, intr, _translation(1.0, 0.0, 1.0))
    # pixel (u=2, v=2) looks along the axis: point (0, 0, 4) -> (1, 0, 5) -> u = 2 + 10 * 1 / 5 = 4
    assert z[2, 2].item() == pytest.approx(5.0) and u[2, 2].item() == pytest.approx(4.0)
    assert v[2, 2].item() == pytest.approx(2.0)


def test_fill_small_holes_on_a_surface_but_not_at_edges() -> None:
    intr = Intrinsics(fx=10.0, fy=10.0, cx=3.0, cy=3.0, width=7, height=7)
    depth = torch.full((7, 7), 10.0)
    depth[3, 3] = NAN  # isolated hole on a flat surface
    depth[0:3, 0:3] = NAN  # a 3x3 hole: its centre (1, 1) has no valid neighbour
    depth[5, :3], depth[6, :3] = 5.0, 5.0  # a nearer object at the bottom left...
    depth[5, 1] = NAN  # ...with a hole on its edge (neighbours at 5 m and 10 m)
    weight = torch.full((7, 7), 2.0)
    filled = fill_small_holes(forward_warp(depth, intr, np.eye(4), values=(weight,)), max_spread=math.log(1.2))
    assert filled.depth[3, 3].item() == pytest.approx(10.0) and filled.values[0][3, 3].item() == pytest.approx(2.0)
    assert math.isnan(filled.depth[1, 1].item()) and math.isnan(filled.values[0][1, 1].item())
    assert filled.depth[2, 2].item() == pytest.approx(10.0)  # a corner of the big hole has 5 valid neighbours
    assert math.isnan(filled.depth[5, 1].item())  # the edge hole stays a hole
    assert filled.source[3, 3].item() == -1  # no single source pixel


def test_bad_inputs_are_rejected_with_the_reason() -> None:
    intr = Intrinsics(fx=10.0, fy=10.0, cx=2.0, cy=2.0, width=5, height=5)
    with pytest.raises(InvalidInputError, match="does not match its intrinsics"):
        forward_warp(torch.ones(4, 5), intr, np.eye(4))
    with pytest.raises(InvalidInputError, match="finite 4x4"):
        forward_warp(torch.ones(5, 5), intr, np.eye(3))
    with pytest.raises(InvalidInputError, match="warped value of shape"):
        forward_warp(torch.ones(5, 5), intr, np.eye(4), values=(torch.ones(3, 3),))

"""Generated driving sequences (data/synthetic/sequence.py): poses, moving car, determinism, consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semantic_depth_ros.data.synthetic.sequence import SEQUENCE_RATE_HZ, render_sequence
from semantic_depth_ros.data.tf_chain import invert_rigid
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.labels import CAR, ROAD
from semantic_depth_ros.temporal.warp import forward_warp, project_depth

H, W = 48, 160


@pytest.fixture(scope="module")
def sequence():
    return render_sequence(6, seed=3, height=H, width=W)


def test_frames_fields_stamps_and_camera(sequence) -> None:
    assert sequence.intrinsics.height == H and sequence.intrinsics.width == W
    assert len(sequence.frames) == 6 and sequence.rate_hz == SEQUENCE_RATE_HZ == 10.0
    assert [f.stamp_ns for f in sequence.frames] == [k * 100_000_000 for k in range(6)]
    for frame in sequence.frames:
        assert frame.rgb.shape == (H, W, 3) and frame.rgb.dtype == np.uint8
        assert frame.depth.shape == (H, W) and frame.depth.dtype == np.float32
        assert frame.semantic.dtype == np.uint8 and frame.moving.dtype == bool
        rotation = frame.world_from_camera[:3, :3]
        np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_camera_drives_forward_with_changing_speed_and_yaw(sequence) -> None:
    positions = np.array([f.world_from_camera[:3, 3] for f in sequence.frames])
    steps = np.diff(positions, axis=0)
    speeds = np.linalg.norm(steps, axis=1) * SEQUENCE_RATE_HZ
    assert np.all(steps[:, 0] > 0.5) and np.all(np.abs(steps[:, 2]) < 1e-9)  # forward along the street, level
    assert speeds.max() - speeds.min() > 0.05  # the speed changes
    np.testing.assert_allclose(speeds, sequence.ego_speed_mps[:-1], rtol=0.05)
    heading = [np.degrees(np.arctan2(f.world_from_camera[1, 2], f.world_from_camera[0, 2])) for f in sequence.frames]
    assert np.ptp(heading) > 0.2  # the yaw changes (optical z = the heading)


def test_the_moving_car_is_a_car_and_moves_on_its_own(sequence) -> None:
    rear_x = []
    for frame in sequence.frames:
        assert frame.moving.sum() > 20
        assert np.all(frame.semantic[frame.moving] == CAR) and np.all(frame.depth[frame.moving] > 0)
        v, u = np.nonzero(frame.moving)
        intr = sequence.intrinsics
        z = frame.depth[v, u].astype(np.float64)
        points = np.stack([(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z, np.ones_like(z)])
        rear_x.append((frame.world_from_camera @ points)[0].min())  # the car's rear face, world x
    np.testing.assert_allclose(np.diff(rear_x), sequence.car_speed_mps / SEQUENCE_RATE_HZ, atol=0.05)
    assert abs(sequence.car_speed_mps - sequence.ego_speed_mps.mean()) > 1.0


def test_poses_are_consistent_with_the_rendered_depth(sequence) -> None:
    for before, after in zip(sequence.frames[:-1], sequence.frames[1:]):
        relative = invert_rigid(after.world_from_camera) @ before.world_from_camera
        depth = torch.from_numpy(np.where(before.depth > 0, before.depth, np.nan))
        warped = forward_warp(depth, sequence.intrinsics, relative).depth.numpy()
        both = np.isfinite(warped) & (after.depth > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = np.abs(warped / after.depth - 1.0)
        static, moving = both & ~after.moving, both & after.moving
        assert static.sum() > 0.5 * H * W
        # nearest-pixel rounding of the warp is the only error: small on most pixels, larger at grazing angles
        assert np.median(rel[static]) < 0.01 and np.mean(rel[static] < 0.05) > 0.85
        assert np.median(rel[moving]) > max(0.01, 2 * np.median(rel[static]))  # the car moved on its own


def test_points_landing_on_pixel_centres_have_the_rendered_depth(sequence) -> None:
    intr = sequence.intrinsics
    for before, after in zip(sequence.frames[:-1], sequence.frames[1:]):
        relative = invert_rigid(after.world_from_camera) @ before.world_from_camera
        depth = torch.from_numpy(np.where(before.depth > 0, before.depth, np.nan))
        z, u, v = (t.numpy() for t in project_depth(depth, intr, relative))
        col, row = np.round(u), np.round(v)
        with np.errstate(invalid="ignore"):
            exact = ((np.abs(u - col) < 0.1) & (np.abs(v - row) < 0.1) & (col >= 0) & (col < W) & (row >= 0)
                     & (row < H) & ~before.moving)  # no rounding: the warp's depth must be the rendered one
        col, row = col[exact].astype(int), row[exact].astype(int)
        keep = (after.depth[row, col] > 0) & ~after.moving[row, col]
        rel = np.abs(z[exact][keep] / after.depth[row, col][keep] - 1.0)
        assert rel.size > 100 and np.median(rel) < 0.002 and np.mean(rel < 0.02) > 0.9


def test_road_pixels_back_project_onto_the_road_plane(sequence) -> None:
    intr = sequence.intrinsics
    for frame in sequence.frames:
        v, u = np.nonzero(frame.semantic == ROAD)
        z = frame.depth[v, u].astype(np.float64)
        points = np.stack([(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z, np.ones_like(z)])
        np.testing.assert_allclose((frame.world_from_camera @ points)[2], 0.0, atol=1e-3)  # world z = 0


def test_a_stopped_camera_stays_put_while_the_car_drives_on() -> None:
    stopped = render_sequence(3, seed=3, height=H, width=W, stopped=True)
    moving = render_sequence(3, seed=3, height=H, width=W)
    for frame in stopped.frames:
        np.testing.assert_array_equal(frame.world_from_camera, stopped.frames[0].world_from_camera)
    # the same start (only the start yaw differs: the moving drive starts mid-weave)
    np.testing.assert_allclose(stopped.frames[0].world_from_camera[:3, 3], moving.frames[0].world_from_camera[:3, 3],
                               atol=0.1)
    assert np.all(stopped.ego_speed_mps == 0.0) and stopped.car_speed_mps == moving.car_speed_mps
    assert not np.array_equal(stopped.frames[0].moving, stopped.frames[2].moving)


def test_deterministic_and_prefix_stable() -> None:
    short = render_sequence(2, seed=3, height=H, width=W)
    again = render_sequence(3, seed=3, height=H, width=W)
    other = render_sequence(2, seed=4, height=H, width=W)
    for a, b in zip(short.frames, again.frames):
        np.testing.assert_array_equal(a.depth, b.depth)
        np.testing.assert_array_equal(a.rgb, b.rgb)
        np.testing.assert_array_equal(a.moving, b.moving)
        np.testing.assert_array_equal(a.world_from_camera, b.world_from_camera)
    assert not np.array_equal(short.frames[1].depth, other.frames[1].depth)


def test_any_size_renders_the_same_world() -> None:
    small = render_sequence(2, seed=3, height=24, width=80)
    assert small.frames[1].depth.shape == (24, 80)
    np.testing.assert_array_equal(small.frames[1].world_from_camera,
                                  render_sequence(2, seed=3, height=H, width=W).frames[1].world_from_camera)


@pytest.mark.parametrize("kwargs, message", [
    ({"frames": 1}, r"synthetic frames 1 must be in \[2, 100\]"),
    ({"frames": 101}, r"synthetic frames 101 must be in \[2, 100\]"),
    ({"frames": 3, "seed": -1}, "synthetic seed -1 must be >= 0"),
    ({"frames": 3, "domain": "mars"}, "unknown synthetic domain 'mars'"),
    ({"frames": 3, "height": 4, "width": 40}, "synthetic height 4 must be in"),
])
def test_bad_arguments_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        render_sequence(**kwargs)

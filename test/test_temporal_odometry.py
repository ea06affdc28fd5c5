"""Odometry buffer, pose interpolation and the camera extrinsic (temporal/odometry.py) on hand-computed poses."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest

from semantic_depth_ros.data.tf_chain import rotation_rpy
from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.temporal.odometry import (
    CameraPoses,
    OdometryBuffer,
    parse_camera_extrinsic,
    world_from_camera,
)

S = 1_000_000_000  # ns per second


def _yaw_quaternion(yaw: float) -> tuple[float, float, float, float]:
    return (0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2))


def test_interpolates_position_linearly_and_orientation_by_slerp() -> None:
    buffer = OdometryBuffer()
    buffer.add(1 * S, (0.0, 0.0, 0.0), _yaw_quaternion(0.0))
    buffer.add(1 * S + S // 10, (1.0, 2.0, -0.4), _yaw_quaternion(math.pi / 2))
    pose = buffer.pose_at(1 * S + S // 40)  # a quarter of the way
    np.testing.assert_allclose(pose[:3, 3], [0.25, 0.5, -0.1], atol=1e-12)
    # slerp turns at constant rate: 22.5 degrees (a normalised lerp would give 20.7)
    np.testing.assert_allclose(pose[:3, :3], rotation_rpy(0.0, 0.0, math.pi / 8), atol=1e-12)
    np.testing.assert_allclose(pose[3], [0, 0, 0, 1])


def test_exact_stamps_return_the_sample_and_outside_stamps_none() -> None:
    buffer = OdometryBuffer()
    buffer.add(2 * S, (1.0, 0.0, 0.0), _yaw_quaternion(0.3))
    assert buffer.pose_at(2 * S)[0, 3] == 1.0  # one sample: only its own stamp has a pose
    assert buffer.pose_at(2 * S + 1) is None
    buffer.add(3 * S // 2 + S, (2.0, 0.0, 0.0), _yaw_quaternion(0.3))  # 2.5 s
    np.testing.assert_allclose(buffer.pose_at(2 * S + S // 2)[:3, :3], rotation_rpy(0, 0, 0.3), atol=1e-12)
    assert buffer.pose_at(2 * S - 1) is None and buffer.pose_at(3 * S) is None


def test_samples_too_far_apart_are_not_interpolated() -> None:
    buffer = OdometryBuffer(max_interval_s=0.5)
    buffer.add(0, (0.0, 0.0, 0.0), _yaw_quaternion(0.0))
    buffer.add(S, (1.0, 0.0, 0.0), _yaw_quaternion(0.0))
    assert buffer.pose_at(S // 2) is None
    buffer.add(S // 2, (0.5, 0.0, 0.0), _yaw_quaternion(0.0))  # now 0.5 s apart on each side
    assert buffer.pose_at(S // 4) is not None


def test_out_of_order_samples_are_sorted_and_capacity_drops_the_oldest() -> None:
    buffer = OdometryBuffer(capacity=3)
    for stamp in (5, 1, 3, 4):
        buffer.add(stamp * S // 10, (float(stamp), 0.0, 0.0), _yaw_quaternion(0.0))
    assert len(buffer) == 3 and buffer.time_span() == (3 * S // 10, 5 * S // 10)
    assert buffer.pose_at(35 * S // 100)[0, 3] == pytest.approx(3.5)
    buffer.add(4 * S // 10, (40.0, 0.0, 0.0), _yaw_quaternion(0.0))  # a repeated stamp replaces its sample
    assert len(buffer) == 3 and buffer.pose_at(4 * S // 10)[0, 3] == 40.0
    buffer.clear()
    assert len(buffer) == 0 and buffer.time_span() is None and buffer.pose_at(0) is None


def test_slerp_takes_the_shorter_arc_when_a_quaternion_is_negated() -> None:
    buffer = OdometryBuffer()
    buffer.add(0, (0.0, 0.0, 0.0), _yaw_quaternion(0.2))
    buffer.add(S // 10, (0.0, 0.0, 0.0), tuple(-q for q in _yaw_quaternion(0.4)))  # same rotation as yaw 0.4
    np.testing.assert_allclose(buffer.pose_at(S // 20)[:3, :3], rotation_rpy(0, 0, 0.3), atol=1e-12)


@pytest.mark.parametrize("stamp, position, orientation, message", [
    (0, (float("nan"), 0.0, 0.0), (0, 0, 0, 1), r"odometry position = \[nan, 0.0, 0.0\] must be finite"),
    (0, (0.0, 0.0, float("inf")), (0, 0, 0, 1), r"odometry position = \[0.0, 0.0, inf\] must be finite"),
    (0, (0.0, 0.0, 0.0), (0, 0, 0, 2), r"odometry orientation = \[0.0, 0.0, 0.0, 2.0\] is not a unit quaternion"),
    (0, (0.0, 0.0, 0.0), (0, 0, 0, 0), r"is not a unit quaternion \(norm 0\)"),
    (0, (0.0, 0.0, 0.0), (0, 0, float("nan"), 1), "odometry orientation .* must be finite"),
    (0, (0.0, 0.0), (0, 0, 0, 1), "odometry position has 2 values, expected 3"),
    (-5, (0.0, 0.0, 0.0), (0, 0, 0, 1), "odometry stamp -5 must be a non-negative integer"),
])
def test_bad_samples_are_rejected_naming_the_value(stamp, position, orientation, message) -> None:
    buffer = OdometryBuffer()
    with pytest.raises(InvalidInputError, match=message):
        buffer.add(stamp, position, orientation)
    assert len(buffer) == 0


def test_nearly_unit_quaternions_are_accepted_and_normalised() -> None:
    buffer = OdometryBuffer()
    buffer.add(0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0005))
    np.testing.assert_allclose(buffer.pose_at(0)[:3, :3], np.eye(3), atol=1e-12)


# the usual base_link -> optical frame rotation: optical z = body x, optical x = -body y, optical y = -body z
OPTICAL_QUATERNION = (-0.5, 0.5, -0.5, 0.5)


def test_camera_extrinsic_and_composition_against_hand_computed_poses() -> None:
    child_from_camera = parse_camera_extrinsic([0.5, 0.0, 1.2, *OPTICAL_QUATERNION])
    np.testing.assert_allclose(child_from_camera[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    world_from_child = np.eye(4)
    world_from_child[:3, :3] = rotation_rpy(0.0, 0.0, math.pi / 2)  # the vehicle faces world +y
    world_from_child[:3, 3] = (10.0, 0.0, 0.0)
    pose = world_from_camera(world_from_child, child_from_camera)
    # 1 m along the optical axis: 1.5 m ahead of the child origin at height 1.2, ahead = world +y
    np.testing.assert_allclose(pose @ [0, 0, 1, 1], [10.0, 1.5, 1.2, 1.0], atol=1e-12)
    np.testing.assert_allclose(pose[:3, 0], [1.0, 0.0, 0.0], atol=1e-12)  # image right = world +x


@pytest.mark.parametrize("values, message", [
    ([0, 0, 0, 0, 0, 1], "camera_extrinsic has 6 values, expected 7"),
    ([0, 0, 0, 0, 0, 0, 1, 0], "camera_extrinsic has 8 values, expected 7"),
    ([0, 0, float("nan"), 0, 0, 0, 1], "camera_extrinsic = .* must be finite"),
    ([0, 0, 0, 0, 0, 0.5, 0.5], r"camera_extrinsic quaternion \(qx, qy, qz, qw\) = .* is not a unit quaternion"),
    ("front", "camera_extrinsic = 'front' is not a list of numbers"),
])
def test_bad_camera_extrinsic_is_rejected_naming_it(values, message) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_camera_extrinsic(values)


def test_camera_poses_compose_and_count_misses() -> None:
    buffer = OdometryBuffer()
    buffer.add(0, (0.0, 0.0, 0.0), _yaw_quaternion(0.0))
    buffer.add(S // 10, (1.0, 0.0, 0.0), _yaw_quaternion(0.0))
    poses = CameraPoses(buffer, parse_camera_extrinsic([0.5, 0.0, 1.2, *OPTICAL_QUATERNION]))
    np.testing.assert_allclose(poses.pose_at(S // 20)[:3, 3], [1.0, 0.0, 1.2], atol=1e-12)
    assert poses.pose_at(S) is None and poses.pose_at(2 * S) is None
    assert poses.misses == 2


def test_concurrent_adds_and_lookups_stay_consistent() -> None:
    buffer = OdometryBuffer(capacity=1000)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for k in range(500):
                buffer.add(k * S // 100, (k * 0.1, 0.0, 0.0), _yaw_quaternion(0.0))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    while thread.is_alive():
        pose = buffer.pose_at(S)
        if pose is not None:
            assert pose[0, 3] == pytest.approx(10.0)
    thread.join()
    assert not errors and len(buffer) == 500


def test_a_refused_sample_leaves_no_pose_across_it_but_its_neighbours_keep_theirs() -> None:
    buffer = OdometryBuffer()
    for k in range(4):
        buffer.add(k * S // 10, (float(k), 0.0, 0.0), _yaw_quaternion(0.0))
    with pytest.raises(InvalidInputError, match=r"odometry position = \[4.0, nan, 0.0\] must be finite"):
        buffer.add(4 * S // 10, (4.0, float("nan"), 0.0), _yaw_quaternion(0.0))
    with pytest.raises(InvalidInputError, match=r"odometry orientation = .* is not a unit quaternion \(norm 2\)"):
        buffer.add(6 * S // 10, (6.0, 0.0, 0.0), (0.0, 0.0, 0.0, 2.0))
    buffer.add(5 * S // 10, (5.0, 0.0, 0.0), _yaw_quaternion(0.0))
    buffer.add(7 * S // 10, (7.0, 0.0, 0.0), _yaw_quaternion(0.0))
    assert buffer.pose_at(3 * S // 10)[0, 3] == pytest.approx(3.0)  # exactly on a good sample
    assert buffer.pose_at(4 * S // 10) is None  # the refused sample's own stamp: not guessed from 3 and 5
    assert buffer.pose_at(35 * S // 100) is None  # between 3 and 5, across the refused 4
    assert buffer.pose_at(5 * S // 10)[0, 3] == pytest.approx(5.0)
    assert buffer.pose_at(65 * S // 100) is None  # across the refused 6
    assert buffer.pose_at(25 * S // 100)[0, 3] == pytest.approx(2.5)
    assert len(buffer) == 6


def test_wait_for_returns_once_a_sample_at_or_after_the_stamp_arrives_even_a_refused_one() -> None:
    buffer = OdometryBuffer()
    buffer.add(1 * S, (0.0, 0.0, 0.0), _yaw_quaternion(0.0))
    assert buffer.wait_for(1 * S, 0.0) and not buffer.wait_for(S + S // 5, 0.01)

    def late(good: bool) -> None:
        try:
            buffer.add(S + S // 5 if good else S + 2 * S // 5, (1.0, 0.0, 0.0), _yaw_quaternion(0.0) if good else (0, 0, 0, 3.0))
        except InvalidInputError:
            pass

    for good, stamp in ((True, S + S // 5), (False, S + 2 * S // 5)):
        thread = threading.Timer(0.05, late, args=(good,))
        thread.start()
        assert buffer.wait_for(stamp, 10.0)  # woken by the sample, long before the timeout
        thread.join()
    assert buffer.pose_at(S + S // 5) is not None and buffer.pose_at(S + 2 * S // 5) is None


def test_wait_for_does_not_wait_on_a_stream_that_has_stopped() -> None:
    buffer = OdometryBuffer(max_interval_s=0.5)
    buffer.add(1 * S, (0.0, 0.0, 0.0), _yaw_quaternion(0.0))
    started = time.monotonic()
    assert not buffer.wait_for(2 * S, 5.0)  # the newest sample is 1 s old: odometry stopped, no 5 s stall
    assert time.monotonic() - started < 1.0
    assert not buffer.wait_for(1 * S + S // 10, 0.05)  # 0.1 s after the newest: worth its short wait

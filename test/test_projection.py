"""Point projection into sparse depth images (shared by KITTI and the rosbag extraction)."""

import numpy as np
import pytest

from semantic_depth_ros.data.projection import pixel_indices, project_points_to_depth, transform_points
from semantic_depth_ros.data.tf_chain import invert_rigid, make_transform, rigid_transform, rotation_rpy
from semantic_depth_ros.errors import InvalidInputError

K = np.array([[100.0, 0.0, 50.0], [0.0, 80.0, 40.0], [0.0, 0.0, 1.0]])


def test_point_lands_on_its_pixel_with_its_z():
    # u = 100 * 1 / 10 + 50 = 60, v = 80 * 0.5 / 10 + 40 = 44
    depth = project_points_to_depth(np.array([[1.0, 0.5, 10.0]]), K, 120, 90)
    assert depth.dtype == np.float32 and depth.shape == (90, 120)
    assert depth[44, 60] == 10.0
    assert np.count_nonzero(depth) == 1


def test_pixel_is_rounded_half_up():
    unit = np.eye(3)  # u = x / z, v = y / z
    depth = project_points_to_depth(np.array([[60.49, 20.49, 1.0]]), unit, 120, 90)
    assert depth[20, 60] == 1.0 and np.count_nonzero(depth) == 1
    depth = project_points_to_depth(np.array([[60.5, 20.5, 1.0]]), unit, 120, 90)
    assert depth[21, 61] == 1.0 and np.count_nonzero(depth) == 1
    depth = project_points_to_depth(np.array([[-0.5, 89.49, 1.0], [-0.51, 5.0, 1.0]]), unit, 120, 90)
    assert depth[89, 0] == 1.0 and np.count_nonzero(depth) == 1


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_nearest_point_wins_whatever_the_order(order):
    ray = np.array([0.2, -0.1, 1.0])
    points = np.stack([ray * 12.0, ray * 3.5, ray * 7.0])[order]
    depth = project_points_to_depth(points, K, 120, 90)
    assert np.count_nonzero(depth) == 1
    assert depth[32, 70] == pytest.approx(3.5)


def test_points_behind_too_close_outside_or_nan_are_dropped():
    points = np.array([
        [0.0, 0.0, -5.0],  # behind
        [0.0, 0.0, 0.05],  # closer than min_depth
        [100.0, 0.0, 1.0],  # right of the image
        [0.0, -100.0, 1.0],  # above the image
        [np.nan, 0.0, 4.0],
        [0.0, 0.0, np.inf],
    ])
    assert np.count_nonzero(project_points_to_depth(points, K, 120, 90)) == 0
    kept = project_points_to_depth(points[1:2], K, 120, 90, min_depth=0.01)
    assert kept[40, 50] == pytest.approx(0.05)


def test_matches_a_per_point_reference_on_random_points():
    rng = np.random.default_rng(3)
    points = np.column_stack([rng.uniform(-6, 6, 3000), rng.uniform(-4, 4, 3000), rng.uniform(-1, 12, 3000)])
    depth = project_points_to_depth(points, K, 120, 90)
    expected = np.zeros((90, 120), dtype=np.float32)
    for x, y, z in points:
        if z < 0.1:
            continue
        col, row = int(np.floor(100 * x / z + 50 + 0.5)), int(np.floor(80 * y / z + 40 + 0.5))
        if 0 <= col < 120 and 0 <= row < 90 and (expected[row, col] == 0 or z < expected[row, col]):
            expected[row, col] = z
    np.testing.assert_array_equal(depth, expected)


def test_transform_points_rotates_then_translates():
    transform = np.eye(4)
    transform[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    transform[:3, 3] = [1.0, 2.0, 3.0]
    out = transform_points(transform, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    np.testing.assert_allclose(out, [[1.0, 3.0, 3.0], [0.0, 2.0, 4.0]])


def test_invalid_inputs_name_the_problem():
    with pytest.raises(InvalidInputError, match="K must be"):
        project_points_to_depth(np.zeros((1, 3)), np.eye(4), 10, 10)
    with pytest.raises(InvalidInputError, match=r"points_cam must be Nx3, got shape \(4,\)"):
        project_points_to_depth(np.zeros(4), K, 10, 10)
    with pytest.raises(InvalidInputError, match="image size must be positive, got 0x10"):
        project_points_to_depth(np.zeros((1, 3)), K, 0, 10)
    with pytest.raises(InvalidInputError, match=r"transform must be 4x4, got shape \(3, 3\)"):
        transform_points(np.eye(3), np.zeros((1, 3)))


def test_pixel_indices_round_half_up_at_pixel_boundaries() -> None:
    K = np.array([[100.0, 0.0, 10.0], [0.0, 50.0, 5.0], [0.0, 0.0, 1.0]])
    # u = 100 * x / z + 10, v = 50 * y / z + 5: u = 12.5 is the boundary between columns 12 and 13
    points = np.array([[0.025, 0.0, 1.0], [0.0249, 0.0, 1.0], [-0.2, 0.09, 2.0]])
    row, col = pixel_indices(points, K)
    np.testing.assert_array_equal(col, [13.0, 12.0, 0.0])
    np.testing.assert_array_equal(row, [5.0, 5.0, 7.0])


def test_rigid_transform_helpers() -> None:
    rotation = rotation_rpy(0.0, np.pi / 2, 0.0)
    np.testing.assert_allclose(rotation @ [1.0, 0.0, 0.0], [0.0, 0.0, -1.0], atol=1e-15)  # pitch tilts x to -z
    np.testing.assert_allclose(rotation_rpy(0.0, 0.0, np.pi / 2) @ [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], atol=1e-15)
    transform = rigid_transform(rotation_rpy(0.1, -0.2, 0.3), (1.0, -2.0, 3.0))
    np.testing.assert_allclose(invert_rigid(transform) @ transform, np.eye(4), atol=1e-15)
    np.testing.assert_array_equal(make_transform((1.0, 2.0, 3.0), (0.0, 0.0, 0.0, 1.0)),
                                  rigid_transform(np.eye(3), (1.0, 2.0, 3.0)))

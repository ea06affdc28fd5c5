"""The oblique 3-D view of the demo: a hand-built cloud (a road plane and a box) lands where a pinhole projection
puts it, the nearer surface wins, and the organised cloud renders coloured by class and by image colour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.evaluation.cloud_view import BACKGROUND, ObliqueView, cloud_views, neighbour_gaps, render_points

ROAD, BOX, WALL = (128, 64, 128), (0, 0, 142), (70, 70, 70)


def grid(x: tuple[float, float], y: tuple[float, float], z: tuple[float, float], n: int = 60) -> np.ndarray:
    """Points filling an axis-aligned rectangle (one of the ranges has equal ends)."""
    xs, ys, zs = (np.linspace(a, b, n) for a, b in (x, y, z))
    if x[0] == x[1]:
        g = np.meshgrid(ys, zs, indexing="ij")
        return np.stack([np.full(g[0].size, x[0]), g[0].ravel(), g[1].ravel()], axis=1)
    if y[0] == y[1]:
        g = np.meshgrid(xs, zs, indexing="ij")
        return np.stack([g[0].ravel(), np.full(g[0].size, y[0]), g[1].ravel()], axis=1)
    g = np.meshgrid(xs, ys, indexing="ij")
    return np.stack([g[0].ravel(), g[1].ravel(), np.full(g[0].size, z[0])], axis=1)


def hand_view_pixel(point: np.ndarray, view: ObliqueView) -> tuple[float, float]:
    """Where a pinhole at (0, -up, -back) pitched down towards the look-at point sees ``point`` (by hand)."""
    pitch = math.atan2(view.ground_m + view.up_m, view.look_ahead_m + view.back_m)  # down from the horizon
    x, y, z = point[0], point[1] + view.up_m, point[2] + view.back_m
    y_view = y * math.cos(pitch) - z * math.sin(pitch)
    z_view = y * math.sin(pitch) + z * math.cos(pitch)
    return view.focal_px * x / z_view + view.width / 2, view.focal_px * y_view / z_view + view.height / 2


def test_a_level_view_at_the_camera_is_the_camera_itself():
    view = ObliqueView(width=200, height=100, back_m=0.0, up_m=0.0, ground_m=0.0, look_ahead_m=10.0)
    u, v, z = view.project(np.array([[1.0, -0.5, 4.0]]))
    assert u[0] == pytest.approx(view.focal_px * 0.25 + 100) and v[0] == pytest.approx(view.focal_px * -0.125 + 50)
    assert z[0] == pytest.approx(4.0)


def test_plane_and_box_land_where_the_pinhole_puts_them_and_the_box_hides_what_is_behind():
    view = ObliqueView(width=320, height=200, grid_far_m=0.0)  # no grid lines: only points
    road = grid((-6, 6), (view.ground_m, view.ground_m), (2, 40), n=200)
    box = grid((-1, 1), (view.ground_m - 1.5, view.ground_m), (12, 12))  # the box's face towards the camera
    wall = grid((-1, 1), (view.ground_m - 0.5, view.ground_m), (14, 14))  # lower, behind the box: hidden by it
    points = np.concatenate([road, wall, box])
    colours = np.array([ROAD] * len(road) + [WALL] * len(wall) + [BOX] * len(box), dtype=np.uint8)
    image = render_points(points, colours, view, size_px=np.full(len(points), 3))
    centre = np.array([0.0, view.ground_m - 0.75, 12.0])
    u, v = hand_view_pixel(centre, view)
    assert tuple(image[int(v), int(u)]) == BOX
    assert not (image == WALL).all(axis=2).any()  # the wall is exactly behind the box: never visible
    road_point = np.array([4.0, view.ground_m, 30.0])
    u, v = hand_view_pixel(road_point, view)
    assert tuple(image[int(v), int(u)]) == ROAD
    top_left = hand_view_pixel(np.array([-1.0, view.ground_m - 1.5, 12.0]), view)
    box_pixels = np.argwhere((image == BOX).all(axis=2))
    assert box_pixels[:, 1].min() == pytest.approx(top_left[0], abs=3)  # the box's left edge where it projects
    assert box_pixels[:, 0].min() == pytest.approx(top_left[1], abs=3)  # and its top edge
    sky = image[2, 2]
    assert tuple(sky) == BACKGROUND


def test_organised_cloud_renders_by_class_and_by_image_colour():
    h, w, fx = 20, 30, 25.0
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    z = np.full((h, w), 10.0, dtype=np.float32)
    cloud = np.zeros((h, w, 4), dtype=np.float32)
    cloud[..., 0], cloud[..., 1], cloud[..., 2] = (cols - w / 2) * z / fx, (rows - h / 2) * z / fx, z
    cloud[..., 3] = np.array([(200 << 16) | (10 << 8) | 20], dtype=np.uint32).view(np.float32)[0]
    cloud[0, 0, :3] = np.nan  # an invalid point is skipped
    classes = np.zeros((h, w, 3), dtype=np.uint8)
    classes[:] = BOX
    by_class, by_image = cloud_views(cloud, classes, ObliqueView(width=160, height=100, grid_far_m=0.0))
    assert by_class.shape == by_image.shape == (100, 160, 3)
    assert (by_class == BOX).all(axis=2).sum() > 50
    assert (by_image == (200, 10, 20)).all(axis=2).sum() == (by_class == BOX).all(axis=2).sum()
    with pytest.raises(InvalidInputError, match="one size"):
        cloud_views(cloud, classes[:-1])


def test_grid_is_drawn_on_the_ground_with_distance_labels():
    image = render_points(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.uint8), ObliqueView())
    assert (image != BACKGROUND).any(axis=2).mean() > 0.01  # lines and labels
    assert (image[:20] == BACKGROUND).all()  # above the horizon of the grid's far end: nothing


def test_neighbour_gaps_follow_the_surface_not_the_depth_edge():
    view = ObliqueView(width=200, height=100, back_m=0.0, up_m=0.0, ground_m=0.0, look_ahead_m=10.0)  # the camera
    rows, cols = np.mgrid[0:4, 0:6].astype(np.float64)
    z = np.where(cols < 3, 5.0, 20.0)  # a near surface on the left, a far one on the right
    points = np.stack([(cols - 3) * 0.1 * z / 5.0, (rows - 2) * 0.1 * z / 5.0, z], axis=-1)
    gaps = neighbour_gaps(points, view)
    spacing = view.focal_px * 0.1 / 5.0  # both surfaces are 0.1 * z / 5 m apart: the same view spacing
    np.testing.assert_allclose(gaps, spacing, rtol=1e-9)  # the points at the edge (columns 2, 3) too

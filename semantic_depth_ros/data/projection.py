"""Project 3-D points into a sparse depth image (the one projection used by KITTI and rosbag extraction).

Conventions: points are in a camera optical frame (x right, y down, z forward, metres); ``K`` is the 3x3
pinhole matrix of the (rectified) image; pixel ``(row, col)`` covers ``[col - 0.5, col + 0.5) x
[row - 0.5, row + 0.5)`` so a point lands at ``col = floor(u + 0.5)``, ``row = floor(v + 0.5)`` with
``u = (fx*x + s*y)/z + cx`` and ``v = fy*y/z + cy``. When several points land on one pixel the nearest
(smallest z) wins. Output depth is the z coordinate (metres), 0 where no point landed.
"""

from __future__ import annotations

import numpy as np

from semantic_depth_ros.errors import InvalidInputError


def transform_points(transform: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 rigid transform to Nx3 points: ``p' = R @ p + t``; returns Nx3 float64."""
    transform = np.asarray(transform, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if transform.shape != (4, 4):
        raise InvalidInputError(f"transform must be 4x4, got shape {transform.shape}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise InvalidInputError(f"points must be Nx3, got shape {points.shape}")
    return points @ transform[:3, :3].T + transform[:3, 3]


def pixel_indices(points_cam: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) float64 (N,) of the pixels that Nx3 camera-frame points land on (module docstring's rule).

    No bounds or depth checks: points with ``z <= 0`` give meaningless (or non-finite) indices; callers mask them.
    """
    x, y, z = points_cam[:, 0], points_cam[:, 1], points_cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (K[0, 0] * x + K[0, 1] * y) / z + K[0, 2]
        v = K[1, 1] * y / z + K[1, 2]
    return np.floor(v + 0.5), np.floor(u + 0.5)


def project_points_to_depth(
    points_cam: np.ndarray,
    K: np.ndarray,
    width: int,
    height: int,
    *,
    min_depth: float = 0.1,
) -> np.ndarray:
    """Render Nx3 camera-frame points (metres) into an HxW float32 depth map (metres, 0 = no point).

    Points with non-finite coordinates, with ``z < min_depth`` or landing outside the image are dropped;
    the nearest point wins on each pixel.
    """
    K = np.asarray(K, dtype=np.float64)
    points = np.asarray(points_cam, dtype=np.float64)
    if K.shape != (3, 3) or not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InvalidInputError(f"K must be a finite 3x3 matrix with positive fx, fy, got {K.tolist()}")
    if points.ndim != 2 or points.shape[1] != 3:
        raise InvalidInputError(f"points_cam must be Nx3, got shape {points.shape}")
    if int(width) <= 0 or int(height) <= 0:
        raise InvalidInputError(f"image size must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    depth = np.zeros((height, width), dtype=np.float32)

    keep = np.all(np.isfinite(points), axis=1) & (points[:, 2] >= min_depth)
    points = points[keep]
    if points.shape[0] == 0:
        return depth
    z = points[:, 2]
    row, col = pixel_indices(points, K)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    flat = row[inside].astype(np.int64) * width + col[inside].astype(np.int64)
    z = z[inside]
    # Sort by pixel, then by depth: the first entry of each pixel run is the nearest point.
    order = np.lexsort((z, flat))
    flat, z = flat[order], z[order]
    first = np.ones(flat.shape[0], dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    depth.reshape(-1)[flat[first]] = z[first]
    return depth

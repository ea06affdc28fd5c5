"""The published KITTI Eigen-split ground truth: Velodyne points projected by the reference procedure.

Every published Eigen-split number (monodepth, monodepth2, BTS, the paper's Table I) is computed against depth
maps made by one procedure, monodepth2's ``kitti_utils.generate_depth_map(calib_dir, velo, cam=2,
vel_depth=True)``, which inherits two quirks of the KITTI devkit. We follow it exactly:

1. ``(u, v)`` is the projection of a point with ``P_rect_0c @ R_rect_00 @ velo_to_cam`` (homogeneous, divided by
   its third coordinate), and its pixel is ``col = np.round(u) - 1``, ``row = np.round(v) - 1``: the devkit's
   MATLAB 1-based indexing kept on purpose. ``np.round`` rounds halves to even (``np.round(2.5) == 2``,
   ``np.round(3.5) == 4``), unlike MATLAB's round half away from zero; the reference Python procedure uses
   ``np.round`` and so do we. (It only matters for a point exactly on a pixel boundary.)
2. The depth written is the point's forward coordinate in the Velodyne frame (its ``x``), not the camera ``z``.
   Points with ``x < 0`` are dropped (``x >= 0`` is kept, as in the reference); where several points share a
   pixel, the smallest value wins. Pixels outside ``0 <= col < width``, ``0 <= row < height`` are dropped.

One difference, on purpose: monodepth2 finds shared pixels with ``sub2ind`` = ``row * (width - 1) + col - 1``,
which also merges pixel ``(r, width - 1)`` with ``(r + 1, 0)``; we take the minimum per true pixel. Only the
first and last image columns can differ, and the Garg/Eigen crops exclude both, so the metrics are the same.

Training targets and rosbag extraction keep the geometric projection (:mod:`semantic_depth_ros.data.projection`:
pixel ``floor(u + 0.5)``, camera z): it is the right one for learning; this one exists so evaluation numbers
compare with the literature.
"""

from __future__ import annotations

import numpy as np

from semantic_depth_ros.errors import InvalidInputError


def reference_velodyne_depth(points: np.ndarray, velo_to_image: np.ndarray, width: int, height: int) -> np.ndarray:
    """HxW float32 depth (metres, 0 = no point) of Nx3+ Velodyne points (x forward, metres) by the reference rules.

    ``velo_to_image`` is the 3x4 ``P_rect_0c @ R_rect_00 @ velo_to_cam`` of the camera
    (:attr:`semantic_depth_ros.data.kitti.KittiCalibration.velo_to_image`); ``width``, ``height`` in pixels
    (the reference uses the calibration's ``S_rect`` size).
    """
    projection = np.asarray(velo_to_image, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    if projection.shape != (3, 4) or not np.all(np.isfinite(projection)):
        raise InvalidInputError(f"velo_to_image must be a finite 3x4 matrix, got shape {projection.shape}")
    if points.ndim != 2 or points.shape[1] < 3:
        raise InvalidInputError(f"Velodyne points must be Nx3 or Nx4, got shape {points.shape}")
    if int(width) <= 0 or int(height) <= 0:
        raise InvalidInputError(f"image size must be positive, got {width}x{height}")
    width, height = int(width), int(height)
    depth = np.zeros((height, width), dtype=np.float32)

    points = points[points[:, 0] >= 0, :3]
    homogeneous = np.column_stack([points, np.ones(len(points))])
    projected = homogeneous @ projection.T
    with np.errstate(divide="ignore", invalid="ignore"):  # z == 0 gives inf/NaN, dropped by the bounds test
        col = np.round(projected[:, 0] / projected[:, 2]) - 1
        row = np.round(projected[:, 1] / projected[:, 2]) - 1
        inside = (col >= 0) & (row >= 0) & (col < width) & (row < height)
    flat = row[inside].astype(np.int64) * width + col[inside].astype(np.int64)
    forward = points[inside, 0]
    order = np.lexsort((forward, flat))  # by pixel, then by depth: the first of each pixel run is the smallest
    flat, forward = flat[order], forward[order]
    first = np.ones(flat.shape[0], dtype=bool)
    first[1:] = flat[1:] != flat[:-1]
    depth.reshape(-1)[flat[first]] = forward[first]
    return depth

"""Simulated spinning LiDAR: a 64-beam, 360 degree scan of the same scene as the camera, from its own mount."""

from __future__ import annotations

import numpy as np

from semantic_depth_ros.data.projection import pixel_indices
from semantic_depth_ros.data.synthetic.domains import base_from_lidar
from semantic_depth_ros.data.synthetic.layout import World
from semantic_depth_ros.data.synthetic.raycast import Hits, PinholeRays, SphericalRays, cast, ray_fan

LIDAR_ELEVATIONS_DEG = np.linspace(-24.0, 4.0, 64)
LIDAR_AZIMUTH_STEP_DEG = 0.25  # full 360 degree sweep
LIDAR_MIN_RANGE_M, LIDAR_MAX_RANGE_M = 1.0, 120.0


def lidar_scan(world: World, cam_rays: PinholeRays, cam_hits: Hits) -> np.ndarray:
    """Simulated 64-beam, 360 degree LiDAR scan (Nx3 float32 in the LiDAR frame, 1..120 m, noise-free).

    Elevations -24..+4 degrees, one return per beam every 0.25 degrees of azimuth, cast against the same scene
    as the camera from the LiDAR's own mount; see :func:`_snap_to_pixels` for returns inside the image.
    """
    world_from_lidar = world.world_from_base @ base_from_lidar(world.domain)
    az = np.radians(np.arange(-180.0 + LIDAR_AZIMUTH_STEP_DEG, 180.0 + 1e-9, LIDAR_AZIMUTH_STEP_DEG))
    rays = SphericalRays(world_from_lidar, np.radians(LIDAR_ELEVATIONS_DEG), az)
    hits = cast(world.scene, rays)
    keep = (hits.t >= LIDAR_MIN_RANGE_M) & (hits.t <= LIDAR_MAX_RANGE_M)
    points = hits.points(rays)[keep]
    kept = _snap_to_pixels(world, world_from_lidar, points, hits.prim[keep], hits.face[keep], cam_rays, cam_hits)
    local = (points[kept] - world_from_lidar[:3, 3]) @ world_from_lidar[:3, :3]
    return local.astype(np.float32)


def _snap_to_pixels(world: World, world_from_lidar: np.ndarray, points: np.ndarray, prim: np.ndarray,
                    face: np.ndarray, cam_rays: PinholeRays, cam_hits: Hits) -> np.ndarray:
    """Move LiDAR returns (Nx3 world, in place) that project into the image onto the pixel-centre ray they land on.

    A return landing on pixel ``(floor(v + 0.5), floor(u + 0.5))`` whose camera ray sees the same primitive face
    is replaced by the point that ray hits, if the LiDAR sees that point unoccluded and within range, and dropped
    otherwise (about 0.3% of the image's returns). Projecting the scan then reproduces the rendered depth exactly
    wherever the pixel sees the return's surface, instead of up to a pixel's depth footprint (metres on the road
    far ahead). Returns landing on pixels that see another surface keep their position (parallax behind cars,
    thin objects between pixel centres), as a real scan does. Returns the (N,) mask of returns kept.
    """
    cam = (points - cam_rays.origin) @ cam_rays.world_from_camera[:3, :3]
    intr = cam_rays.intrinsics
    row, col = pixel_indices(cam, intr.matrix())
    inside = (cam[:, 2] > 0) & (col >= 0) & (col < intr.width) & (row >= 0) & (row < intr.height)
    idx = np.flatnonzero(inside)
    r, c = row[idx].astype(np.int64), col[idx].astype(np.int64)
    same = (cam_hits.prim[r, c] == prim[idx]) & (cam_hits.face[r, c] == face[idx])
    idx, r, c = idx[same], r[same], c[same]
    kept = np.ones(points.shape[0], dtype=bool)
    if idx.size == 0:
        return kept
    moved = cam_rays.origin + cam_hits.t[r, c, None] * cam_rays.dirs[r, c]
    fan, order = ray_fan(world_from_lidar, moved)
    seen = np.empty(order.shape[0])
    seen[order] = cast(world.scene, fan).t[0]
    expected = np.linalg.norm(moved - world_from_lidar[:3, 3], axis=1)
    ok = np.abs(seen - expected) <= 1e-6 * expected + 1e-6
    ok &= (expected >= LIDAR_MIN_RANGE_M) & (expected <= LIDAR_MAX_RANGE_M)
    points[idx[ok]] = moved[ok]
    kept[idx[~ok]] = False
    return kept


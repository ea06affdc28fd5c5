"""Exact ray casting against axis-aligned boxes and spheres: the geometry of the generated street scenes.

World frame: x forward along the street, y left, z up, metres; the road surface is ``z = 0``. Rays come in 2-D
grids that share one origin (camera pixels, LiDAR beams x azimuths, or a fan sorted by azimuth). Each primitive is
tested only against the rectangle of the grid whose directions can reach its bounding box, which the grid's own
chart computes conservatively, so a frame costs about one ray-box test per covered pixel, without per-pixel loops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from semantic_depth_ros.geometry.intrinsics import Intrinsics

BOX = 0
SPHERE = 1
SPHERE_FACE = 6  # face code of sphere hits; box faces are 2 * axis + (1 if the outward normal is positive)
_EPS_T = 1e-6  # hits closer than this along the ray (in ray-parameter units) are ignored
_NEAR_Z = 1e-3  # metres; the camera chart clips boxes to z >= _NEAR_Z before projecting them

FACE_NORMALS = np.array(
    [[-1, 0, 0], [1, 0, 0], [0, -1, 0], [0, 1, 0], [0, 0, -1], [0, 0, 1]], dtype=np.float64
)  # outward normal of each box face code 0..5
_FACE_NORMALS_ALL = np.concatenate([FACE_NORMALS, np.zeros((2, 3))])  # codes 0..5, sphere 6 (set per hit), miss -1

_BOX_EDGES = np.array(
    [[0, 1], [2, 3], [4, 5], [6, 7], [0, 2], [1, 3], [4, 6], [5, 7], [0, 4], [1, 5], [2, 6], [3, 7]]
)  # corner index pairs of the 12 box edges (corner bits: x = 1, y = 2, z = 4)


@dataclass(frozen=True)
class Scene:
    """Primitives in the world frame (M of them), with their Cityscapes train id and shading attributes.

    ``lo``/``hi`` (Mx3, metres) are the boxes themselves or the spheres' bounding boxes; ``center``/``radius``
    describe spheres (unused for boxes). ``material`` (M,) int and ``albedo`` (Mx3, linear RGB in [0, 1]) and
    ``params`` (Mx4) are opaque here; the renderer that built the scene interprets them.
    """

    kind: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    center: np.ndarray
    radius: np.ndarray
    label: np.ndarray
    material: np.ndarray
    albedo: np.ndarray
    params: np.ndarray

    def __len__(self) -> int:
        return int(self.kind.shape[0])


@dataclass
class SceneBuilder:
    """Collects boxes and spheres, then freezes them into a :class:`Scene`."""

    _rows: list[tuple] = field(default_factory=list)

    def add_box(
        self, lo: tuple[float, float, float], hi: tuple[float, float, float], label: int, material: int,
        albedo: np.ndarray, params: tuple[float, ...] = (),
    ) -> None:
        """Add the axis-aligned box ``[lo, hi]`` (metres); empty or inverted boxes are ignored."""
        lo_a, hi_a = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        if np.all(hi_a > lo_a):
            self._rows.append((BOX, lo_a, hi_a, (lo_a + hi_a) / 2, 0.0, label, material, albedo, params))

    def add_sphere(
        self, center: tuple[float, float, float], radius: float, label: int, material: int,
        albedo: np.ndarray, params: tuple[float, ...] = (),
    ) -> None:
        """Add the sphere of ``radius`` metres around ``center``."""
        c = np.asarray(center, dtype=np.float64)
        self._rows.append((SPHERE, c - radius, c + radius, c, float(radius), label, material, albedo, params))

    def remove_if(self, keep_out: list[np.ndarray], margin: float) -> None:
        """Drop every primitive whose bounding box, grown by ``margin`` metres, contains one of the points."""
        def clear(row: tuple) -> bool:
            return not any(np.all(p > row[1] - margin) and np.all(p < row[2] + margin) for p in keep_out)
        self._rows = [row for row in self._rows if clear(row)]

    def build(self) -> Scene:
        """Freeze the primitives into arrays."""
        rows = self._rows
        params = np.zeros((len(rows), 4), dtype=np.float64)
        for i, row in enumerate(rows):
            params[i, : len(row[8])] = row[8]
        return Scene(
            kind=np.array([r[0] for r in rows], dtype=np.int8),
            lo=np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 3),
            hi=np.array([r[2] for r in rows], dtype=np.float64).reshape(-1, 3),
            center=np.array([r[3] for r in rows], dtype=np.float64).reshape(-1, 3),
            radius=np.array([r[4] for r in rows], dtype=np.float64),
            label=np.array([r[5] for r in rows], dtype=np.uint8),
            material=np.array([r[6] for r in rows], dtype=np.int16),
            albedo=np.array([r[7] for r in rows], dtype=np.float32).reshape(-1, 3),
            params=params,
        )


class RayGrid(Protocol):
    """Rays from one ``origin`` (3,) along ``dirs`` (RxCx3, world frame), with their :class:`RayArrays`."""

    origin: np.ndarray
    dirs: np.ndarray
    arrays: "RayArrays"

    def regions(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Mx4 int64 ``[row0, row1, col0, col1)`` of the rays that may hit each world box ``[lo, hi]`` (Mx3);
        an empty range means that no ray can hit it."""


@dataclass(frozen=True)
class RayArrays:
    """Direction components of a grid split by axis (3xRxC, no exact zeros), their reciprocals and the squared
    lengths (RxC): the contiguous layout the slab and sphere tests read."""

    axes: np.ndarray
    inv: np.ndarray
    norm2: np.ndarray

    @staticmethod
    def of(dirs: np.ndarray) -> "RayArrays":
        """Prepare the arrays of the direction grid ``dirs`` (RxCx3)."""
        axes = np.ascontiguousarray(np.moveaxis(np.where(dirs == 0.0, 1e-12, dirs), -1, 0))
        return RayArrays(axes=axes, inv=1.0 / axes, norm2=(axes * axes).sum(axis=0))


def box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Corners (Mx8x3) of the M boxes ``[lo, hi]`` (Mx3); corner ``i`` takes ``hi`` on axis ``k`` if bit k is set."""
    bits = ((np.arange(8)[:, None] >> np.arange(3)[None, :]) & 1).astype(bool)
    return np.where(bits[None], hi[:, None, :], lo[:, None, :])


def _index_ranges(lo: np.ndarray, hi: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Ranges [start, stop) of the integers i in [0, count) with lo <= i <= hi, widened by one on each side.

    ``lo = +inf`` / ``hi = -inf`` give empty ranges.
    """
    start = np.clip(np.ceil(np.clip(lo, -1.0, count + 1.0)) - 1, 0, count)
    stop = np.clip(np.floor(np.clip(hi, -2.0, count + 1.0)) + 2, 0, count)
    return start.astype(np.int64), stop.astype(np.int64)


@dataclass
class PinholeRays:
    """One ray through every pixel centre of a pinhole camera (``dirs`` HxWx3 have unit optical z, so ``t`` = depth).

    ``world_from_camera`` is the 4x4 pose of the optical frame (x right, y down, z forward) in the world.
    """

    intrinsics: Intrinsics
    world_from_camera: np.ndarray
    origin: np.ndarray = field(init=False)
    dirs: np.ndarray = field(init=False)
    arrays: RayArrays = field(init=False)

    def __post_init__(self) -> None:
        rot = self.world_from_camera[:3, :3]
        self.origin = self.world_from_camera[:3, 3].astype(np.float64)
        intr = self.intrinsics
        u = (np.arange(intr.width, dtype=np.float64) - intr.cx) / intr.fx
        v = (np.arange(intr.height, dtype=np.float64) - intr.cy) / intr.fy
        # dirs_world = x * rot[:, 0] + y * rot[:, 1] + rot[:, 2], built by broadcasting (HxWx3).
        self.dirs = u[None, :, None] * rot[:, 0] + v[:, None, None] * rot[:, 1] + rot[:, 2]
        self.arrays = RayArrays.of(self.dirs)

    def regions(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Pixel rectangles covered by the projections of the boxes clipped to ``z >= _NEAR_Z`` (Mx4)."""
        cam = (box_corners(lo, hi) - self.origin) @ self.world_from_camera[:3, :3]  # Mx8x3, optical frame
        a, b = cam[:, _BOX_EDGES[:, 0]], cam[:, _BOX_EDGES[:, 1]]
        za, zb = a[..., 2] - _NEAR_Z, b[..., 2] - _NEAR_Z
        crossing = za * zb < 0
        frac = np.where(crossing, za / np.where(crossing, za - zb, 1.0), 0.0)
        cut = a + frac[..., None] * (b - a)
        pts = np.concatenate([cam, cut], axis=1)  # Mx20x3: corners in front and edge/near-plane crossings
        valid = np.concatenate([cam[..., 2] >= _NEAR_Z, crossing], axis=1)
        z = np.maximum(pts[..., 2], _NEAR_Z)
        intr = self.intrinsics
        u = intr.fx * pts[..., 0] / z + intr.cx
        v = intr.fy * pts[..., 1] / z + intr.cy
        r0, r1 = _index_ranges(np.where(valid, v, np.inf).min(1), np.where(valid, v, -np.inf).max(1), intr.height)
        c0, c1 = _index_ranges(np.where(valid, u, np.inf).min(1), np.where(valid, u, -np.inf).max(1), intr.width)
        return np.stack([r0, r1, c0, c1], axis=1)


def _angular_bounds(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """Conservative azimuth min/max and elevation min/max (radians, each (M,)) of sensor-frame boxes (Mx3).

    Azimuth is ``atan2(y, x)`` in (-pi, pi]; a box touching the cut at azimuth pi gets the full circle. The
    elevation bound uses the nearest and farthest horizontal distance of the box (corners alone are not enough).
    """
    x0, y0, z0 = lo.T
    x1, y1, z1 = hi.T
    az = np.arctan2(np.stack([y0, y0, y1, y1]), np.stack([x0, x1, x0, x1]))
    wraps = (y0 <= 0.0) & (y1 >= 0.0) & (x0 <= 0.0)
    az_min = np.where(wraps, -np.pi, az.min(axis=0))
    az_max = np.where(wraps, np.pi, az.max(axis=0))
    rho_min = np.hypot(np.maximum(np.maximum(x0, -x1), 0.0), np.maximum(np.maximum(y0, -y1), 0.0))
    rho_max = np.hypot(np.maximum(np.abs(x0), np.abs(x1)), np.maximum(np.abs(y0), np.abs(y1)))
    el_max = np.arctan2(z1, np.where(z1 > 0, rho_min, rho_max))
    el_min = np.arctan2(z0, np.where(z0 > 0, rho_max, rho_min))
    return az_min, az_max, el_min, el_max


@dataclass
class SphericalRays:
    """Rays of a spinning multi-beam sensor (or any fan of rays) from the origin of ``world_from_sensor``.

    ``elevations`` (R,) radians ascending, or None for rows of unknown elevation; ``azimuths`` (C,) radians
    ascending in (-pi, pi]. ``sensor_dirs`` (RxCx3) are unit directions in the sensor frame (x forward, y left,
    z up) whose azimuth is ``azimuths[col]``; when omitted they are built from the elevation/azimuth grid.
    """

    world_from_sensor: np.ndarray
    elevations: np.ndarray | None
    azimuths: np.ndarray
    sensor_dirs: np.ndarray | None = None
    origin: np.ndarray = field(init=False)
    dirs: np.ndarray = field(init=False)
    arrays: RayArrays = field(init=False)

    def __post_init__(self) -> None:
        if self.sensor_dirs is None:
            el = self.elevations[:, None]
            az = self.azimuths[None, :]
            self.sensor_dirs = np.stack(
                np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), axis=-1
            )
        self.origin = self.world_from_sensor[:3, 3].astype(np.float64)
        self.dirs = self.sensor_dirs @ self.world_from_sensor[:3, :3].T
        self.arrays = RayArrays.of(self.dirs)

    def regions(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """Beam rows and azimuth columns that may hit each world box, via its bounding box in the sensor frame."""
        local = (box_corners(lo, hi) - self.origin) @ self.world_from_sensor[:3, :3]
        az_min, az_max, el_min, el_max = _angular_bounds(local.min(axis=1), local.max(axis=1))
        cols = self.azimuths.shape[0]
        c0 = np.clip(np.searchsorted(self.azimuths, az_min, side="left") - 1, 0, cols)
        c1 = np.clip(np.searchsorted(self.azimuths, az_max, side="right") + 1, 0, cols)
        if self.elevations is None:
            r0, r1 = np.zeros_like(c0), np.full_like(c0, self.dirs.shape[0])
        else:
            rows = self.elevations.shape[0]
            r0 = np.clip(np.searchsorted(self.elevations, el_min, side="left") - 1, 0, rows)
            r1 = np.clip(np.searchsorted(self.elevations, el_max, side="right") + 1, 0, rows)
        return np.stack([r0, r1, c0, c1], axis=1).astype(np.int64)


def ray_fan(world_from_sensor: np.ndarray, targets_world: np.ndarray) -> tuple[SphericalRays, np.ndarray]:
    """A 1xN fan of unit rays from the sensor origin towards ``targets_world`` (Nx3), sorted by azimuth.

    Returns the fan and ``order``: fan column j points at target ``order[j]``.
    """
    local = (targets_world - world_from_sensor[:3, 3]) @ world_from_sensor[:3, :3]
    local = local / np.linalg.norm(local, axis=1, keepdims=True)
    az = np.arctan2(local[:, 1], local[:, 0])
    order = np.argsort(az, kind="stable")
    return SphericalRays(world_from_sensor, None, az[order], sensor_dirs=local[order][None, :, :]), order


@dataclass(frozen=True)
class Hits:
    """Nearest hit per ray (RxC): ray parameter ``t`` (inf = miss), primitive index (-1 = miss), face code."""

    t: np.ndarray
    prim: np.ndarray
    face: np.ndarray

    def points(self, rays: RayGrid) -> np.ndarray:
        """World points of the hits (RxCx3, metres; non-finite where missed)."""
        with np.errstate(invalid="ignore"):
            return rays.origin + self.t[..., None] * rays.dirs


def _box_t(origin: np.ndarray, inv: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Entry parameter (inf = miss) of the rays ``origin + t * d`` into the box [lo, hi]; ``inv`` = 1/d (3x...)."""
    t_in = t_out = None
    for k in range(3):
        a = (lo[k] - origin[k]) * inv[k]
        b = (hi[k] - origin[k]) * inv[k]
        near, far = np.minimum(a, b), np.maximum(a, b)
        t_in = near if t_in is None else np.maximum(t_in, near)
        t_out = far if t_out is None else np.minimum(t_out, far)
    return np.where((t_in <= t_out) & (t_in > _EPS_T), t_in, np.inf)


def _sphere_t(origin: np.ndarray, axes: np.ndarray, norm2: np.ndarray, center: np.ndarray, radius: float
              ) -> np.ndarray:
    """Entry parameter (inf = miss) of the rays ``origin + t * d`` into a sphere; ``axes`` = d (3x...)."""
    oc = origin - center
    b = axes[0] * oc[0] + axes[1] * oc[1] + axes[2] * oc[2]
    disc = b * b - norm2 * (float(oc @ oc) - radius * radius)
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / norm2
    return np.where((disc >= 0) & (t > _EPS_T), t, np.inf)


def _face_codes(scene: Scene, rays: RayGrid, prim: np.ndarray) -> np.ndarray:
    """Face code of each hit (RxC int8, -1 = miss): the box slab entered last, or SPHERE_FACE."""
    face = np.full(prim.shape, -1, dtype=np.int8)
    hit = prim >= 0
    idx = prim[hit]
    inv = rays.arrays.inv[:, hit].T  # Nx3
    a = (scene.lo[idx] - rays.origin) * inv
    b = (scene.hi[idx] - rays.origin) * inv
    axis = np.minimum(a, b).argmax(axis=1)
    positive = np.take_along_axis(inv, axis[:, None], axis=1)[:, 0] < 0  # entered against the ray
    codes = (2 * axis + positive).astype(np.int8)
    face[hit] = np.where(scene.kind[idx] == SPHERE, SPHERE_FACE, codes)
    return face


def cast(scene: Scene, rays: RayGrid) -> Hits:
    """Nearest hit of every ray of the grid against every primitive of the scene (z-buffer over primitives)."""
    shape = rays.dirs.shape[:2]
    t = np.full(shape, np.inf)
    prim = np.full(shape, -1, dtype=np.int32)
    arrays = rays.arrays
    regions = rays.regions(scene.lo, scene.hi)
    for j in np.flatnonzero((regions[:, 1] > regions[:, 0]) & (regions[:, 3] > regions[:, 2])):
        r0, r1, c0, c1 = regions[j]
        if scene.kind[j] == BOX:
            tj = _box_t(rays.origin, arrays.inv[:, r0:r1, c0:c1], scene.lo[j], scene.hi[j])
        else:
            tj = _sphere_t(rays.origin, arrays.axes[:, r0:r1, c0:c1], arrays.norm2[r0:r1, c0:c1],
                           scene.center[j], float(scene.radius[j]))
        t_view, prim_view = t[r0:r1, c0:c1], prim[r0:r1, c0:c1]
        closer = tj < t_view
        t_view[closer] = tj[closer]
        prim_view[closer] = j
    return Hits(t=t, prim=prim, face=_face_codes(scene, rays, prim))


def surface_normals(scene: Scene, prim: np.ndarray, face: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Outward unit normals (Nx3) of N hits on primitives ``prim`` (N,) with face codes ``face`` at ``points``."""
    normals = _FACE_NORMALS_ALL[face]
    sph = np.flatnonzero(face == SPHERE_FACE)
    idx = prim[sph]
    normals[sph] = (points[sph] - scene.center[idx]) / scene.radius[idx, None]
    return normals

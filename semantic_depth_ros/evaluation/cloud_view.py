"""The node's point cloud as rviz2 would show it: z-buffered points seen from behind and above the camera, over a
ground grid in metres (numpy and OpenCV only, ROS-free).

Points are in the camera optical frame (REP-103: x right, y down, z forward, metres). The view is a virtual pinhole
camera ``back_m`` behind and ``up_m`` above the real one, looking at a point ``look_ahead_m`` ahead on the ground
(``ground_m`` below the camera). Each point of an organised cloud is drawn as a square as large as the gap to its
image neighbours seen from the view (so surfaces close without holes: a road seen from above spreads its rows
apart), and the nearest point wins every view pixel (a z-buffer by sorting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidInputError
from ..geometry.pointcloud import unpack_rgb

BACKGROUND = (24, 24, 32)
GRID_COLOUR = (90, 90, 105)
TEXT_COLOUR = (235, 235, 240)
MAX_SPLAT_PX = 5


@dataclass(frozen=True)
class ObliqueView:
    """A virtual camera behind and above the real one; sizes in pixels, distances in metres, angles in degrees."""

    width: int = 480
    height: int = 300
    fov_deg: float = 60.0  # horizontal field of view
    back_m: float = 14.0
    up_m: float = 8.0
    look_ahead_m: float = 22.0
    ground_m: float = 1.65  # the road's distance below the camera (its y in the optical frame)
    grid_step_m: float = 10.0
    grid_far_m: float = 50.0
    grid_half_width_m: float = 20.0

    @property
    def focal_px(self) -> float:
        return 0.5 * self.width / math.tan(math.radians(self.fov_deg) / 2.0)

    def view_from_optical(self) -> tuple[np.ndarray, np.ndarray]:
        """Rotation R (3x3) and translation t (3,) with ``p_view = R @ p_optical + t`` (view frame: x right,
        y down, z along the line of sight)."""
        eye = np.array([0.0, -self.up_m, -self.back_m])
        target = np.array([0.0, self.ground_m, self.look_ahead_m])
        forward = (target - eye) / np.linalg.norm(target - eye)
        right = np.cross(forward, np.array([0.0, -1.0, 0.0]))  # optical "up" is -y
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        rotation = np.stack([right, down, forward])
        return rotation, -rotation @ eye

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nx3 optical-frame points -> pixel u, v (float) and depth along the line of sight (m) in the view."""
        rotation, translation = self.view_from_optical()
        in_view = points @ rotation.T + translation
        z = in_view[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = self.focal_px * in_view[:, 0] / z + self.width / 2.0
            v = self.focal_px * in_view[:, 1] / z + self.height / 2.0
        return u, v, z


def render_points(points: np.ndarray, colours: np.ndarray, view: ObliqueView,
                  size_px: np.ndarray | None = None) -> np.ndarray:
    """HxWx3 uint8 RGB: ``points`` (Nx3 metres, optical frame; non-finite rows skipped) coloured ``colours`` (Nx3
    uint8), each a square of side ``size_px`` (N,) view pixels (1 without; at most ``MAX_SPLAT_PX``), the nearest
    point winning each pixel, over the ground grid."""
    points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    colours = np.asarray(colours, dtype=np.uint8).reshape(-1, 3)
    if len(points) != len(colours):
        raise InvalidInputError(f"{len(points)} points but {len(colours)} colours")
    image = np.empty((view.height, view.width, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    draw_ground_grid(image, view)
    u, v, z = view.project(points)
    keep = np.isfinite(points).all(axis=1) & (z > 0.1)
    u, v, z, colours = u[keep], v[keep], z[keep], colours[keep]
    if size_px is None:
        size = np.ones(len(z), dtype=np.int64)
    else:
        size = np.clip(np.nan_to_num(np.ceil(np.asarray(size_px, dtype=np.float64)[keep]), nan=1.0), 1,
                       MAX_SPLAT_PX).astype(np.int64)
    us, vs, zs, index = [], [], [], []
    for side in range(1, MAX_SPLAT_PX + 1):  # squares of each size: side x side pixels from the point's corner
        chosen = np.flatnonzero(size == side)
        if not chosen.size:
            continue
        for dy in range(side):
            for dx in range(side):
                us.append(np.floor(u[chosen] - side / 2.0 + 0.5).astype(np.int64) + dx)
                vs.append(np.floor(v[chosen] - side / 2.0 + 0.5).astype(np.int64) + dy)
                zs.append(z[chosen])
                index.append(chosen)
    if not us:
        draw_grid_labels(image, view)
        return image
    uu, vv, zz, ii = (np.concatenate(a) for a in (us, vs, zs, index))
    inside = (uu >= 0) & (uu < view.width) & (vv >= 0) & (vv < view.height)
    pixel = vv[inside] * view.width + uu[inside]
    order = np.lexsort((zz[inside], pixel))  # by pixel, nearest first
    first = np.ones(order.size, dtype=bool)
    first[1:] = pixel[order][1:] != pixel[order][:-1]
    winners = order[first]
    image.reshape(-1, 3)[pixel[winners]] = colours[ii[inside][winners]]
    draw_grid_labels(image, view)  # on top: a label hidden by the cloud tells nothing
    return image


def draw_ground_grid(image: np.ndarray, view: ObliqueView) -> None:
    """Lines on the road plane every ``grid_step_m`` (across and along the street); in place."""
    step, far, half = view.grid_step_m, view.grid_far_m, view.grid_half_width_m
    ahead = np.arange(0.0, far + 1e-6, step)
    across = np.arange(-half, half + 1e-6, step)
    segments = [((-half, z), (half, z)) for z in ahead] + [((x, 0.0), (x, far)) for x in across]
    for (x0, z0), (x1, z1) in segments:
        samples = np.linspace(0.0, 1.0, 64)[:, None]
        line = np.concatenate([x0 + (x1 - x0) * samples, np.full_like(samples, view.ground_m),
                               z0 + (z1 - z0) * samples], axis=1)
        u, v, z = view.project(line)
        visible = z > 0.1
        polyline = np.stack([u[visible], v[visible]], axis=1)
        if len(polyline) >= 2:
            cv2.polylines(image, [np.round(polyline).astype(np.int32)], False, GRID_COLOUR, 1, cv2.LINE_AA)


def draw_grid_labels(image: np.ndarray, view: ObliqueView) -> None:
    """The distance ahead of the camera (metres) of each line across the street; in place."""
    ahead = np.arange(view.grid_step_m, view.grid_far_m + 1e-6, view.grid_step_m)
    half = view.grid_half_width_m
    for distance in ahead:
        u, v, z = view.project(np.array([[0.3 * half, view.ground_m, distance]]))
        if z[0] > 0.1 and 0 <= v[0] < view.height:
            for colour, thickness in ((BACKGROUND, 3), (TEXT_COLOUR, 1)):  # outlined: readable over the cloud
                cv2.putText(image, f"{distance:g} m", (int(u[0]), int(v[0]) - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                            colour, thickness, cv2.LINE_AA)


def neighbour_gaps(points: np.ndarray, view: ObliqueView) -> np.ndarray:
    """h x w view-pixel size of each point of an organised cloud (h x w x 3): per image axis the nearer of its two
    neighbours' distance in the view (so a point at a depth edge takes its own surface's spacing), then the larger
    of the two axes; NaN where the point or both neighbours are missing."""
    h, w = points.shape[:2]
    u, v, _ = view.project(points.reshape(-1, 3).astype(np.float64))
    uv = np.stack([u.reshape(h, w), v.reshape(h, w)], axis=-1)
    gaps = []
    for axis in (0, 1):
        step = np.linalg.norm(np.diff(uv, axis=axis), axis=-1)
        pad = [(0, 0), (0, 0)]
        pad[axis] = (1, 0)
        before = np.pad(step, pad, constant_values=np.nan)
        pad[axis] = (0, 1)
        after = np.pad(step, pad, constant_values=np.nan)
        gaps.append(np.fmin(before, after))
    return np.fmax(*gaps)


def cloud_views(cloud: np.ndarray, class_colours: np.ndarray, view: ObliqueView | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    """The node's organised cloud (h x w x 4 float32: x, y, z, packed rgb; NaN = no point) from ``view``, coloured
    by class (``class_colours``: h x w x 3 uint8, the node's semantic colours at the cloud's size) and by the
    image's own colour."""
    view = view or ObliqueView()
    if cloud.ndim != 3 or cloud.shape[2] < 4 or class_colours.shape[:2] != cloud.shape[:2]:
        raise InvalidInputError(f"cloud {cloud.shape} and class colours {class_colours.shape} must be h x w x 4 "
                                "and h x w x 3 of one size")
    flat = cloud.reshape(-1, cloud.shape[2])
    points = flat[:, :3].astype(np.float64)
    sizes = neighbour_gaps(cloud[..., :3], view).reshape(-1)
    by_class = render_points(points, class_colours.reshape(-1, 3), view, sizes)
    by_image = render_points(points, unpack_rgb(flat[:, 3]), view, sizes)
    return by_class, by_image

"""The two generated domains: camera, sensor rig, layout distribution and palette, and their validation.

``kitti_like`` (wide KITTI camera, suburban layout, sunny palette) and ``cityscapes_like`` (longer focal length,
1:2 images, narrow tall streets with parked cars, trees and front-yard hedges, overcast palette). The
``cityscapes_like`` layout follows Cityscapes' class shares (its fine training set is roughly a third road, a fifth
building, a seventh vegetation, 6 % car and 5 % sidewalk): 24 frames at 160x320 give road 36 %, building 27 %,
vegetation 14 %, car 9 %, sidewalk 7 % (before: car 26 %, vegetation 4 %, which taught the network that a street
is lined with cars). Its drives turn (``heading_deg``), so some views meet the street at an angle.

Rig poses follow the package's frame convention (:mod:`semantic_depth_ros.data.synthetic`): ``base_from_camera``
maps optical-frame coordinates to ``base_link``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np

from semantic_depth_ros.data.tf_chain import rigid_transform, rotation_rpy
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.geometry.intrinsics import Intrinsics, scale_intrinsics
from semantic_depth_ros.labels import BUILDING, CAR, POLE, ROAD, SIDEWALK, SKY, TERRAIN, TRAFFIC_SIGN, VEGETATION

DOMAINS: tuple[str, ...] = ("kitti_like", "cityscapes_like")
TASKS: tuple[str, ...] = ("depth", "semantic", "both")

LABELS: tuple[int, ...] = (ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, CAR)

MAX_DEPTH_M = 200.0  # hits farther than this (optical z) count as sky
MIN_SIZE, MAX_SIZE = 8, 4096  # accepted image height/width in pixels

# Shading materials of the scene primitives (interpreted by shading.py).
M_ROAD, M_SIDEWALK, M_TERRAIN, M_FACADE, M_BODY, M_CABIN, M_PLAIN, M_LEAVES = range(8)

Range = tuple[float, float]


@dataclass(frozen=True)
class Layout:
    """Distribution of one domain's street layouts (metres unless stated; ranges are uniform)."""

    lanes: tuple[int, int]
    lane_width: Range
    parking_prob: float  # per side: a parking strip along the curb
    sidewalk: Range
    curb: Range
    setback_prob: float
    setback: Range
    building_height: Range
    segment_length: Range
    gap_prob: float
    parked_prob: float  # per parking slot
    traffic: tuple[int, int]  # number of moving cars
    pole_spacing: Range
    sign_prob: float
    lamp_prob: float
    tree_prob: float
    tree_spacing: Range
    hedge_prob: float
    end_wall_prob: float
    end_wall_distance: Range


@dataclass(frozen=True)
class Palette:
    """Colours (linear RGB in [0, 1]) and lighting of one domain."""

    road: tuple[float, float, float]
    sidewalk: tuple[float, float, float]
    terrain: tuple[float, float, float]
    vegetation: tuple[float, float, float]
    trunk: tuple[float, float, float]
    pole: tuple[float, float, float]
    signs: tuple[tuple[float, float, float], ...]
    facades: tuple[tuple[float, float, float], ...]
    cars: tuple[tuple[float, float, float], ...]
    glass: tuple[float, float, float]
    marking: tuple[float, float, float]
    sky_horizon: tuple[float, float, float]
    sky_zenith: tuple[float, float, float]
    sun_elevation_deg: Range
    ambient: float
    diffuse: float
    fog_distance: float
    tint: tuple[float, float, float]
    jitter: float  # per-object relative colour jitter


@dataclass(frozen=True)
class Domain:
    """Camera, sensor rig, pose jitter, layout and palette of one generated domain."""

    name: str
    native: Intrinsics
    camera_xyz: tuple[float, float, float]  # optical centre in base_link, metres
    camera_pitch_deg: float  # nose-down tilt of the camera on its mount
    lidar_xyz: tuple[float, float, float]
    lidar_rpy_deg: tuple[float, float, float]
    pitch_jitter_deg: float
    roll_jitter_deg: float
    yaw_jitter_deg: float
    height_jitter: float
    layout: Layout
    palette: Palette
    # sd (degrees, clipped at 2.5 sd) of a single frame's heading off the street's axis, as in a drive through turns
    # (0: along the street, up to the yaw jitter). Drives (``sequence.render_sequence``) start along the street.
    heading_deg: float = 0.0


KITTI_LIKE = Domain(
    name="kitti_like",
    native=Intrinsics(fx=721.5, fy=721.5, cx=609.6, cy=172.9, width=1242, height=375),
    camera_xyz=(1.07, 0.06, 1.65),
    camera_pitch_deg=0.0,
    lidar_xyz=(0.80, 0.0, 1.73),
    lidar_rpy_deg=(0.3, -0.5, 1.2),
    pitch_jitter_deg=0.35,
    roll_jitter_deg=0.25,
    yaw_jitter_deg=1.0,
    height_jitter=0.015,
    layout=Layout(
        lanes=(2, 3), lane_width=(3.0, 3.6), parking_prob=0.5, sidewalk=(1.8, 3.5), curb=(0.10, 0.16),
        setback_prob=0.6, setback=(2.0, 10.0), building_height=(5.0, 14.0), segment_length=(10.0, 28.0),
        gap_prob=0.25, parked_prob=0.35, traffic=(0, 4), pole_spacing=(18.0, 40.0), sign_prob=0.3,
        lamp_prob=0.5, tree_prob=0.6, tree_spacing=(7.0, 16.0), hedge_prob=0.4, end_wall_prob=0.2,
        end_wall_distance=(90.0, 180.0),
    ),
    palette=Palette(
        road=(0.36, 0.36, 0.38), sidewalk=(0.62, 0.58, 0.54), terrain=(0.42, 0.52, 0.25),
        vegetation=(0.22, 0.42, 0.16), trunk=(0.35, 0.25, 0.18), pole=(0.45, 0.45, 0.47),
        signs=((0.85, 0.75, 0.20), (0.80, 0.15, 0.10), (0.15, 0.30, 0.75)),
        facades=((0.75, 0.65, 0.52), (0.82, 0.78, 0.70), (0.60, 0.42, 0.35), (0.70, 0.70, 0.66)),
        cars=((0.90, 0.90, 0.90), (0.65, 0.66, 0.68), (0.10, 0.10, 0.11), (0.70, 0.12, 0.10),
              (0.15, 0.25, 0.60), (0.15, 0.35, 0.20)),
        glass=(0.10, 0.12, 0.16), marking=(0.88, 0.88, 0.85),
        sky_horizon=(0.80, 0.86, 0.93), sky_zenith=(0.35, 0.55, 0.85),
        sun_elevation_deg=(25.0, 55.0), ambient=0.45, diffuse=0.75, fog_distance=350.0,
        tint=(1.0, 1.0, 1.0), jitter=0.08,
    ),
)

CITYSCAPES_LIKE = Domain(
    name="cityscapes_like",
    native=Intrinsics(fx=1131.3, fy=1132.7, cx=523.8, cy=259.1, width=1024, height=512),
    camera_xyz=(1.70, 0.10, 1.22),
    camera_pitch_deg=2.2,
    lidar_xyz=(1.20, -0.15, 1.85),
    lidar_rpy_deg=(-0.4, 0.6, -1.5),
    pitch_jitter_deg=0.3,
    roll_jitter_deg=0.2,
    yaw_jitter_deg=0.8,
    height_jitter=0.01,
    layout=Layout(
        lanes=(1, 2), lane_width=(2.8, 3.3), parking_prob=0.9, sidewalk=(2.0, 4.0), curb=(0.12, 0.18),
        setback_prob=0.35, setback=(0.5, 6.0), building_height=(10.0, 26.0), segment_length=(8.0, 20.0),
        gap_prob=0.12, parked_prob=0.25, traffic=(0, 3), pole_spacing=(10.0, 22.0), sign_prob=0.5,
        lamp_prob=0.4, tree_prob=0.7, tree_spacing=(5.0, 12.0), hedge_prob=0.6, end_wall_prob=0.45,
        end_wall_distance=(70.0, 170.0),
    ),
    palette=Palette(
        road=(0.30, 0.31, 0.30), sidewalk=(0.55, 0.55, 0.56), terrain=(0.45, 0.48, 0.30),
        vegetation=(0.25, 0.36, 0.18), trunk=(0.30, 0.24, 0.20), pole=(0.35, 0.36, 0.38),
        signs=((0.90, 0.90, 0.90), (0.75, 0.10, 0.12), (0.10, 0.25, 0.65)),
        facades=((0.62, 0.60, 0.57), (0.48, 0.47, 0.46), (0.70, 0.62, 0.52), (0.55, 0.50, 0.48)),
        cars=((0.55, 0.56, 0.58), (0.08, 0.08, 0.09), (0.85, 0.85, 0.86), (0.10, 0.15, 0.35),
              (0.40, 0.38, 0.36), (0.45, 0.08, 0.08)),
        glass=(0.08, 0.09, 0.10), marking=(0.80, 0.80, 0.78),
        sky_horizon=(0.86, 0.88, 0.90), sky_zenith=(0.62, 0.68, 0.76),
        sun_elevation_deg=(30.0, 60.0), ambient=0.70, diffuse=0.30, fog_distance=180.0,
        tint=(0.96, 1.02, 0.97), jitter=0.06,
    ),
    # Cityscapes' drives turn through a city: a view at an angle to the street shows near facades, poles and cars
    # as large as the wide KITTI camera sees them at its image edges (which a 48-degree lens looking down the street
    # never does). Through the demo's node on 24 frames, three runs against one: vegetation IoU 0.61 -> 0.65-0.69,
    # road 0.63 -> 0.67-0.79, mIoU 0.494 -> 0.504-0.518; car 0.69 -> 0.63-0.67.
    heading_deg=10.0,
)

DOMAIN_SPECS: dict[str, Domain] = {"kitti_like": KITTI_LIKE, "cityscapes_like": CITYSCAPES_LIKE}


_OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: x right, y down, z fwd


def base_from_camera(dom: Domain) -> np.ndarray:
    """Pose of the camera optical frame in base_link (maps camera coordinates to base_link)."""
    rot = rotation_rpy(0.0, np.radians(dom.camera_pitch_deg), 0.0) @ _OPTICAL_IN_BODY
    return rigid_transform(rot, dom.camera_xyz)


def base_from_lidar(dom: Domain) -> np.ndarray:
    """Pose of the LiDAR frame (x forward, y left, z up) in base_link."""
    return rigid_transform(rotation_rpy(*np.radians(dom.lidar_rpy_deg)), dom.lidar_xyz)



def domain_spec(domain: str) -> Domain:
    """The spec of ``domain`` or ConfigError naming it."""
    if domain not in DOMAIN_SPECS:
        raise ConfigError(f"unknown synthetic domain {domain!r} (expected one of: {', '.join(DOMAINS)})")
    return DOMAIN_SPECS[domain]


def check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high], or ConfigError naming ``name`` and the value."""
    if isinstance(value, bool):
        raise ConfigError(f"synthetic {name} {value!r} must be an integer")
    try:
        number = operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise ConfigError(f"synthetic {name} {value!r} must be an integer") from None
    if number < low or (high is not None and number > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ConfigError(f"synthetic {name} {number} must be {bound}")
    return number


def domain_intrinsics(domain: str, height: int | None = None, width: int | None = None) -> Intrinsics:
    """Intrinsics of ``domain``'s camera at ``height`` x ``width`` (native size when both are None; one of them
    alone keeps the native aspect ratio). Scaling uses :func:`scale_intrinsics`."""
    native = domain_spec(domain).native
    if height is None and width is None:
        return native
    if height is None:
        width = check_int("width", width, MIN_SIZE, MAX_SIZE)
        height = max(MIN_SIZE, round(width * native.height / native.width))
    elif width is None:
        height = check_int("height", height, MIN_SIZE, MAX_SIZE)
        width = max(MIN_SIZE, round(height * native.width / native.height))
    height = check_int("height", height, MIN_SIZE, MAX_SIZE)
    width = check_int("width", width, MIN_SIZE, MAX_SIZE)
    return scale_intrinsics(native, width, height)


"""Generated street scenes in two domains: RGB, metric depth, Cityscapes train ids and a simulated LiDAR scan.

The stand-ins for the paper's heterogeneous data: ``kitti_like`` (wide KITTI camera, suburban layout, sunny
palette; its datasets carry depth) and ``cityscapes_like`` (longer focal length, 1:2 images, narrow urban
canyons with many parked cars, overcast palette; its datasets carry semantics). Both share one scene grammar:
a road (with lane markings) between curbs, sidewalks, grass, building blocks with per-segment setbacks, cars,
poles with signs, trees and hedges, and sky, ray-cast exactly by :mod:`semantic_depth_ros.data.synthetic_scene`.

Frames: world x forward along the street, y left, z up (road at z = 0); ``base_link`` has the same axes and
moves with the vehicle. ``A_to_B`` 4x4 matrices map coordinates in frame A to frame B: ``p_B = A_to_B @ [p_A, 1]``
(so the pose of B in A, as ``/tf_static`` stores it with parent A and child B, is ``inv(A_to_B)``).
Depth is the optical-frame z of the nearest hit at each pixel centre (metres, 0 = sky or beyond 200 m).
Every output is a deterministic function of (domain, index, seed, size).
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from semantic_depth_ros.data.synthetic_scene import (
    Hits,
    PinholeRays,
    Scene,
    SceneBuilder,
    SphericalRays,
    cast,
    ray_fan,
    surface_normals,
)
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.geometry.intrinsics import Intrinsics, scale_intrinsics

DOMAINS: tuple[str, ...] = ("kitti_like", "cityscapes_like")
TASKS: tuple[str, ...] = ("depth", "semantic", "both")

ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, CAR = 0, 1, 2, 5, 7, 8, 9, 10, 13
LABELS: tuple[int, ...] = (ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN, VEGETATION, TERRAIN, SKY, CAR)

MAX_DEPTH_M = 200.0  # hits farther than this (optical z) count as sky
MIN_SIZE, MAX_SIZE = 8, 4096  # accepted image height/width in pixels
STREET_END_M = 185.0  # geometry ends here, so every hit stays within MAX_DEPTH_M
LIDAR_ELEVATIONS_DEG = np.linspace(-24.0, 4.0, 64)
LIDAR_AZIMUTH_STEP_DEG = 0.25  # full 360 degree sweep
LIDAR_MIN_RANGE_M, LIDAR_MAX_RANGE_M = 1.0, 120.0

# Shading materials (interpreted by _surface_colours).
_M_ROAD, _M_SIDEWALK, _M_TERRAIN, _M_FACADE, _M_BODY, _M_CABIN, _M_PLAIN, _M_LEAVES = range(8)

Range = tuple[float, float]


@dataclass(frozen=True)
class _Layout:
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
class _Palette:
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
class _Domain:
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
    layout: _Layout
    palette: _Palette


_KITTI = _Domain(
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
    layout=_Layout(
        lanes=(2, 3), lane_width=(3.0, 3.6), parking_prob=0.5, sidewalk=(1.8, 3.5), curb=(0.10, 0.16),
        setback_prob=0.6, setback=(2.0, 10.0), building_height=(5.0, 14.0), segment_length=(10.0, 28.0),
        gap_prob=0.25, parked_prob=0.35, traffic=(0, 4), pole_spacing=(18.0, 40.0), sign_prob=0.3,
        lamp_prob=0.5, tree_prob=0.6, tree_spacing=(7.0, 16.0), hedge_prob=0.4, end_wall_prob=0.2,
        end_wall_distance=(90.0, 180.0),
    ),
    palette=_Palette(
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

_CITYSCAPES = _Domain(
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
    layout=_Layout(
        lanes=(1, 2), lane_width=(2.8, 3.3), parking_prob=0.85, sidewalk=(2.5, 5.0), curb=(0.12, 0.18),
        setback_prob=0.15, setback=(0.5, 3.0), building_height=(10.0, 26.0), segment_length=(8.0, 20.0),
        gap_prob=0.08, parked_prob=0.75, traffic=(1, 6), pole_spacing=(10.0, 22.0), sign_prob=0.5,
        lamp_prob=0.4, tree_prob=0.3, tree_spacing=(9.0, 20.0), hedge_prob=0.1, end_wall_prob=0.45,
        end_wall_distance=(70.0, 170.0),
    ),
    palette=_Palette(
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
)

_DOMAIN_SPECS: dict[str, _Domain] = {"kitti_like": _KITTI, "cityscapes_like": _CITYSCAPES}


# ---------------------------------------------------------------------------------------------------------------
# Rigid transforms


def _rotation(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation Rz(yaw) @ Ry(pitch) @ Rx(roll), radians (positive pitch tilts x towards -z)."""
    cr, sr, cp, sp, cyw, syw = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cyw, -syw, 0], [syw, cyw, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _pose(rot: np.ndarray, xyz: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """4x4 float64 transform with rotation ``rot`` and translation ``xyz`` (metres)."""
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = xyz
    return out


def _inverse(transform: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform."""
    rot, trans = transform[:3, :3], transform[:3, 3]
    return _pose(rot.T, -rot.T @ trans)


_OPTICAL_IN_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: x right, y down, z fwd


def _base_from_camera(dom: _Domain) -> np.ndarray:
    """Pose of the camera optical frame in base_link (maps camera coordinates to base_link)."""
    rot = _rotation(0.0, np.radians(dom.camera_pitch_deg), 0.0) @ _OPTICAL_IN_BODY
    return _pose(rot, dom.camera_xyz)


def _base_from_lidar(dom: _Domain) -> np.ndarray:
    """Pose of the LiDAR frame (x forward, y left, z up) in base_link."""
    return _pose(_rotation(*np.radians(dom.lidar_rpy_deg)), dom.lidar_xyz)


# ---------------------------------------------------------------------------------------------------------------
# Scene layout


@dataclass(frozen=True)
class _Street:
    """Cross-section of the generated street (metres, world y) and the frame's lighting."""

    right_curb: float
    left_curb: float
    sidewalk_right: float
    sidewalk_left: float
    curb: float
    dashed_lines: tuple[float, ...]
    solid_lines: tuple[float, ...]
    sun: np.ndarray  # unit vector towards the sun, world frame
    exposure: float


@dataclass(frozen=True)
class _World:
    """One frame's scene, street description and vehicle pose (``world_from_base``)."""

    domain: _Domain
    scene: Scene
    street: _Street
    world_from_base: np.ndarray


def _jitter(rng: np.random.Generator, colour: tuple[float, float, float], amount: float) -> np.ndarray:
    """``colour`` scaled per channel by a factor in [1 - amount, 1 + amount] (and overall brightness)."""
    scale = rng.uniform(1 - amount, 1 + amount, 3) * rng.uniform(1 - amount, 1 + amount)
    return np.clip(np.asarray(colour) * scale, 0.0, 1.0)


def _street_cross_section(dom: _Domain, rng: np.random.Generator) -> tuple[_Street, float, list[float]]:
    """Sample the street's cross-section; returns it, the ego lateral position and the traffic lane centres."""
    lay = dom.layout
    lanes = int(rng.integers(lay.lanes[0], lay.lanes[1] + 1))
    lane_w = rng.uniform(*lay.lane_width)
    park_r, park_l = (2.2 if rng.random() < lay.parking_prob else 0.0 for _ in range(2))
    right_lane_edge = -lanes * lane_w / 2
    centres = [right_lane_edge + (i + 0.5) * lane_w for i in range(lanes)]
    ego_lane = 0 if lanes == 1 or rng.random() < 0.6 else int(rng.integers(0, lanes))
    ego_y = centres[ego_lane] + rng.uniform(-0.35, 0.35)
    el = np.radians(rng.uniform(*dom.palette.sun_elevation_deg))
    az = rng.uniform(-np.pi, np.pi)
    street = _Street(
        right_curb=right_lane_edge - park_r,
        left_curb=-right_lane_edge + park_l,
        sidewalk_right=rng.uniform(*lay.sidewalk),
        sidewalk_left=rng.uniform(*lay.sidewalk),
        curb=rng.uniform(*lay.curb),
        dashed_lines=tuple(right_lane_edge + i * lane_w for i in range(1, lanes)),
        solid_lines=(right_lane_edge, -right_lane_edge),
        sun=np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)]),
        exposure=rng.uniform(0.92, 1.08),
    )
    return street, ego_y, centres


def _add_ground(b: SceneBuilder, dom: _Domain, st: _Street, rng: np.random.Generator) -> None:
    """Road, raised sidewalks (their side faces are the curbs) and grass beyond them, to the end of the street."""
    pal, x0, x1 = dom.palette, -40.0, STREET_END_M
    b.add_box((x0, st.right_curb, -1.0), (x1, st.left_curb, 0.0), ROAD, _M_ROAD, _jitter(rng, pal.road, 0.05))
    tile = (rng.uniform(0.4, 0.8),)
    for side, curb, width in ((1, st.left_curb, st.sidewalk_left), (-1, st.right_curb, st.sidewalk_right)):
        outer = curb + side * width
        ylo, yhi = sorted((curb, outer))
        b.add_box((x0, ylo, -1.0), (x1, yhi, st.curb), SIDEWALK, _M_SIDEWALK, _jitter(rng, pal.sidewalk, 0.05), tile)
        glo, ghi = sorted((outer, outer + side * 70.0))
        b.add_box((x0, glo, -1.0), (x1, ghi, st.curb), TERRAIN, _M_TERRAIN, _jitter(rng, pal.terrain, 0.06))


def _add_buildings(b: SceneBuilder, dom: _Domain, st: _Street, rng: np.random.Generator, end_x: float) -> None:
    """Building blocks along both sides: one box per segment, with its own setback, height and facade."""
    lay, pal = dom.layout, dom.palette
    for side, edge in ((1, st.left_curb + st.sidewalk_left), (-1, st.right_curb - st.sidewalk_right)):
        x = rng.uniform(-30.0, -10.0)
        while x < end_x:
            length = rng.uniform(*lay.segment_length)
            if rng.random() < lay.gap_prob:
                _add_hedge(b, dom, rng, x, min(x + length, end_x), edge + side * rng.uniform(0.5, 3.0))
                x += length
                continue
            setback = rng.uniform(*lay.setback) if rng.random() < lay.setback_prob else 0.0
            face = edge + side * setback
            depth = rng.uniform(12.0, 25.0)
            height = rng.uniform(*lay.building_height)
            ylo, yhi = sorted((face, face + side * depth))
            colour = _jitter(rng, pal.facades[int(rng.integers(len(pal.facades)))], pal.jitter)
            windows = (rng.uniform(2.2, 3.5), rng.uniform(2.8, 3.6), rng.uniform(0.0, 3.0), height)
            b.add_box((x, ylo, 0.0), (min(x + length, end_x), yhi, height), BUILDING, _M_FACADE, colour, windows)
            if setback > 2.5 and rng.random() < lay.hedge_prob:
                _add_hedge(b, dom, rng, x, min(x + length, end_x), edge + side * rng.uniform(0.4, setback - 1.5))
            x += length


def _add_hedge(b: SceneBuilder, dom: _Domain, rng: np.random.Generator, x0: float, x1: float, y: float) -> None:
    """A hedge (vegetation box) from x0 to x1 centred at lateral position y on the grass."""
    half = rng.uniform(0.3, 0.6)
    height = rng.uniform(0.6, 1.5)
    colour = _jitter(rng, dom.palette.vegetation, dom.palette.jitter)
    b.add_box((x0 + 0.5, y - half, 0.0), (x1 - 0.5, y + half, height), VEGETATION, _M_LEAVES, colour)


def _add_end_wall(b: SceneBuilder, dom: _Domain, rng: np.random.Generator, x: float) -> None:
    """A building block across the street at distance x (a T-junction closing the view)."""
    colour = _jitter(rng, dom.palette.facades[int(rng.integers(len(dom.palette.facades)))], dom.palette.jitter)
    height = rng.uniform(*dom.layout.building_height)
    windows = (rng.uniform(2.2, 3.5), rng.uniform(2.8, 3.6), rng.uniform(0.0, 3.0), height)
    b.add_box((x, -60.0, 0.0), (x + 15.0, 60.0, height), BUILDING, _M_FACADE, colour, windows)


def _add_car(b: SceneBuilder, dom: _Domain, rng: np.random.Generator, x0: float, y: float, length: float) -> None:
    """A car (body, cabin and dark underbody/wheels) with its rear at x0, centred at lateral position y."""
    pal = dom.palette
    width, body_h, clearance = rng.uniform(1.65, 1.9), rng.uniform(0.65, 0.9), rng.uniform(0.2, 0.3)
    colour = _jitter(rng, pal.cars[int(rng.integers(len(pal.cars)))], pal.jitter)
    hw, x1 = width / 2, x0 + length
    b.add_box((x0, y - hw, clearance), (x1, y + hw, clearance + body_h), CAR, _M_BODY, colour)
    b.add_box((x0 + 0.35, y - hw + 0.08, 0.0), (x1 - 0.35, y + hw - 0.08, clearance + 0.02), CAR, _M_PLAIN,
              np.array([0.05, 0.05, 0.05]))
    cab_len = length * rng.uniform(0.45, 0.6)
    cab_x0 = x0 + length * rng.uniform(0.15, 0.3)
    top = clearance + body_h
    b.add_box((cab_x0, y - hw + 0.1, top), (cab_x0 + cab_len, y + hw - 0.1, top + rng.uniform(0.45, 0.6)), CAR,
              _M_CABIN, colour)


def _add_cars(b: SceneBuilder, dom: _Domain, st: _Street, rng: np.random.Generator, centres: list[float],
              ego_y: float) -> None:
    """Parked cars in the parking strips and moving cars in the lanes ahead (none overlapping)."""
    lay = dom.layout
    strips = [y for y, w in ((st.right_curb + 1.1, st.solid_lines[0] - st.right_curb),
                             (st.left_curb - 1.1, st.left_curb - st.solid_lines[1])) if w > 1.0]
    for y in strips:
        x = rng.uniform(-6.0, 0.0)
        while x < 120.0:
            slot = rng.uniform(5.2, 7.0)
            if rng.random() < lay.parked_prob:
                _add_car(b, dom, rng, x + 0.3, y + rng.uniform(-0.15, 0.15), min(slot - 0.8, rng.uniform(3.8, 4.8)))
            x += slot
    occupied: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(lay.traffic[0], lay.traffic[1] + 1))):
        y = centres[int(rng.integers(len(centres)))] + rng.uniform(-0.3, 0.3)
        x0 = rng.uniform(9.0 if abs(y - ego_y) < 1.5 else 4.0, 140.0)
        length = rng.uniform(3.8, 4.8)
        if all(abs(y - oy) > 2.0 or x0 > ox1 + 3.0 or x0 + length < ox0 - 3.0 for oy, ox0, ox1 in occupied):
            occupied.append((y, x0, x0 + length))
            _add_car(b, dom, rng, x0, y, length)


def _add_street_furniture(b: SceneBuilder, dom: _Domain, st: _Street, rng: np.random.Generator) -> None:
    """Poles (with lamp arms and signs) near the curbs and trees on the outer sidewalk, on both sides."""
    lay, pal = dom.layout, dom.palette
    for side, curb, width in ((1, st.left_curb, st.sidewalk_left), (-1, st.right_curb, st.sidewalk_right)):
        x = rng.uniform(0.0, lay.pole_spacing[1])
        while x < 150.0:
            y, half, height = curb + side * rng.uniform(0.35, 0.6), rng.uniform(0.06, 0.12), rng.uniform(4.5, 8.5)
            colour = _jitter(rng, pal.pole, pal.jitter)
            b.add_box((x - half, y - half, 0.0), (x + half, y + half, height), POLE, _M_PLAIN, colour)
            if rng.random() < lay.lamp_prob:
                arm = sorted((y, y - side * rng.uniform(1.2, 2.5)))
                b.add_box((x - 0.06, arm[0], height - 0.15), (x + 0.06, arm[1], height), POLE, _M_PLAIN, colour)
            if rng.random() < lay.sign_prob:
                z0, w = rng.uniform(2.0, 2.8), rng.uniform(0.25, 0.4)
                sign = _jitter(rng, pal.signs[int(rng.integers(len(pal.signs)))], pal.jitter)
                b.add_box((x - half - 0.04, y - w, z0), (x - half, y + w, z0 + 2 * w), TRAFFIC_SIGN, _M_PLAIN, sign)
            x += rng.uniform(*lay.pole_spacing)
        x = rng.uniform(-10.0, 5.0)
        while x < 160.0:
            if rng.random() < lay.tree_prob:
                _add_tree(b, dom, rng, x, curb + side * rng.uniform(0.6, 0.9) * width)
            x += rng.uniform(*lay.tree_spacing)


def _add_tree(b: SceneBuilder, dom: _Domain, rng: np.random.Generator, x: float, y: float) -> None:
    """A tree: trunk box and a crown of one to three spheres."""
    pal = dom.palette
    trunk_h, half = rng.uniform(2.2, 3.5), rng.uniform(0.1, 0.18)
    b.add_box((x - half, y - half, 0.0), (x + half, y + half, trunk_h + 0.5), VEGETATION, _M_PLAIN,
              _jitter(rng, pal.trunk, pal.jitter))
    colour = _jitter(rng, pal.vegetation, pal.jitter)
    radius = rng.uniform(1.3, 2.4)
    for _ in range(int(rng.integers(1, 4))):
        r = radius * rng.uniform(0.7, 1.0)
        centre = (x + rng.uniform(-0.6, 0.6), y + rng.uniform(-0.6, 0.6), trunk_h + r * rng.uniform(0.6, 1.0))
        b.add_sphere(centre, r, VEGETATION, _M_LEAVES, colour)


def _vehicle_pose(dom: _Domain, rng: np.random.Generator, ego_y: float) -> np.ndarray:
    """world_from_base: the vehicle in its lane at x = 0 with small pitch/roll/yaw/height jitter."""
    def jit(sigma: float, clip: float) -> float:
        return float(np.clip(rng.normal(0.0, sigma), -clip * sigma, clip * sigma))
    rot = _rotation(np.radians(jit(dom.roll_jitter_deg, 2.5)), np.radians(jit(dom.pitch_jitter_deg, 2.5)),
                    np.radians(jit(dom.yaw_jitter_deg, 2.5)))
    return _pose(rot, (0.0, ego_y, jit(dom.height_jitter, 2.0)))


def _build_world(dom: _Domain, index: int, seed: int) -> _World:
    """Sample frame ``index`` of ``dom`` for ``seed``: layout, lighting and vehicle pose (independent of image size)."""
    rng = np.random.default_rng([DOMAINS.index(dom.name), seed, index, 0])
    street, ego_y, centres = _street_cross_section(dom, rng)
    world_from_base = _vehicle_pose(dom, rng, ego_y)
    lay = dom.layout
    end_x = rng.uniform(*lay.end_wall_distance) if rng.random() < lay.end_wall_prob else STREET_END_M
    b = SceneBuilder()
    _add_ground(b, dom, street, rng)
    _add_buildings(b, dom, street, rng, end_x)
    if end_x < STREET_END_M:
        _add_end_wall(b, dom, rng, end_x)
    _add_cars(b, dom, street, rng, centres, ego_y)
    _add_street_furniture(b, dom, street, rng)
    sensors = [(world_from_base @ t)[:3, 3] for t in (_base_from_camera(dom), _base_from_lidar(dom))]
    b.remove_if(sensors, margin=0.5)
    return _World(domain=dom, scene=b.build(), street=street, world_from_base=world_from_base)


# ---------------------------------------------------------------------------------------------------------------
# Shading


def _cell_noise(coords: np.ndarray, cell: float, salt: int) -> np.ndarray:
    """Deterministic value in [0, 1) per ``cell``-sized grid cell of ``coords`` (NxK, metres); float32 (N,)."""
    ij = np.floor(coords / cell).astype(np.int64).astype(np.uint32)
    h = np.full(coords.shape[0], salt * 0x9E3779B1 & 0xFFFFFFFF, dtype=np.uint32)
    for k in range(coords.shape[1]):
        h = (h ^ ij[:, k]) * np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
    h = h * np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h.astype(np.float32) / np.float32(2.0**32)


def _road_colour(base: np.ndarray, p: np.ndarray, st: _Street, pal: _Palette) -> np.ndarray:
    """Asphalt with fine and coarse grain, dashed lane lines and solid edge lines."""
    xy = p[:, :2]
    grain = (0.88 + 0.24 * _cell_noise(xy, 0.15, 1)) * (0.95 + 0.1 * _cell_noise(xy, 3.0, 2))
    out = base * grain[:, None]
    marking = np.zeros(p.shape[0], dtype=bool)
    for y in st.solid_lines:
        marking |= np.abs(p[:, 1] - y) < 0.08
    dash = np.mod(p[:, 0], 9.0) < 3.5
    for y in st.dashed_lines:
        marking |= (np.abs(p[:, 1] - y) < 0.07) & dash
    out[marking] = np.asarray(pal.marking, dtype=np.float32)
    return out


def _facade_colour(base: np.ndarray, p: np.ndarray, face: np.ndarray, params: np.ndarray, prim: np.ndarray,
                   pal: _Palette) -> np.ndarray:
    """Facades with a grid of windows (floors and bays from the building's params), roofs darker."""
    along = np.where(face < 2, p[:, 1], p[:, 0])  # faces normal to x run along y, the others along x
    bay = (along - params[:, 2]) / params[:, 0]
    storey = p[:, 2] / params[:, 1]
    fb, fs = bay - np.floor(bay), storey - np.floor(storey)
    window = (fb > 0.22) & (fb < 0.78) & (fs > 0.3) & (fs < 0.8) & (p[:, 2] < params[:, 3] - 0.6) & (face < 4)
    out = base * (0.95 + 0.1 * _cell_noise(p, 0.5, 3))[:, None]
    cells = np.stack([np.floor(bay), np.floor(storey), prim.astype(np.float64)], axis=1)
    shade = 0.7 + 0.6 * _cell_noise(cells[window], 1.0, 4)
    out[window] = np.asarray(pal.glass, dtype=np.float32) * shade[:, None]
    out[face == 5] *= 0.6
    return out


def _surface_colours(world: _World, prim: np.ndarray, face: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Textured albedo (Nx3 float32) of N hits on primitives ``prim`` (N,), faces ``face`` at world points ``p``."""
    scene, pal = world.scene, world.domain.palette
    material = scene.material[prim]
    out = scene.albedo[prim]
    sel = material == _M_ROAD
    out[sel] = _road_colour(out[sel], p[sel], world.street, pal)
    sel = (material == _M_SIDEWALK) & (face == 5)
    tiles = p[sel, :2] / scene.params[prim[sel], 0:1]
    grout = np.abs(np.mod(tiles + 0.5, 1.0) - 0.5).min(axis=1) < 0.05
    out[sel] *= (np.where(grout, 0.7, 1.0) * (0.9 + 0.2 * _cell_noise(tiles, 1.0, 5)))[:, None]
    out[(material == _M_SIDEWALK) & (face != 5)] *= 1.15
    sel = material == _M_TERRAIN
    grass = (0.7 + 0.5 * _cell_noise(p[sel, :2], 0.15, 6)) * (0.85 + 0.3 * _cell_noise(p[sel, :2], 1.5, 7))
    out[sel] *= grass[:, None]
    sel = material == _M_FACADE
    out[sel] = _facade_colour(out[sel], p[sel], face[sel], scene.params[prim[sel]], prim[sel], pal)
    out[(material == _M_CABIN) & (face != 5)] = np.asarray(pal.glass, dtype=np.float32)
    sel = material == _M_LEAVES
    out[sel] *= (0.6 + 0.7 * _cell_noise(p[sel], 0.2, 8))[:, None]
    return out


def _sky_colour(dirs: np.ndarray, pal: _Palette) -> np.ndarray:
    """Sky gradient from horizon to zenith with soft cloud bands, for world directions (Nx3, any length)."""
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    el = np.clip(dirs[:, 2], 0.0, 1.0)
    mix = np.sqrt(el)[:, None]
    sky = (1 - mix) * np.asarray(pal.sky_horizon) + mix * np.asarray(pal.sky_zenith)
    az = np.arctan2(dirs[:, 1], dirs[:, 0])
    clouds = 1.0 + 0.04 * np.sin(7.0 * az) * np.sin(40.0 * el)
    return (sky * clouds[:, None]).astype(np.float32)


def _shade(world: _World, rays: PinholeRays, hits: Hits, rng: np.random.Generator) -> np.ndarray:
    """RGB image (HxWx3 uint8): textured albedo x (sky ambient + lambert sun), distance fog, sky, sensor noise."""
    pal, st = world.domain.palette, world.street
    t, prim = hits.t.ravel(), hits.prim.ravel()
    hit = (prim >= 0) & (t <= MAX_DEPTH_M)
    idx, sky = np.flatnonzero(hit), np.flatnonzero(~hit)
    dirs = rays.dirs.reshape(-1, 3)
    d, t, prim, face = dirs[idx], t[idx], prim[idx], hits.face.ravel()[idx]
    p = rays.origin + t[:, None] * d
    normals = surface_normals(world.scene, prim, face, p)
    albedo = _surface_colours(world, prim, face, p)
    light = pal.ambient * (0.8 + 0.2 * normals[:, 2]) + pal.diffuse * np.clip(normals @ st.sun, 0.0, None)
    fog = np.exp(-t * np.sqrt((d * d).sum(axis=1)) / pal.fog_distance)
    horizon = np.asarray(pal.sky_horizon, dtype=np.float32) * np.float32(0.95)
    image = np.empty((hit.shape[0], 3), dtype=np.float32)
    image[idx] = albedo * (light * fog).astype(np.float32)[:, None] + horizon * (1 - fog).astype(np.float32)[:, None]
    image[sky] = _sky_colour(dirs[sky], pal)
    image *= np.asarray(pal.tint, dtype=np.float32) * np.float32(st.exposure)
    image += (rng.random(image.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(0.04)  # sensor noise
    image = np.clip(image, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)
    return image.astype(np.uint8).reshape(hits.t.shape + (3,))


# ---------------------------------------------------------------------------------------------------------------
# Frames


@dataclass(frozen=True)
class SyntheticFrame:
    """One generated frame.

    ``rgb`` HxWx3 uint8; ``depth`` HxW float32 metres (optical z, 0 = sky / no hit); ``semantic`` HxW uint8
    Cityscapes train ids; ``intrinsics`` of this image size; ``lidar_points`` Nx3 float32 metres in the LiDAR frame
    (x forward, y left, z up; empty unless requested); ``base_to_camera``, ``base_to_lidar``, ``lidar_to_camera``
    4x4 float64 mapping coordinates (``p_cam = lidar_to_camera @ [p_lidar, 1]``).
    """

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    intrinsics: Intrinsics
    lidar_points: np.ndarray
    base_to_camera: np.ndarray
    base_to_lidar: np.ndarray
    lidar_to_camera: np.ndarray


def _domain_spec(domain: str) -> _Domain:
    """The spec of ``domain`` or ConfigError naming it."""
    if domain not in _DOMAIN_SPECS:
        raise ConfigError(f"unknown synthetic domain {domain!r} (expected one of: {', '.join(DOMAINS)})")
    return _DOMAIN_SPECS[domain]


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
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
    native = _domain_spec(domain).native
    if height is None and width is None:
        return native
    if height is None:
        width = _check_int("width", width, MIN_SIZE, MAX_SIZE)
        height = max(MIN_SIZE, round(width * native.height / native.width))
    elif width is None:
        height = _check_int("height", height, MIN_SIZE, MAX_SIZE)
        width = max(MIN_SIZE, round(height * native.width / native.height))
    height = _check_int("height", height, MIN_SIZE, MAX_SIZE)
    width = _check_int("width", width, MIN_SIZE, MAX_SIZE)
    return scale_intrinsics(native, width, height)


def _camera_rays(world: _World, intr: Intrinsics) -> PinholeRays:
    """Pixel-centre rays of the frame's camera."""
    world_from_camera = world.world_from_base @ _base_from_camera(world.domain)
    return PinholeRays(intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height, world_from_camera)


def _lidar_scan(world: _World, cam_rays: PinholeRays, cam_hits: Hits) -> np.ndarray:
    """Simulated 64-beam, 360 degree LiDAR scan (Nx3 float32 in the LiDAR frame, 1..120 m, noise-free).

    Elevations -24..+4 degrees, one return per beam every 0.25 degrees of azimuth, cast against the same scene
    as the camera from the LiDAR's own mount; see :func:`_snap_to_pixels` for returns inside the image.
    """
    world_from_lidar = world.world_from_base @ _base_from_lidar(world.domain)
    az = np.radians(np.arange(-180.0 + LIDAR_AZIMUTH_STEP_DEG, 180.0 + 1e-9, LIDAR_AZIMUTH_STEP_DEG))
    rays = SphericalRays(world_from_lidar, np.radians(LIDAR_ELEVATIONS_DEG), az)
    hits = cast(world.scene, rays)
    keep = (hits.t >= LIDAR_MIN_RANGE_M) & (hits.t <= LIDAR_MAX_RANGE_M)
    points = hits.points(rays)[keep]
    kept = _snap_to_pixels(world, world_from_lidar, points, hits.prim[keep], hits.face[keep], cam_rays, cam_hits)
    local = (points[kept] - world_from_lidar[:3, 3]) @ world_from_lidar[:3, :3]
    return local.astype(np.float32)


def _snap_to_pixels(world: _World, world_from_lidar: np.ndarray, points: np.ndarray, prim: np.ndarray,
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
    with np.errstate(divide="ignore", invalid="ignore"):
        col = np.floor(cam_rays.fx * cam[:, 0] / cam[:, 2] + cam_rays.cx + 0.5)
        row = np.floor(cam_rays.fy * cam[:, 1] / cam[:, 2] + cam_rays.cy + 0.5)
    inside = (cam[:, 2] > 0) & (col >= 0) & (col < cam_rays.width) & (row >= 0) & (row < cam_rays.height)
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


def _render_world(world: _World, intr: Intrinsics, noise_seed: tuple[int, ...], with_lidar: bool) -> SyntheticFrame:
    """Ray-cast, label, shade and (optionally) scan one world at the given intrinsics."""
    rays = _camera_rays(world, intr)
    hits = cast(world.scene, rays)
    hit = (hits.prim >= 0) & (hits.t <= MAX_DEPTH_M)
    depth = np.where(hit, hits.t, 0.0).astype(np.float32)
    semantic = np.where(hit, world.scene.label[np.maximum(hits.prim, 0)], SKY).astype(np.uint8)
    rgb = _shade(world, rays, hits, np.random.default_rng(list(noise_seed)))
    lidar = _lidar_scan(world, rays, hits) if with_lidar else np.zeros((0, 3), dtype=np.float32)
    base_to_camera = _inverse(_base_from_camera(world.domain))
    base_from_lidar = _base_from_lidar(world.domain)
    return SyntheticFrame(
        rgb=rgb, depth=depth, semantic=semantic, intrinsics=intr, lidar_points=lidar,
        base_to_camera=base_to_camera, base_to_lidar=_inverse(base_from_lidar),
        lidar_to_camera=base_to_camera @ base_from_lidar,
    )


def render_frame(
    domain: str, index: int, *, seed: int = 0, height: int | None = None, width: int | None = None,
    with_lidar: bool = False,
) -> SyntheticFrame:
    """Render frame ``index`` of ``domain`` (deterministic for domain, index, seed and size).

    ``height``/``width`` in pixels (native size when both are None: 375x1242 kitti_like, 512x1024 cityscapes_like;
    one alone keeps the aspect ratio). The scene does not depend on the size. Raises ConfigError for an unknown
    domain, a size outside [8, 4096] or a negative index/seed.
    """
    dom = _domain_spec(domain)
    index = _check_int("index", index, 0)
    seed = _check_int("seed", seed, 0)
    intr = domain_intrinsics(domain, height, width)
    world = _build_world(dom, index, seed)
    return _render_world(world, intr, (DOMAINS.index(domain), seed, index, 1), with_lidar)


# ---------------------------------------------------------------------------------------------------------------
# Dataset


class SyntheticDataset(Dataset):
    """``length`` generated frames of one domain as training samples (PLAN.md's sample convention).

    ``task`` "depth" gives {"image", "depth", "fx"}, "semantic" {"image", "semantic", "fx"}, "both" all four:
    image float32 3xHxW in [0, 1], depth float32 1xHxW metres (0 = invalid), semantic int64 HxW train ids,
    fx float pixels at HxW. With ``cache`` each frame is rendered once and kept (uint8/float32 arrays).
    """

    def __init__(self, domain: str, task: str, length: int, *, seed: int = 0, height: int, width: int,
                 cache: bool = True) -> None:
        _domain_spec(domain)
        if task not in TASKS:
            raise ConfigError(f"unknown synthetic task {task!r} (expected one of: {', '.join(TASKS)})")
        self.domain = domain
        self.task = task
        self.length = _check_int("length", length, 1)
        self.seed = _check_int("seed", seed, 0)
        self.intrinsics = domain_intrinsics(domain, _check_int("height", height, MIN_SIZE, MAX_SIZE),
                                            _check_int("width", width, MIN_SIZE, MAX_SIZE))
        self.cache = bool(cache)
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return self.length

    def _arrays(self, index: int) -> dict[str, np.ndarray]:
        """The numpy arrays this task needs for frame ``index`` (cached when enabled)."""
        if index in self._cache:
            return self._cache[index]
        intr = self.intrinsics
        frame = render_frame(self.domain, index, seed=self.seed, height=intr.height, width=intr.width)
        arrays = {"rgb": frame.rgb}
        if self.task in ("depth", "both"):
            arrays["depth"] = frame.depth
        if self.task in ("semantic", "both"):
            arrays["semantic"] = frame.semantic
        if self.cache:
            self._cache[index] = arrays
        return arrays

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | float]:
        if not 0 <= index < self.length:
            raise IndexError(f"synthetic dataset index {index} out of range [0, {self.length})")
        arrays = self._arrays(int(index))
        # numpy, not torch ops: torch's intra-op threads make this 300x slower on a busy machine
        image = arrays["rgb"].transpose(2, 0, 1).astype(np.float32, order="C") / np.float32(255.0)
        sample: dict[str, torch.Tensor | float] = {
            "image": torch.from_numpy(image),
            "fx": float(self.intrinsics.fx),
        }
        if "depth" in arrays:
            sample["depth"] = torch.from_numpy(arrays["depth"].copy())[None]
        if "semantic" in arrays:
            sample["semantic"] = torch.from_numpy(arrays["semantic"].astype(np.int64))
        return sample

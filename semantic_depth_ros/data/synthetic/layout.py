"""Street layout: sample one frame's scene (road, sidewalks, buildings, cars, poles, trees) and vehicle pose.

World frame: x forward along the street, y left, z up, metres (road at z = 0). Every draw comes from one
generator seeded by (domain, seed, index), so a frame's scene does not depend on the image size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semantic_depth_ros.data.synthetic.domains import (
    DOMAINS,
    M_BODY,
    M_CABIN,
    M_FACADE,
    M_LEAVES,
    M_PLAIN,
    M_ROAD,
    M_SIDEWALK,
    M_TERRAIN,
    Domain,
    base_from_camera,
    base_from_lidar,
)
from semantic_depth_ros.data.synthetic.raycast import Scene, SceneBuilder
from semantic_depth_ros.data.tf_chain import rigid_transform, rotation_rpy
from semantic_depth_ros.labels import BUILDING, CAR, POLE, ROAD, SIDEWALK, TERRAIN, TRAFFIC_SIGN, VEGETATION

STREET_END_M = 185.0  # geometry ends here, so every hit stays within MAX_DEPTH_M


@dataclass(frozen=True)
class Street:
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
class World:
    """One frame's scene, street description and vehicle pose (``world_from_base``)."""

    domain: Domain
    scene: Scene
    street: Street
    world_from_base: np.ndarray


def _jitter(rng: np.random.Generator, colour: tuple[float, float, float], amount: float) -> np.ndarray:
    """``colour`` scaled per channel by a factor in [1 - amount, 1 + amount] (and overall brightness)."""
    scale = rng.uniform(1 - amount, 1 + amount, 3) * rng.uniform(1 - amount, 1 + amount)
    return np.clip(np.asarray(colour) * scale, 0.0, 1.0)


def _street_cross_section(dom: Domain, rng: np.random.Generator) -> tuple[Street, float, list[float]]:
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
    street = Street(
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


def _add_ground(b: SceneBuilder, dom: Domain, st: Street, rng: np.random.Generator) -> None:
    """Road, raised sidewalks (their side faces are the curbs) and grass beyond them, to the end of the street."""
    pal, x0, x1 = dom.palette, -40.0, STREET_END_M
    b.add_box((x0, st.right_curb, -1.0), (x1, st.left_curb, 0.0), ROAD, M_ROAD, _jitter(rng, pal.road, 0.05))
    tile = (rng.uniform(0.4, 0.8),)
    for side, curb, width in ((1, st.left_curb, st.sidewalk_left), (-1, st.right_curb, st.sidewalk_right)):
        outer = curb + side * width
        ylo, yhi = sorted((curb, outer))
        b.add_box((x0, ylo, -1.0), (x1, yhi, st.curb), SIDEWALK, M_SIDEWALK, _jitter(rng, pal.sidewalk, 0.05), tile)
        glo, ghi = sorted((outer, outer + side * 70.0))
        b.add_box((x0, glo, -1.0), (x1, ghi, st.curb), TERRAIN, M_TERRAIN, _jitter(rng, pal.terrain, 0.06))


def _add_buildings(b: SceneBuilder, dom: Domain, st: Street, rng: np.random.Generator, end_x: float) -> None:
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
            b.add_box((x, ylo, 0.0), (min(x + length, end_x), yhi, height), BUILDING, M_FACADE, colour, windows)
            if setback > 2.5 and rng.random() < lay.hedge_prob:
                _add_hedge(b, dom, rng, x, min(x + length, end_x), edge + side * rng.uniform(0.4, setback - 1.5))
            x += length


def _add_hedge(b: SceneBuilder, dom: Domain, rng: np.random.Generator, x0: float, x1: float, y: float) -> None:
    """A hedge (vegetation box) from x0 to x1 centred at lateral position y on the grass."""
    half = rng.uniform(0.3, 0.6)
    height = rng.uniform(0.6, 1.5)
    colour = _jitter(rng, dom.palette.vegetation, dom.palette.jitter)
    b.add_box((x0 + 0.5, y - half, 0.0), (x1 - 0.5, y + half, height), VEGETATION, M_LEAVES, colour)


def _add_end_wall(b: SceneBuilder, dom: Domain, rng: np.random.Generator, x: float) -> None:
    """A building block across the street at distance x (a T-junction closing the view)."""
    colour = _jitter(rng, dom.palette.facades[int(rng.integers(len(dom.palette.facades)))], dom.palette.jitter)
    height = rng.uniform(*dom.layout.building_height)
    windows = (rng.uniform(2.2, 3.5), rng.uniform(2.8, 3.6), rng.uniform(0.0, 3.0), height)
    b.add_box((x, -60.0, 0.0), (x + 15.0, 60.0, height), BUILDING, M_FACADE, colour, windows)


def add_car(b: SceneBuilder, dom: Domain, rng: np.random.Generator, x0: float, y: float, length: float) -> None:
    """A car (body, cabin and dark underbody/wheels) with its rear at x0, centred at lateral position y."""
    pal = dom.palette
    width, body_h, clearance = rng.uniform(1.65, 1.9), rng.uniform(0.65, 0.9), rng.uniform(0.2, 0.3)
    colour = _jitter(rng, pal.cars[int(rng.integers(len(pal.cars)))], pal.jitter)
    hw, x1 = width / 2, x0 + length
    b.add_box((x0, y - hw, clearance), (x1, y + hw, clearance + body_h), CAR, M_BODY, colour)
    b.add_box((x0 + 0.35, y - hw + 0.08, 0.0), (x1 - 0.35, y + hw - 0.08, clearance + 0.02), CAR, M_PLAIN,
              np.array([0.05, 0.05, 0.05]))
    cab_len = length * rng.uniform(0.45, 0.6)
    cab_x0 = x0 + length * rng.uniform(0.15, 0.3)
    top = clearance + body_h
    b.add_box((cab_x0, y - hw + 0.1, top), (cab_x0 + cab_len, y + hw - 0.1, top + rng.uniform(0.45, 0.6)), CAR,
              M_CABIN, colour)


def _add_cars(b: SceneBuilder, dom: Domain, st: Street, rng: np.random.Generator, centres: list[float],
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
                add_car(b, dom, rng, x + 0.3, y + rng.uniform(-0.15, 0.15), min(slot - 0.8, rng.uniform(3.8, 4.8)))
            x += slot
    occupied: list[tuple[float, float, float]] = []
    for _ in range(int(rng.integers(lay.traffic[0], lay.traffic[1] + 1))):
        y = centres[int(rng.integers(len(centres)))] + rng.uniform(-0.3, 0.3)
        x0 = rng.uniform(9.0 if abs(y - ego_y) < 1.5 else 4.0, 140.0)
        length = rng.uniform(3.8, 4.8)
        if all(abs(y - oy) > 2.0 or x0 > ox1 + 3.0 or x0 + length < ox0 - 3.0 for oy, ox0, ox1 in occupied):
            occupied.append((y, x0, x0 + length))
            add_car(b, dom, rng, x0, y, length)


def _add_street_furniture(b: SceneBuilder, dom: Domain, st: Street, rng: np.random.Generator) -> None:
    """Poles (with lamp arms and signs) near the curbs and trees on the outer sidewalk, on both sides."""
    lay, pal = dom.layout, dom.palette
    for side, curb, width in ((1, st.left_curb, st.sidewalk_left), (-1, st.right_curb, st.sidewalk_right)):
        x = rng.uniform(0.0, lay.pole_spacing[1])
        while x < 150.0:
            y, half, height = curb + side * rng.uniform(0.35, 0.6), rng.uniform(0.06, 0.12), rng.uniform(4.5, 8.5)
            colour = _jitter(rng, pal.pole, pal.jitter)
            b.add_box((x - half, y - half, 0.0), (x + half, y + half, height), POLE, M_PLAIN, colour)
            if rng.random() < lay.lamp_prob:
                arm = sorted((y, y - side * rng.uniform(1.2, 2.5)))
                b.add_box((x - 0.06, arm[0], height - 0.15), (x + 0.06, arm[1], height), POLE, M_PLAIN, colour)
            if rng.random() < lay.sign_prob:
                z0, w = rng.uniform(2.0, 2.8), rng.uniform(0.25, 0.4)
                sign = _jitter(rng, pal.signs[int(rng.integers(len(pal.signs)))], pal.jitter)
                b.add_box((x - half - 0.04, y - w, z0), (x - half, y + w, z0 + 2 * w), TRAFFIC_SIGN, M_PLAIN, sign)
            x += rng.uniform(*lay.pole_spacing)
        x = rng.uniform(-10.0, 5.0)
        while x < 160.0:
            if rng.random() < lay.tree_prob:
                _add_tree(b, dom, rng, x, curb + side * rng.uniform(0.6, 0.9) * width)
            x += rng.uniform(*lay.tree_spacing)


def _add_tree(b: SceneBuilder, dom: Domain, rng: np.random.Generator, x: float, y: float) -> None:
    """A tree: trunk box and a crown of one to three spheres."""
    pal = dom.palette
    trunk_h, half = rng.uniform(2.2, 3.5), rng.uniform(0.1, 0.18)
    b.add_box((x - half, y - half, 0.0), (x + half, y + half, trunk_h + 0.5), VEGETATION, M_PLAIN,
              _jitter(rng, pal.trunk, pal.jitter))
    colour = _jitter(rng, pal.vegetation, pal.jitter)
    radius = rng.uniform(1.3, 2.4)
    for _ in range(int(rng.integers(1, 4))):
        r = radius * rng.uniform(0.7, 1.0)
        centre = (x + rng.uniform(-0.6, 0.6), y + rng.uniform(-0.6, 0.6), trunk_h + r * rng.uniform(0.6, 1.0))
        b.add_sphere(centre, r, VEGETATION, M_LEAVES, colour)


def _vehicle_pose(dom: Domain, rng: np.random.Generator, ego_y: float, heading: np.random.Generator | None
                  ) -> np.ndarray:
    """world_from_base: the vehicle in its lane at x = 0 with small pitch/roll/yaw/height jitter, turned off the
    street's axis by a draw of the domain's ``heading_deg`` from ``heading`` (its own stream, so the scene is that
    of the unturned frame) when given."""
    def jit(sigma: float, clip: float, source: np.random.Generator = rng) -> float:
        return float(np.clip(source.normal(0.0, sigma), -clip * sigma, clip * sigma))
    roll, pitch, yaw = (jit(sd, 2.5) for sd in (dom.roll_jitter_deg, dom.pitch_jitter_deg, dom.yaw_jitter_deg))
    if heading is not None:
        yaw += jit(dom.heading_deg, 2.5, heading)
    rot = rotation_rpy(*np.radians([roll, pitch, yaw]))
    return rigid_transform(rot, (0.0, ego_y, jit(dom.height_jitter, 2.0)))


def build_world(dom: Domain, index: int, seed: int, turned: bool = True) -> World:
    """Sample frame ``index`` of ``dom`` for ``seed``: layout, lighting and vehicle pose (independent of image size).
    ``turned``: apply the domain's heading off the street's axis (false: a drive's start, along the street)."""
    rng = np.random.default_rng([DOMAINS.index(dom.name), seed, index, 0])
    street, ego_y, centres = _street_cross_section(dom, rng)
    turns = turned and dom.heading_deg > 0
    heading = np.random.default_rng([DOMAINS.index(dom.name), seed, index, 4]) if turns else None
    world_from_base = _vehicle_pose(dom, rng, ego_y, heading)
    lay = dom.layout
    end_x = rng.uniform(*lay.end_wall_distance) if rng.random() < lay.end_wall_prob else STREET_END_M
    b = SceneBuilder()
    _add_ground(b, dom, street, rng)
    _add_buildings(b, dom, street, rng, end_x)
    if end_x < STREET_END_M:
        _add_end_wall(b, dom, rng, end_x)
    _add_cars(b, dom, street, rng, centres, ego_y)
    _add_street_furniture(b, dom, street, rng)
    sensors = [(world_from_base @ t)[:3, 3] for t in (base_from_camera(dom), base_from_lidar(dom))]
    b.remove_if(sensors, margin=0.5)
    return World(domain=dom, scene=b.build(), street=street, world_from_base=world_from_base)


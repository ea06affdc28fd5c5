"""Generated driving sequences: one street, a camera driving along it at 10 Hz, and one independently moving car.

A sequence is one world of :mod:`.layout` (static scenery: road, buildings, parked cars, poles, trees) seen from many
camera poses, plus a car of its own that drives along a lane at a constant speed different from the ego vehicle's,
its boxes moved per frame. The ego vehicle drives forward with a varying speed and a weaving yaw; every pose is
known (``world_from_camera``: the optical frame, x right, y down, z forward, in the world frame, metres). Nothing
in the drive path or the moving car's path is left in the scene, so neither drives through an object.

Every output is a deterministic function of (domain, seed, frame count, size); frame ``k`` of a longer sequence
equals frame ``k`` of a shorter one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from semantic_depth_ros.data.synthetic.domains import (
    DOMAINS,
    MAX_DEPTH_M,
    base_from_camera,
    check_int,
    domain_intrinsics,
    domain_spec,
)
from semantic_depth_ros.data.synthetic.layout import Street, World, add_car, build_world
from semantic_depth_ros.data.synthetic.raycast import Scene, SceneBuilder
from semantic_depth_ros.data.synthetic.render import render_world_hits
from semantic_depth_ros.data.tf_chain import rigid_transform, rotation_rpy
from semantic_depth_ros.geometry.intrinsics import Intrinsics

SEQUENCE_RATE_HZ = 10.0  # camera frame rate of the generated sequences
MAX_SEQUENCE_FRAMES = 100  # 10 s: the camera stays well inside the generated street (it ends at x = 185 m)
_SUBSTEPS = 20  # integration steps of the ego motion per frame period
_CORRIDOR_HALF_WIDTH = 1.2  # metres either side of a vehicle's path kept free of scenery
_CORRIDOR_TOP = 2.0  # metres; scenery above this (sign arms, tree crowns over the road) may stay


@dataclass(frozen=True)
class SequenceFrame:
    """One frame of a driving sequence.

    ``stamp_ns``: capture time (nanoseconds from the sequence start); ``rgb`` HxWx3 uint8; ``depth`` HxW float32
    metres (optical z, 0 = sky / no hit); ``semantic`` HxW uint8 Cityscapes train ids; ``moving`` HxW bool: the
    pixels of the independently moving car; ``world_from_camera`` 4x4 float64 pose of the optical frame.
    """

    stamp_ns: int
    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    moving: np.ndarray
    world_from_camera: np.ndarray


@dataclass(frozen=True)
class DrivingSequence:
    """A rendered sequence: its camera (``intrinsics`` of the frames' size), frame rate (Hz), the ego and moving-car
    speeds (m/s along the street, per frame for the ego) and the frames in time order."""

    domain: str
    seed: int
    intrinsics: Intrinsics
    rate_hz: float
    ego_speed_mps: np.ndarray
    car_speed_mps: float
    frames: tuple[SequenceFrame, ...]


@dataclass(frozen=True)
class _Motion:
    """Sampled motion of a sequence: ego speed and yaw profiles, and the moving car's lane, start and speed."""

    speed: float  # m/s, mean ego speed
    speed_amp: float
    speed_period: float  # s
    yaw_amp: float  # radians
    yaw_period: float  # s
    yaw_phase: float
    car_y: float  # lateral position of the moving car's lane centre, metres
    car_x0: float  # rear of the moving car at t = 0 relative to the ego start, metres
    car_speed: float  # m/s


def _lane_centres(street: Street) -> list[float]:
    """Centres of the traffic lanes (world y, metres) between the solid edge lines."""
    lines = sorted((*street.solid_lines, *street.dashed_lines))
    return [(a + b) / 2 for a, b in zip(lines[:-1], lines[1:])]


def _sample_motion(rng: np.random.Generator, street: Street, ego_y: float) -> _Motion:
    """Ego speed/yaw profile and the moving car: in a neighbouring lane, slower (starting farther ahead) or faster
    than the ego vehicle; on a one-lane street ahead in the ego lane, faster than the ego vehicle ever drives."""
    speed, speed_amp = rng.uniform(7.0, 11.0), rng.uniform(1.0, 2.5)
    motion = dict(speed=speed, speed_amp=speed_amp, speed_period=rng.uniform(3.0, 6.0),
                  yaw_amp=np.radians(rng.uniform(1.5, 3.5)), yaw_period=rng.uniform(2.5, 5.0),
                  yaw_phase=rng.uniform(0.0, 2 * np.pi))
    others = [c for c in _lane_centres(street) if abs(c - ego_y) > 1.5]
    if others:
        car_y = min(others, key=lambda c: abs(c - ego_y))
        faster = bool(rng.random() < 0.5)
        delta = rng.uniform(1.5, 3.0)
        car_x0 = rng.uniform(8.0, 14.0) if faster else rng.uniform(16.0, 24.0)
        car_speed = speed + delta if faster else speed - delta
    else:
        car_y, car_x0, car_speed = ego_y, rng.uniform(12.0, 16.0), speed + speed_amp + rng.uniform(1.0, 2.0)
    return _Motion(car_y=float(car_y), car_x0=float(car_x0), car_speed=float(car_speed), **motion)


def _ego_track(motion: _Motion, frames: int, rate_hz: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: ego displacement (x, y metres from the start, Fx2), yaw (radians, F) and speed (m/s, F)."""
    dt = 1.0 / (rate_hz * _SUBSTEPS)
    t = np.arange(frames * _SUBSTEPS) * dt
    speed = motion.speed + motion.speed_amp * np.sin(2 * np.pi * t / motion.speed_period)
    yaw = motion.yaw_amp * np.sin(2 * np.pi * t / motion.yaw_period + motion.yaw_phase)
    step = np.stack([speed * np.cos(yaw), speed * np.sin(yaw)], axis=1) * dt
    xy = np.concatenate([np.zeros((1, 2)), np.cumsum(step, axis=0)])[:-1]
    return xy[::_SUBSTEPS], yaw[::_SUBSTEPS], speed[::_SUBSTEPS]


def _subset(scene: Scene, keep: np.ndarray) -> Scene:
    """The primitives of ``scene`` where ``keep`` (M,) is True."""
    return Scene(**{f.name: getattr(scene, f.name)[keep] for f in dataclasses.fields(Scene)})


def _concat(first: Scene, second: Scene) -> Scene:
    """Both scenes' primitives, ``first``'s indices unchanged."""
    return Scene(**{f.name: np.concatenate([getattr(first, f.name), getattr(second, f.name)])
                    for f in dataclasses.fields(Scene)})


def _translated(scene: Scene, dx: float) -> Scene:
    """``scene`` moved by ``dx`` metres along world x."""
    shift = np.array([dx, 0.0, 0.0])
    return dataclasses.replace(scene, lo=scene.lo + shift, hi=scene.hi + shift, center=scene.center + shift)


def _outside(scene: Scene, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(M,) True for the primitives whose bounding box does not overlap the box ``[lo, hi]``."""
    return ~np.all((scene.lo < hi) & (scene.hi > lo), axis=1)


def render_sequence(
    frames: int, *, domain: str = "kitti_like", seed: int = 0, height: int | None = None, width: int | None = None,
    stopped: bool = False,
) -> DrivingSequence:
    """Render ``frames`` frames (2..``MAX_SEQUENCE_FRAMES``) of the driving sequence of ``domain`` and ``seed``.

    ``height``/``width`` in pixels as for :func:`~.render.render_frame` (native size when both are None). Frames are
    ``1 / SEQUENCE_RATE_HZ`` s apart. ``stopped``: the ego vehicle stands still at its start pose (a static camera,
    e.g. at a red light) while the same car drives by. Raises ConfigError for an unknown domain, a bad size, seed
    or frame count.
    """
    dom = domain_spec(domain)
    frames = check_int("frames", frames, 2, MAX_SEQUENCE_FRAMES)
    seed = check_int("seed", seed, 0)
    intr = domain_intrinsics(domain, height, width)
    domain_index = DOMAINS.index(domain)
    world = build_world(dom, 0, seed, turned=False)  # a drive starts along the street
    start = world.world_from_base
    rng = np.random.default_rng([domain_index, seed, 0, 2])
    motion = _sample_motion(rng, world.street, float(start[1, 3]))
    car_builder = SceneBuilder()
    car_length = rng.uniform(3.8, 4.8)
    add_car(car_builder, dom, rng, 0.0, motion.car_y, car_length)
    car = car_builder.build()

    if stopped:
        motion = dataclasses.replace(motion, speed=0.0, speed_amp=0.0, yaw_amp=0.0)
    xy, yaw, speed = _ego_track(motion, frames, SEQUENCE_RATE_HZ)
    times = np.arange(frames) / SEQUENCE_RATE_HZ
    car_x = start[0, 3] + motion.car_x0 + motion.car_speed * times
    scene = world.scene
    ego_lo = np.array([start[0, 3] - 1.0, start[1, 3] + xy[:, 1].min() - _CORRIDOR_HALF_WIDTH, 0.05])
    ego_hi = np.array([start[0, 3] + xy[:, 0].max() + 6.0, start[1, 3] + xy[:, 1].max() + _CORRIDOR_HALF_WIDTH,
                       _CORRIDOR_TOP])
    car_lo = np.array([car_x.min() - 1.0, motion.car_y - _CORRIDOR_HALF_WIDTH, 0.05])
    car_hi = np.array([car_x.max() + car_length + 1.0, motion.car_y + _CORRIDOR_HALF_WIDTH, _CORRIDOR_TOP])
    scene = _subset(scene, _outside(scene, ego_lo, ego_hi) & _outside(scene, car_lo, car_hi))
    static_count = len(scene)

    rendered = []
    camera_mount = base_from_camera(dom)
    for k in range(frames):
        rotation = rotation_rpy(0.0, 0.0, float(yaw[k])) @ start[:3, :3]
        world_from_base = rigid_transform(rotation, start[:3, 3] + np.array([xy[k, 0], xy[k, 1], 0.0]))
        world_k = World(domain=dom, scene=_concat(scene, _translated(car, float(car_x[k]))), street=world.street,
                        world_from_base=world_from_base)
        frame, hits = render_world_hits(world_k, intr, (domain_index, seed, k, 3), with_lidar=False)
        moving = (hits.prim >= static_count) & (hits.t <= MAX_DEPTH_M)
        rendered.append(SequenceFrame(
            stamp_ns=round(k * 1e9 / SEQUENCE_RATE_HZ), rgb=frame.rgb, depth=frame.depth, semantic=frame.semantic,
            moving=moving, world_from_camera=world_from_base @ camera_mount,
        ))
    return DrivingSequence(domain=domain, seed=seed, intrinsics=intr, rate_hz=SEQUENCE_RATE_HZ,
                           ego_speed_mps=speed.copy(), car_speed_mps=motion.car_speed, frames=tuple(rendered))

"""The render API: one frame of a domain (RGB, depth, labels, optional LiDAR scan and the rig's transforms)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from semantic_depth_ros.data.synthetic.domains import (
    DOMAINS,
    MAX_DEPTH_M,
    base_from_camera,
    base_from_lidar,
    check_int,
    domain_intrinsics,
    domain_spec,
)
from semantic_depth_ros.data.synthetic.layout import World, build_world
from semantic_depth_ros.data.synthetic.lidar import lidar_scan
from semantic_depth_ros.data.synthetic.raycast import Hits, PinholeRays, cast
from semantic_depth_ros.data.synthetic.shading import shade
from semantic_depth_ros.data.tf_chain import invert_rigid
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.labels import SKY


@dataclass(frozen=True)
class SyntheticFrame:
    """One generated frame.

    ``rgb`` HxWx3 uint8; ``depth`` HxW float32 metres (optical z, 0 = sky / no hit); ``semantic`` HxW uint8
    Cityscapes train ids; ``intrinsics`` of this image size; ``lidar_points`` Nx3 float32 metres in the LiDAR frame
    (x forward, y left, z up; empty unless requested); ``base_to_camera``, ``base_to_lidar``, ``lidar_to_camera``
    4x4 float64 mapping coordinates (``p_cam = lidar_to_camera @ [p_lidar, 1]``); ``world_from_camera`` 4x4 float64,
    the pose of the optical frame in the world (road plane z = 0), jitter of the vehicle included.
    """

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    intrinsics: Intrinsics
    lidar_points: np.ndarray
    base_to_camera: np.ndarray
    base_to_lidar: np.ndarray
    lidar_to_camera: np.ndarray
    world_from_camera: np.ndarray

    @property
    def camera_height(self) -> float:
        """Metres from the optical centre down to the road plane (z = 0) in this frame."""
        return float(self.world_from_camera[2, 3])

def camera_rays(world: World, intr: Intrinsics) -> PinholeRays:
    """Pixel-centre rays of the frame's camera."""
    world_from_camera = world.world_from_base @ base_from_camera(world.domain)
    return PinholeRays(intr, world_from_camera)


def render_world(world: World, intr: Intrinsics, noise_seed: tuple[int, ...], with_lidar: bool) -> SyntheticFrame:
    """Ray-cast, label, shade and (optionally) scan one world at the given intrinsics."""
    return render_world_hits(world, intr, noise_seed, with_lidar)[0]


def render_world_hits(world: World, intr: Intrinsics, noise_seed: tuple[int, ...], with_lidar: bool
                      ) -> tuple[SyntheticFrame, Hits]:
    """:func:`render_world` and the camera's ray hits (which primitive each pixel sees, e.g. to mask one object)."""
    rays = camera_rays(world, intr)
    hits = cast(world.scene, rays)
    hit = (hits.prim >= 0) & (hits.t <= MAX_DEPTH_M)
    depth = np.where(hit, hits.t, 0.0).astype(np.float32)
    semantic = np.where(hit, world.scene.label[np.maximum(hits.prim, 0)], SKY).astype(np.uint8)
    rgb = shade(world, rays, hits, np.random.default_rng(list(noise_seed)))
    lidar = lidar_scan(world, rays, hits) if with_lidar else np.zeros((0, 3), dtype=np.float32)
    base_to_camera = invert_rigid(base_from_camera(world.domain))
    lidar_pose = base_from_lidar(world.domain)
    return SyntheticFrame(
        rgb=rgb, depth=depth, semantic=semantic, intrinsics=intr, lidar_points=lidar,
        base_to_camera=base_to_camera, base_to_lidar=invert_rigid(lidar_pose),
        lidar_to_camera=base_to_camera @ lidar_pose, world_from_camera=rays.world_from_camera,
    ), hits


def render_frame(
    domain: str, index: int, *, seed: int = 0, height: int | None = None, width: int | None = None,
    with_lidar: bool = False,
) -> SyntheticFrame:
    """Render frame ``index`` of ``domain`` (deterministic for domain, index, seed and size).

    ``height``/``width`` in pixels (native size when both are None: 375x1242 kitti_like, 512x1024 cityscapes_like;
    one alone keeps the aspect ratio). The scene does not depend on the size. Raises ConfigError for an unknown
    domain, a size outside [8, 4096] or a negative index/seed.
    """
    dom = domain_spec(domain)
    index = check_int("index", index, 0)
    seed = check_int("seed", seed, 0)
    intr = domain_intrinsics(domain, height, width)
    world = build_world(dom, index, seed)
    return render_world(world, intr, (DOMAINS.index(domain), seed, index, 1), with_lidar)


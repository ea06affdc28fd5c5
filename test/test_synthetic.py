"""Generated street scenes: determinism, labels, exact geometry, camera models, LiDAR consistency, datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from semantic_depth_ros.data.synthetic import dataset as synthetic_dataset
from semantic_depth_ros.data.synthetic import (
    DOMAINS,
    LABELS,
    MAX_DEPTH_M,
    SyntheticDataset,
    SyntheticFrame,
    domain_intrinsics,
    render_frame,
)
from semantic_depth_ros.data.synthetic.domains import base_from_lidar, domain_spec
from semantic_depth_ros.data.synthetic.layout import Street, World, build_world
from semantic_depth_ros.data.synthetic.lidar import LIDAR_MAX_RANGE_M, LIDAR_MIN_RANGE_M
from semantic_depth_ros.data.synthetic.raycast import SceneBuilder, SphericalRays, cast, ray_fan
from semantic_depth_ros.data.synthetic.render import camera_rays, render_world
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.geometry.intrinsics import Intrinsics, scale_intrinsics
from semantic_depth_ros.labels import BUILDING, CAR, ROAD, SIDEWALK, SKY, TERRAIN, VEGETATION


def _project(frame: SyntheticFrame, transform: np.ndarray) -> tuple[np.ndarray, ...]:
    """LiDAR points -> camera: (z, row, col, inside mask) with the pixel rule floor(u + 0.5)."""
    pts = frame.lidar_points.astype(np.float64)
    cam = pts @ transform[:3, :3].T + transform[:3, 3]
    k = frame.intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        col = np.floor(k.fx * cam[:, 0] / cam[:, 2] + k.cx + 0.5)
        row = np.floor(k.fy * cam[:, 1] / cam[:, 2] + k.cy + 0.5)
    inside = (cam[:, 2] > 0.1) & (col >= 0) & (col < k.width) & (row >= 0) & (row < k.height)
    return cam[inside, 2], row[inside].astype(np.int64), col[inside].astype(np.int64), inside


def _backproject(frame: SyntheticFrame, world_from_base: np.ndarray) -> np.ndarray:
    """World points (HxWx3) of every pixel from the rendered depth."""
    k = frame.intrinsics
    v, u = np.mgrid[0 : k.height, 0 : k.width].astype(np.float64)
    z = frame.depth.astype(np.float64)
    cam = np.stack([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z], axis=-1)
    world_from_camera = world_from_base @ np.linalg.inv(frame.base_to_camera)
    return cam @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]


def test_frame_fields_shapes_and_dtypes() -> None:
    frame = render_frame("kitti_like", 0, height=48, width=160)
    assert frame.rgb.shape == (48, 160, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth.shape == (48, 160) and frame.depth.dtype == np.float32
    assert frame.semantic.shape == (48, 160) and frame.semantic.dtype == np.uint8
    assert frame.lidar_points.shape == (0, 3) and frame.lidar_points.dtype == np.float32
    for name in ("base_to_camera", "base_to_lidar", "lidar_to_camera"):
        matrix = getattr(frame, name)
        assert matrix.shape == (4, 4) and matrix.dtype == np.float64
        np.testing.assert_allclose(matrix[:3, :3] @ matrix[:3, :3].T, np.eye(3), atol=1e-12)
        np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])
    assert isinstance(frame.intrinsics, Intrinsics)
    assert frame.rgb.std() > 10.0  # a textured image, not a flat fill


def test_render_is_deterministic() -> None:
    a = render_frame("cityscapes_like", 5, seed=3, height=40, width=80, with_lidar=True)
    b = render_frame("cityscapes_like", 5, seed=3, height=40, width=80, with_lidar=True)
    for name in ("rgb", "depth", "semantic", "lidar_points", "base_to_camera", "lidar_to_camera"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_seeds_indices_and_domains_differ() -> None:
    base = render_frame("kitti_like", 1, seed=0, height=48, width=160)
    for other in (
        render_frame("kitti_like", 2, seed=0, height=48, width=160),
        render_frame("kitti_like", 1, seed=1, height=48, width=160),
    ):
        assert np.mean(base.semantic != other.semantic) > 0.05
        assert np.mean(np.abs(base.depth - other.depth) > 0.5) > 0.05


def test_scene_is_independent_of_image_size() -> None:
    # Tripling the size maps pixel (r, c) to pixel (3r + 1, 3c + 1) under the pixel-centre convention: same ray.
    small = render_frame("kitti_like", 4, height=20, width=64)
    large = render_frame("kitti_like", 4, height=60, width=192)
    np.testing.assert_allclose(large.depth[1::3, 1::3], small.depth, rtol=1e-5, atol=1e-5)
    assert np.mean(large.semantic[1::3, 1::3] == small.semantic) > 0.999


@pytest.mark.parametrize("domain", DOMAINS)
def test_labels_and_depth_validity(domain: str) -> None:
    seen: set[int] = set()
    for index in range(6):
        frame = render_frame(domain, index, height=48, width=96)
        labels = set(np.unique(frame.semantic).tolist())
        seen |= labels
        assert ROAD in labels and BUILDING in labels
        sky = frame.semantic == SKY
        assert np.all(frame.depth[sky] == 0.0)
        assert np.all(frame.depth[~sky] > 0.5) and np.all(frame.depth <= MAX_DEPTH_M)
    assert seen <= set(LABELS)
    assert {0, 1, 2, 5, 8, 10, 13} <= seen


def _road_only_world(domain: str) -> World:
    """A level vehicle over an endless flat road (x up to 180 m) and nothing else."""
    builder = SceneBuilder()
    builder.add_box((-40.0, -1000.0, -1.0), (180.0, 1000.0, 0.0), ROAD, 0, np.array([0.3, 0.3, 0.3]))
    street = Street(
        right_curb=-1000.0, left_curb=1000.0, sidewalk_right=2.0, sidewalk_left=2.0, curb=0.1,
        dashed_lines=(), solid_lines=(), sun=np.array([0.0, 0.0, 1.0]), exposure=1.0,
    )
    return World(domain=domain_spec(domain), scene=builder.build(), street=street,
                      world_from_base=np.eye(4))


def test_flat_road_depth_matches_height_times_focal_over_row_offset() -> None:
    intr = domain_intrinsics("kitti_like", 96, 320)
    frame = render_world(_road_only_world("kitti_like"), intr, (0, 0, 0, 1), with_lidar=False)
    height, cam_x = 1.65, 1.07  # the kitti_like camera mount, level, over the road
    v = np.arange(96, dtype=np.float64)
    with np.errstate(divide="ignore"):
        expected = np.where(v > intr.cy, height * intr.fy / (v - intr.cy), 0.0)
    expected[expected + cam_x > 180.0] = 0.0  # beyond the end of the road: sky
    assert np.count_nonzero(expected) > 40
    np.testing.assert_allclose(frame.depth, np.broadcast_to(expected[:, None], (96, 320)), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(frame.semantic, np.where(expected[:, None] > 0, ROAD, SKY) * np.ones((1, 320)))


@pytest.mark.parametrize("domain", DOMAINS)
def test_road_and_sidewalk_pixels_lie_on_their_surfaces(domain: str) -> None:
    frame = render_frame(domain, 7, height=64, width=128)
    world = build_world(domain_spec(domain), 7, 0)
    points = _backproject(frame, world.world_from_base)
    road = points[frame.semantic == ROAD]
    assert road.shape[0] > 500
    np.testing.assert_allclose(road[:, 2], 0.0, atol=1e-4)
    walk = points[frame.semantic == SIDEWALK]
    st = world.street
    on_top = np.abs(walk[:, 2] - st.curb) < 1e-4
    on_curb = (np.minimum(np.abs(walk[:, 1] - st.left_curb), np.abs(walk[:, 1] - st.right_curb)) < 1e-4) & (
        walk[:, 2] < st.curb + 1e-4
    )
    assert walk.shape[0] > 20 and np.all(on_top | on_curb)


def test_intrinsics_per_domain_and_size() -> None:
    kitti = domain_intrinsics("kitti_like")
    assert kitti == Intrinsics(fx=721.5, fy=721.5, cx=609.6, cy=172.9, width=1242, height=375)
    assert 0.55 < kitti.fx / kitti.width < 0.62 and abs(kitti.width / kitti.height - 3.31) < 0.02
    city = domain_intrinsics("cityscapes_like")
    assert (city.width, city.height) == (1024, 512) and 1.0 < city.fx / city.width < 1.2
    assert domain_intrinsics("kitti_like", 96, 320) == scale_intrinsics(kitti, 320, 96)
    assert render_frame("kitti_like", 0, height=96, width=320).intrinsics == scale_intrinsics(kitti, 320, 96)
    only_height = render_frame("cityscapes_like", 0, height=32)
    assert only_height.intrinsics == scale_intrinsics(city, 64, 32) and only_height.rgb.shape == (32, 64, 3)


def test_sensor_rig_transforms() -> None:
    frame = render_frame("kitti_like", 0, height=24, width=80)
    camera_in_base = np.linalg.inv(frame.base_to_camera)
    np.testing.assert_allclose(camera_in_base[:3, 3], [1.07, 0.06, 1.65], atol=1e-12)
    rot = frame.base_to_camera[:3, :3]
    np.testing.assert_allclose(rot @ [1.0, 0.0, 0.0], [0.0, 0.0, 1.0], atol=1e-12)  # forward -> optical z
    np.testing.assert_allclose(rot @ [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], atol=1e-12)  # left -> -x (x is right)
    np.testing.assert_allclose(rot @ [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], atol=1e-12)  # up -> -y (y is down)
    np.testing.assert_allclose(np.linalg.inv(frame.base_to_lidar)[:3, 3], [0.80, 0.0, 1.73], atol=1e-12)
    np.testing.assert_allclose(
        frame.lidar_to_camera, frame.base_to_camera @ np.linalg.inv(frame.base_to_lidar), atol=1e-12
    )
    city = render_frame("cityscapes_like", 0, height=16, width=32)
    forward = city.base_to_camera[:3, :3] @ [1.0, 0.0, 0.0]
    # Tilted 2.2 degrees nose-down: the vehicle's forward axis appears above the optical axis (negative y).
    np.testing.assert_allclose(forward, [0.0, -np.sin(np.radians(2.2)), np.cos(np.radians(2.2))], atol=1e-12)


@pytest.mark.parametrize("domain", DOMAINS)
def test_lidar_scan_is_consistent_with_camera_depth(domain: str) -> None:
    frame = render_frame(domain, 2, height=96, width=192, with_lidar=True)
    points = frame.lidar_points.astype(np.float64)
    ranges = np.linalg.norm(points, axis=1)
    assert points.shape[0] > 50000
    assert ranges.min() >= LIDAR_MIN_RANGE_M and ranges.max() <= LIDAR_MAX_RANGE_M + 1e-3
    elevation = np.degrees(np.arcsin(points[:, 2] / ranges))
    assert elevation.min() > -24.5 and elevation.max() < 5.0

    z, row, col, inside = _project(frame, frame.lidar_to_camera)
    assert inside.sum() > 3000 and (~inside).sum() > 30000  # a 360 degree scan: most points are off-image
    error = np.abs(z - frame.depth[row, col])
    label = frame.semantic[row, col]
    planes = (label == ROAD) | (label == BUILDING)
    assert planes.sum() > 1000
    assert np.median(error[planes]) < 0.01 and np.percentile(error[planes], 90) < 0.02

    # Same surface (primitive and face) seen by the camera pixel and hit by the LiDAR: exact agreement.
    world = build_world(domain_spec(domain), 2, 0)
    cam_hits = cast(world.scene, camera_rays(world, frame.intrinsics))
    world_from_lidar = world.world_from_base @ np.linalg.inv(frame.base_to_lidar)
    fan, order = ray_fan(world_from_lidar, points @ world_from_lidar[:3, :3].T + world_from_lidar[:3, 3])
    lidar_hits = cast(world.scene, fan)
    seen_range = np.empty(points.shape[0])
    prim, face = np.empty(points.shape[0], dtype=np.int64), np.empty(points.shape[0], dtype=np.int64)
    seen_range[order], prim[order], face[order] = lidar_hits.t[0], lidar_hits.prim[0], lidar_hits.face[0]
    np.testing.assert_allclose(seen_range, ranges, atol=1e-3)  # every return is the first surface on its ray
    same = (cam_hits.prim[row, col] == prim[inside]) & (cam_hits.face[row, col] == face[inside])
    assert same.mean() > 0.85
    assert error[same].max() < 1e-3

    # A 0.5 degree error in the extrinsic is detected by the same statistics.
    yaw = np.radians(0.5)
    wrong = frame.lidar_to_camera.copy()
    wrong[:3, :3] = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]]) @ wrong[:3, :3]
    z_w, row_w, col_w, _ = _project(frame, wrong)
    label_w = frame.semantic[row_w, col_w]
    planes_w = (label_w == ROAD) | (label_w == BUILDING)
    assert np.percentile(np.abs(z_w - frame.depth[row_w, col_w])[planes_w], 90) > 0.05


class _FullRegions:
    """The same rays without culling: every primitive is tested against every ray."""

    def __init__(self, rays: object) -> None:
        self.origin, self.dirs, self.arrays = rays.origin, rays.dirs, rays.arrays  # type: ignore[attr-defined]

    def regions(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return np.tile([0, self.dirs.shape[0], 0, self.dirs.shape[1]], (lo.shape[0], 1))


@pytest.mark.parametrize("domain", DOMAINS)
def test_culling_is_conservative(domain: str) -> None:
    world = build_world(domain_spec(domain), 3, 0)
    camera = camera_rays(world, domain_intrinsics(domain, 40, 96))
    lidar = SphericalRays(world.world_from_base @ base_from_lidar(world.domain),
                          np.radians(np.linspace(-24.0, 4.0, 16)), np.radians(np.arange(-179.0, 181.0, 2.0)))
    # A fan with many rays at one azimuth (straight behind, on the +-180 degree cut) and a spread in front.
    world_from_lidar = lidar.world_from_sensor
    behind = world_from_lidar[:3, 3] + np.outer(np.linspace(-0.5, -0.1, 20), world_from_lidar[:3, 2])
    behind -= 5.0 * world_from_lidar[:3, 0]
    ahead = world_from_lidar[:3, 3] + np.stack([np.full(50, 30.0), np.linspace(-20, 20, 50), np.zeros(50)], axis=1)
    fan, _ = ray_fan(world_from_lidar, np.concatenate([behind, ahead]))
    for rays in (camera, lidar, fan):
        culled, full = cast(world.scene, rays), cast(world.scene, _FullRegions(rays))
        np.testing.assert_array_equal(culled.prim, full.prim)
        np.testing.assert_array_equal(culled.face, full.face)
        np.testing.assert_array_equal(culled.t, full.t)
        assert (culled.prim >= 0).mean() > 0.3


def test_domains_differ_in_palette_and_layout() -> None:
    def stats(domain: str, size: tuple[int, int]) -> tuple[float, float, float, float, float]:
        blue_minus_red, car, terrain, vegetation, road = [], [], [], [], []
        for index in range(6):
            frame = render_frame(domain, index, height=size[0], width=size[1])
            sky = frame.semantic == SKY
            rgb = frame.rgb.astype(np.float64)
            if sky.any():
                blue_minus_red.append(float((rgb[..., 2] - rgb[..., 0])[sky].mean()))
            car.append(float(np.mean(frame.semantic == CAR)))
            terrain.append(float(np.mean(frame.semantic == TERRAIN)))
            vegetation.append(float(np.mean(frame.semantic == VEGETATION)))
            road.append(float(np.mean(frame.semantic == ROAD)))
        return tuple(float(np.mean(values)) for values in (blue_minus_red, car, terrain, vegetation, road))

    kitti, city = stats("kitti_like", (30, 100)), stats("cityscapes_like", (40, 80))
    assert kitti[0] > city[0] + 15.0  # blue sunny sky vs grey overcast
    # Cityscapes' shares (about a third road, a seventh vegetation, 6 % car), not a street walled by parked cars
    assert 0.28 < city[4] < 0.45 and city[4] > kitti[4] + 0.08  # the longer lens looks down the narrower street
    assert 0.10 < city[3] < 0.22 and 0.03 < city[1] < 0.14
    assert kitti[2] > 2.0 * city[2]  # more grass in front of the suburban buildings


def test_cityscapes_like_views_turn_off_the_street_while_kitti_like_and_drives_keep_to_it() -> None:
    """The semantic domain's frames meet the street at an angle (near facades and poles fill its narrow lens, as
    they do the wide KITTI camera's edges); the vehicle domain's heading only jitters, and a drive (``turned``
    false) starts along the street in either. Yaw of base_link in the world, whose x runs along the street."""
    def headings(domain: str, turned: bool = True) -> np.ndarray:
        dom = domain_spec(domain)
        rotations = [build_world(dom, index, seed=0, turned=turned).world_from_base[:3, :3] for index in range(48)]
        return np.degrees([np.arctan2(r[1, 0], r[0, 0]) for r in rotations])

    city, kitti, city_drive = headings("cityscapes_like"), headings("kitti_like"), headings("cityscapes_like", False)
    assert 6.0 < city.std() < 14.0 and np.abs(city).max() > 15.0
    assert kitti.std() < 1.5 and city_drive.std() < 1.5
    np.testing.assert_array_equal(headings("kitti_like", False), kitti)  # kitti_like frames never turn
    for domain, yaws in (("cityscapes_like", city), ("kitti_like", kitti), ("cityscapes_like", city_drive)):
        spec = domain_spec(domain)  # each draw clipped at 2.5 standard deviations
        assert np.abs(yaws).max() <= 2.5 * (spec.yaw_jitter_deg + spec.heading_deg) + 1e-9


@pytest.mark.parametrize(
    ("task", "keys"),
    [("depth", {"image", "depth", "fx"}), ("semantic", {"image", "semantic", "fx"}),
     ("both", {"image", "depth", "semantic", "fx"})],
)
def test_dataset_samples(task: str, keys: set[str], monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> SyntheticFrame:
        calls.append(1)
        return render_frame(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(synthetic_dataset, "render_frame", counting)
    data = SyntheticDataset("kitti_like", task, 3, seed=2, height=24, width=80)
    assert len(data) == 3
    sample = data[1]
    assert set(sample) == keys
    assert sample["image"].shape == (3, 24, 80) and sample["image"].dtype == torch.float32
    assert 0.0 <= float(sample["image"].min()) and float(sample["image"].max()) <= 1.0
    assert sample["fx"] == pytest.approx(domain_intrinsics("kitti_like", 24, 80).fx)
    frame = render_frame("kitti_like", 1, seed=2, height=24, width=80)
    np.testing.assert_array_equal((sample["image"] * 255).round().byte().permute(1, 2, 0).numpy(), frame.rgb)
    if "depth" in keys:
        assert sample["depth"].shape == (1, 24, 80) and sample["depth"].dtype == torch.float32
        np.testing.assert_array_equal(sample["depth"][0].numpy(), frame.depth)
    if "semantic" in keys:
        assert sample["semantic"].shape == (24, 80) and sample["semantic"].dtype == torch.int64
        np.testing.assert_array_equal(sample["semantic"].numpy(), frame.semantic)
    again = data[1]
    assert len(calls) == 1  # cached: rendered once
    torch.testing.assert_close(again["image"], sample["image"])
    with pytest.raises(IndexError):
        data[3]


def test_dataset_without_cache_renders_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counting(*args: object, **kwargs: object) -> SyntheticFrame:
        calls.append(1)
        return render_frame(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(synthetic_dataset, "render_frame", counting)
    data = SyntheticDataset("cityscapes_like", "semantic", 2, height=16, width=32, cache=False)
    data[0]
    data[0]
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: render_frame("nuscenes_like", 0), "unknown synthetic domain 'nuscenes_like'"),
        (lambda: render_frame("kitti_like", 0, height=4, width=64), "synthetic height 4 must be in [8, 4096]"),
        (lambda: render_frame("kitti_like", 0, height=32, width=5000), "synthetic width 5000 must be in [8, 4096]"),
        (lambda: render_frame("kitti_like", 0, height=32.5, width=64), "synthetic height 32.5 must be an integer"),
        (lambda: render_frame("kitti_like", -1), "synthetic index -1 must be >= 0"),
        (lambda: render_frame("kitti_like", 0, seed=-2), "synthetic seed -2 must be >= 0"),
        (lambda: SyntheticDataset("kitti", "depth", 4, height=16, width=32), "unknown synthetic domain 'kitti'"),
        (lambda: SyntheticDataset("kitti_like", "flow", 4, height=16, width=32), "unknown synthetic task 'flow'"),
        (lambda: SyntheticDataset("kitti_like", "depth", 0, height=16, width=32), "synthetic length 0 must be >= 1"),
    ],
)
def test_bad_arguments_raise_config_error_naming_the_value(call, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    assert message in str(info.value)
    assert "\n" not in str(info.value)


RECORDED_FRAMES = Path(__file__).resolve().parent / "data" / "synthetic_frames.npz"


@pytest.mark.parametrize(
    ("domain", "index", "seed", "height", "width"),
    [("kitti_like", 3, 7, 48, 160), ("cityscapes_like", 1, 2, 64, 128)],
)
def test_rendering_matches_the_recorded_frames(domain, index, seed, height, width):
    """Frames recorded from the renderer before it was split into a package (bit-identical on the recording CPU).

    numpy's SIMD kernels differ between CPUs in the last bits, so floats are compared with tolerances that any
    real change of the scene, camera or shading exceeds by orders of magnitude: labels equal on 99.9 % of pixels,
    colours within 1 level, depth within 1e-4 relative, LiDAR count within 0.1 % and its percentiles within 1 mm.
    """
    frame = render_frame(domain, index, seed=seed, height=height, width=width, with_lidar=True)
    with np.load(RECORDED_FRAMES) as recorded:
        ref = {name.split("/", 1)[1]: recorded[name] for name in recorded.files
               if name.startswith(f"{domain}_{index}_{seed}/")}
    assert frame.semantic.shape == ref["semantic"].shape == (height, width)
    assert (frame.semantic == ref["semantic"]).mean() >= 0.999
    assert frame.rgb.shape == ref["rgb"].shape
    colour_close = (np.abs(frame.rgb.astype(np.int16) - ref["rgb"]) <= 1).all(axis=-1)
    assert colour_close.mean() >= 0.999
    hit, ref_hit = frame.depth > 0, ref["depth"] > 0
    assert (hit == ref_hit).mean() >= 0.999
    both = hit & ref_hit
    assert np.abs(frame.depth[both] / ref["depth"][both] - 1.0).max() <= 1e-4
    count = len(frame.lidar_points)
    assert abs(count - int(ref["lidar_count"])) <= 1e-3 * int(ref["lidar_count"])
    np.testing.assert_allclose(np.percentile(frame.lidar_points, [1, 10, 50, 90, 99], axis=0),
                               ref["lidar_percentiles"], rtol=0, atol=1e-3)
    for name in ("base_to_camera", "base_to_lidar", "lidar_to_camera"):
        np.testing.assert_allclose(getattr(frame, name), ref[name], rtol=0, atol=1e-9)

"""Scale from the road (roadscale/): plane fit, acceptance, smoothing and holding, settings, the frame stage."""

from __future__ import annotations

import array
import dataclasses
import math

import numpy as np
import pytest
import torch

from semantic_depth_ros.data.synthetic import render_frame
from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import build_rays
from semantic_depth_ros.inference.estimator import EstimatorOutputs
from semantic_depth_ros.labels import BUILDING, ROAD, SIDEWALK
from semantic_depth_ros.pipeline.stages import FrameContext
from semantic_depth_ros.roadscale import (REJECT_REASONS, RoadScale, RoadScaleSettings, RoadScaleStage, fit_plane,
                                          road_scale_settings)
from semantic_depth_ros.roadscale.plane import backproject_pixels, sample_pixels

INTR = Intrinsics(fx=100.0, fy=100.0, cx=79.5, cy=19.5, width=160, height=60)
UP = np.array([0.0, -1.0, 0.0])  # REP-103 optical frame: y down, so up is -y


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    torch.set_num_threads(1)


def unit(vector: tuple[float, float, float]) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    return v / np.linalg.norm(v)


def plane_depth(normal: np.ndarray, offset: float, intr: Intrinsics = INTR) -> np.ndarray:
    """HxW depth (metres, optical z) of the plane ``normal . p + offset = 0`` seen from the origin; NaN where the
    pixel's ray does not hit it in front of the camera."""
    u = (np.arange(intr.width) - intr.cx) / intr.fx
    v = (np.arange(intr.height) - intr.cy) / intr.fy
    rays = np.stack(np.broadcast_arrays(u[None, :], v[:, None], np.ones((intr.height, intr.width))), axis=-1)
    along = rays @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(along < 0, -offset / along, np.nan)
    return z.astype(np.float32)


def rotation_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rotation_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def labels(value: int, shape: tuple[int, int] = (INTR.height, INTR.width)) -> torch.Tensor:
    return torch.full(shape, value, dtype=torch.uint8)


def settings(**changes: object) -> RoadScaleSettings:
    return RoadScaleSettings(**({"camera_height": 1.5} | changes))


# ---------------------------------------------------------------------------------------------------------------
# plane fit


@pytest.mark.parametrize(("normal", "offset"), [((0.0, -1.0, 0.0), 1.6), ((0.05, -1.0, -0.1), 1.2),
                                                 ((0.6, -0.3, 0.74), 7.0)])
def test_plane_fit_recovers_analytic_planes_through_noise_and_outliers(normal: tuple, offset: float) -> None:
    rng = np.random.default_rng(3)
    n = unit(normal)
    basis = np.linalg.svd(n[None])[2][1:]  # two unit vectors in the plane
    on_plane = -offset * n + rng.uniform(-20, 20, (1400, 2)) @ basis
    on_plane += rng.normal(0.0, 0.005 * offset, on_plane.shape)  # noise: 0.5 % of the distance
    outliers = rng.uniform(-20, 20, (600, 3))
    points = torch.from_numpy(np.concatenate((on_plane, outliers))[rng.permutation(2000)]).float()
    fit = fit_plane(points, inlier_tolerance=0.05)
    assert fit is not None and fit.points == 2000
    assert np.degrees(np.arccos(np.clip(np.dot(fit.normal, n), -1, 1))) < 0.3  # oriented towards the origin
    assert fit.offset == pytest.approx(offset, rel=0.005)
    outliers_inside = np.abs(outliers @ n + offset) < 0.05 * offset
    assert fit.inlier_ratio == pytest.approx((1400 + outliers_inside.sum()) / 2000, abs=0.01)
    flipped = fit_plane(-points, inlier_tolerance=0.05)  # the mirrored cloud: the normal still faces the origin
    assert flipped is not None and np.dot(flipped.normal, -n) > 0.999 and flipped.offset == pytest.approx(offset, 0.005)


def test_plane_fit_is_deterministic_and_refuses_what_has_no_plane() -> None:
    rng = np.random.default_rng(0)
    points = torch.from_numpy(rng.normal(0, 1, (500, 3))).float()
    assert fit_plane(points, inlier_tolerance=0.1) == fit_plane(points, inlier_tolerance=0.1)
    assert fit_plane(points[:2], inlier_tolerance=0.1) is None
    line = torch.linspace(0, 1, 50).unsqueeze(1) * torch.tensor([[1.0, 2.0, 3.0]]) + torch.tensor([[0.0, 1.0, 0.0]])
    assert fit_plane(line, inlier_tolerance=0.1) is None  # every triplet is collinear
    with pytest.raises(InvalidInputError, match=r"points must be a float \(N, 3\) tensor"):
        fit_plane(torch.zeros(5, 2), inlier_tolerance=0.1)
    with pytest.raises(InvalidInputError, match="inlier_tolerance = 0.0 must be > 0"):
        fit_plane(points, inlier_tolerance=0.0)


def test_pixel_sample_is_bounded_evenly_spread_and_backprojects_with_the_rays() -> None:
    mask = torch.zeros(60, 160, dtype=torch.bool)
    mask[30:] = True
    every = sample_pixels(mask, 100_000)
    assert every.tolist() == list(range(30 * 160, 60 * 160))
    some = sample_pixels(mask, 1000)
    assert some.numel() == 1000 and some[0] == 30 * 160 and some[-1] == 60 * 160 - 1
    assert bool((some.diff() > 0).all()) and some.diff().max() - some.diff().min() <= 1  # an even stride
    depth = torch.full((60, 160), 4.0)
    rays = build_rays(INTR, 1, "cpu")
    points = backproject_pixels(depth, rays, torch.tensor([0, 160 * 59 + 159]))
    assert torch.allclose(points, torch.tensor([[-3.18, -0.78, 4.0], [3.18, 1.58, 4.0]]), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# one frame: scale, fitted height and pitch, rejections


def test_scale_on_a_rendered_scene_with_a_known_camera_height() -> None:
    frame = render_frame("kitti_like", 3, seed=77, height=64, width=212)
    truth = np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32)
    road = RoadScale(RoadScaleSettings(camera_height=frame.camera_height))
    up = frame.world_from_camera[:3, :3].T @ [0.0, 0.0, 1.0]  # world up in the optical frame
    for error in (1.0, 1.25, 0.75):
        result = road.measure(torch.from_numpy(truth * error), torch.from_numpy(frame.semantic), frame.intrinsics)
        assert result.accepted and result.road_fraction > 0.1
        assert result.scale == pytest.approx(1.0 / error, rel=0.003)
        assert result.fitted_height == pytest.approx(frame.camera_height * error, rel=0.003)
        assert result.fitted_pitch == pytest.approx(math.atan2(-up[2], -up[1]), abs=math.radians(0.1))
        assert result.plane.inlier_ratio > 0.97


def test_the_expected_up_follows_camera_pitch() -> None:
    frame = render_frame("cityscapes_like", 0, seed=77, height=64, width=128)  # mounted 2.2 degrees nose-down
    depth = torch.from_numpy(np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32))
    semantic = torch.from_numpy(frame.semantic)
    tight = math.radians(1.0)
    pitched = RoadScale(settings(camera_pitch=math.radians(2.2), road_max_tilt=tight)).measure(
        depth, semantic, frame.intrinsics)
    level = RoadScale(settings(road_max_tilt=tight)).measure(depth, semantic, frame.intrinsics)
    assert pitched.accepted and pitched.tilt < tight
    assert level.reason == "tilted" and level.tilt > tight
    assert level.fitted_pitch == pytest.approx(pitched.fitted_pitch) and level.fitted_pitch > math.radians(1.5)
    assert RoadScaleSettings(camera_height=1.0, camera_pitch=0.1).expected_up() == pytest.approx(
        (0.0, -math.cos(0.1), -math.sin(0.1)))


def test_rejections_without_road_on_a_wall_labelled_road_and_on_a_tilted_plane() -> None:
    road = RoadScale(settings(road_max_tilt=0.15))
    ground = plane_depth(unit((0, -1, 0)), 1.5)
    ok = road.measure(torch.from_numpy(ground), labels(ROAD), INTR)
    assert ok.accepted and ok.scale == pytest.approx(1.0, rel=1e-4) and ok.tilt < 1e-3
    no_road = road.measure(torch.from_numpy(ground), labels(BUILDING), INTR)
    assert no_road.reason == "few_road_pixels" and no_road.road_pixels == 0 and no_road.plane is None
    sidewalk = RoadScale(settings(road_labels=(ROAD, SIDEWALK))).measure(torch.from_numpy(ground), labels(SIDEWALK),
                                                                       INTR)
    assert sidewalk.accepted  # sidewalk counts only when asked for
    wall_ahead = road.measure(torch.full((60, 160), 10.0), labels(ROAD), INTR)
    assert wall_ahead.reason == "tilted" and wall_ahead.tilt == pytest.approx(math.pi / 2, abs=1e-3)
    side_wall = road.measure(torch.from_numpy(plane_depth(unit((-1, 0, 0)), 3.0)), labels(ROAD), INTR)
    assert side_wall.reason == "tilted" and side_wall.tilt == pytest.approx(math.pi / 2, abs=1e-3)
    for angle, reason in ((math.radians(5), "accepted"), (math.radians(20), "tilted")):
        for rotation in (rotation_x(angle), rotation_z(angle)):  # pitched and rolled
            tilted = road.measure(torch.from_numpy(plane_depth(rotation @ UP, 1.5)), labels(ROAD), INTR)
            assert tilted.reason == reason and tilted.tilt == pytest.approx(angle, abs=1e-3)
    no_camera = road.measure(torch.from_numpy(ground), labels(ROAD), None)
    assert no_camera.reason == "no_intrinsics"


def test_noise_labelled_road_and_too_little_road_are_rejected() -> None:
    rng = np.random.default_rng(1)
    noise_depth = torch.from_numpy(rng.uniform(1.0, 80.0, (60, 160)).astype(np.float32))
    noise_labels = torch.from_numpy(rng.integers(0, 2, (60, 160)).astype(np.uint8))
    result = RoadScale(settings()).measure(noise_depth, noise_labels, INTR)
    assert result.reason in ("low_inlier_ratio", "tilted") and not result.accepted
    ground = torch.from_numpy(plane_depth(unit((0, -1, 0)), 1.5))
    patch = labels(BUILDING)
    patch[50:, :10] = ROAD  # 100 of 9600 pixels: about 1 %
    assert RoadScale(settings(road_min_fraction=0.02)).measure(ground, patch, INTR).reason == "few_road_pixels"
    assert RoadScale(settings(road_min_fraction=0.01)).measure(ground, patch, INTR).accepted
    with pytest.raises(InvalidInputError, match="intrinsics of 80x30 do not match depth"):
        RoadScale(settings()).measure(ground, labels(ROAD), Intrinsics(50.0, 50.0, 40.0, 15.0, 80, 30))


# ---------------------------------------------------------------------------------------------------------------
# a sequence: smoothing, holding, counts, diagnostics


def test_median_smoothing_holding_through_frames_without_road_and_reset() -> None:
    road = RoadScale(settings(scale_window=3))
    assert road.scale == 1.0 and road.diagnostics()["road_fitted_camera_height"] == "none"
    semantic = labels(ROAD)
    nothing = labels(BUILDING)
    assert road.update(torch.from_numpy(plane_depth(unit((0, -1, 0)), 1.5)), nothing, INTR) == 1.0  # before any
    applied = []
    for height in (3.0, 1.5, 1.0, 0.75, 1.2):  # frame scales 0.5, 1, 1.5, 2, 1.25
        applied.append(road.update(torch.from_numpy(plane_depth(unit((0, -1, 0)), height)), semantic, INTR))
    assert applied == pytest.approx([0.5, 0.75, 1.0, 1.5, 1.5], rel=1e-4)  # medians of the last 3 accepted
    held = [road.update(torch.full((60, 160), 10.0), semantic, INTR),  # a wall labelled road
            road.update(torch.from_numpy(plane_depth(unit((0, -1, 0)), 1.5)), nothing, INTR)]
    assert held == pytest.approx([1.5, 1.5], rel=1e-4)
    assert road.accepted == 5 and road.rejected == {reason: {"few_road_pixels": 2, "tilted": 1}.get(reason, 0)
                                                    for reason in REJECT_REASONS}
    diagnostics = road.diagnostics()
    assert diagnostics["road_scale"] == "1.5000" and diagnostics["road_frames_accepted"] == "5"
    assert diagnostics["road_frames_rejected"] == "3" and diagnostics["road_rejected_tilted"] == "1"
    assert diagnostics["road_last_frame"] == "few_road_pixels"
    assert float(diagnostics["road_fitted_camera_height"]) == pytest.approx(10.0, rel=1e-3)  # the wall's fit
    assert diagnostics["road_camera_height"] == "1.500"
    summary = road.summary()
    assert summary["frames"] == 8 and summary["accepted"] == 5 and summary["scale"] == pytest.approx(1.5, rel=1e-4)
    road.reset()
    assert road.scale == 1.0 and road.accepted == 0 and sum(road.rejected.values()) == 0 and road.last is None


# ---------------------------------------------------------------------------------------------------------------
# settings


@pytest.mark.parametrize("height", [None, -1.0, 0.0, 0, float("nan"), True, "1.6"])
def test_camera_height_missing_or_not_positive_is_one_line_naming_it(height: object) -> None:
    with pytest.raises(ConfigError) as info:
        RoadScaleSettings(camera_height=height)
    message = str(info.value)
    assert "camera_height" in message and "must be > 0 metres when scale_from_road is on" in message
    assert "\n" not in message
    if height is not None:
        assert f"camera_height = {height!r}" in message


def test_settings_validate_every_field_and_the_mode() -> None:
    with pytest.raises(ConfigError, match=r"^camera_height = -1.0 must be > 0 metres when scale_from_road is on$"):
        RoadScaleSettings(camera_height=-1.0)
    for field, value, message in (
        ("camera_pitch", 2.0, "camera_pitch = 2.0 must be within"),
        ("camera_pitch", "x", "camera_pitch = 'x' must be a finite number"),
        ("scale_window", 0, r"scale_window = 0 must be an integer in \[1, 1000\]"),
        ("scale_window", 2.5, "scale_window = 2.5 must be an integer"),
        ("road_labels", (), r"road_labels = \(\) must be a non-empty list of train ids"),
        ("road_labels", (19,), r"road_labels = \(19,\) must be a non-empty list"),
        ("road_min_fraction", 0.0, r"road_min_fraction = 0.0 must be in \(0, 1\]"),
        ("road_min_inlier_ratio", 1.5, "road_min_inlier_ratio = 1.5 must be in"),
        ("road_inlier_tolerance", float("inf"), "road_inlier_tolerance = inf must be a finite number"),
        ("road_max_tilt", -0.1, "road_max_tilt = -0.1 must be in"),
        ("road_max_points", 2, "road_max_points = 2 must be an integer in"),
    ):
        with pytest.raises(ConfigError, match=message):
            settings(**{field: value})
    assert settings(camera_pitch=float("nan")).camera_pitch is None  # NaN: a ROS parameter's "not given"
    assert settings(scale_window=4.0, road_labels=[1, 0, 1]).road_labels == (0, 1)
    assert settings(road_labels=array.array("q", [0, 1])).road_labels == (0, 1)  # rclpy's integer lists
    with pytest.raises(ConfigError, match="road_labels = '0' must be a non-empty list"):
        settings(road_labels="0")
    assert road_scale_settings("off", {"camera_height": -5.0}) is None
    assert road_scale_settings("on", {"camera_height": 1.65, "scale_window": 5}) == RoadScaleSettings(1.65,
                                                                                                       scale_window=5)
    with pytest.raises(ConfigError, match="scale_from_road = 'auto' must be one of off, on"):
        road_scale_settings("auto", {})
    with pytest.raises(ConfigError, match="unknown road scale setting 'camera_heigth'"):
        road_scale_settings("on", {"camera_heigth": 1.6})
    with pytest.raises(ConfigError, match="camera_height is not set"):
        road_scale_settings("on", {})


# ---------------------------------------------------------------------------------------------------------------
# the frame stage


def test_stage_scales_depth_only_and_keeps_nan() -> None:
    stage = RoadScaleStage(settings())
    assert stage.needs == ("depth", "semantic")
    depth = torch.from_numpy(plane_depth(unit((0, -1, 0)), 3.0))  # the road seen from twice the height: scale 0.5
    confidence = torch.rand(60, 160)
    semantic = labels(ROAD)
    image = torch.zeros(60, 160, 3, dtype=torch.uint8)
    outputs = EstimatorOutputs(depth=depth, semantic=semantic, confidence=confidence, intrinsics=INTR, image=image)
    result = stage.process(outputs, FrameContext(stamp_ns=1))
    assert stage.scale == pytest.approx(0.5, rel=1e-4)
    assert torch.equal(torch.isnan(result.depth), torch.isnan(depth)) and bool(torch.isnan(depth).any())
    valid = ~torch.isnan(depth)
    assert torch.allclose(result.depth[valid], depth[valid] * stage.scale)
    assert result.semantic is semantic and result.confidence is confidence and result.image is image
    assert result.intrinsics == INTR and outputs.depth is depth  # the input is not modified
    assert stage.diagnostics()["road_frames_accepted"] == "1"
    stage.reset()
    unchanged = stage.process(dataclasses.replace(outputs, semantic=labels(BUILDING)), FrameContext(stamp_ns=2))
    assert stage.scale == 1.0 and unchanged.depth is depth
    with pytest.raises(InvalidInputError, match="needs the semantic output"):
        stage.process(dataclasses.replace(outputs, semantic=None), FrameContext(stamp_ns=3))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_fit_on_cuda_matches_the_cpu() -> None:
    frame = render_frame("kitti_like", 1, seed=77, height=96, width=320)
    depth = torch.from_numpy(np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32))
    semantic = torch.from_numpy(frame.semantic)
    road = RoadScale(RoadScaleSettings(camera_height=1.65))
    cpu = road.measure(depth, semantic, frame.intrinsics)
    cuda = road.measure(depth.cuda(), semantic.cuda(), frame.intrinsics)
    assert cuda.reason == cpu.reason == "accepted"
    assert cuda.scale == pytest.approx(cpu.scale, rel=1e-4) and cuda.road_pixels == cpu.road_pixels

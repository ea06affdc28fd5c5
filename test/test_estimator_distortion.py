"""Lens distortion in the estimator: a generated street scene seen through a known lens is undistorted in the
estimator's one resampling; outputs, camera_info and points are in the undistorted pinhole geometry; bad models are
refused per frame; distorted and pinhole frames mix in a batch."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from semantic_depth_ros.data.synthetic.domains import domain_intrinsics, domain_spec
from semantic_depth_ros.data.synthetic.layout import build_world
from semantic_depth_ros.data.synthetic.render import render_world
from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics, scale_intrinsics
from semantic_depth_ros.geometry.undistort import check_camera_model
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.labels import IGNORE_LABEL
from semantic_depth_ros.messages import cloud_array
from semantic_depth_ros.model.config import ModelConfig
from semantic_depth_ros.pipeline import CameraOutputs, OutputPlan
from helpers import make_checkpoint

SCALE = 3  # sub-samples per camera pixel and axis of the reference renders (area-averaged)
CAMERA = domain_intrinsics("kitti_like", 188, 621)
LENSES = {
    "plumb_bob": ("plumb_bob", (-0.3, 0.09, 0.001, -0.0005, -0.01)),  # barrel: the undistorted image is a crop
    "equidistant": ("equidistant", (-0.03, 0.01, -0.004, 0.001)),
    "pincushion": ("plumb_bob", (0.25, 0.05, 0.0, 0.0, 0.0)),  # the undistorted corners have no data
}
# a 128x416 network input: the 188x621 camera is shrunk 1.5x into it (two tent-filtered sub-samples per pixel)
WIDE_CONFIG = ModelConfig(name="tiny", input_height=128, input_width=416, num_depth_bins=16, min_depth=1.0,
                          max_depth=80.0, decoder_channels=(32, 16), focal_px=100.0)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _pixel_rays(intrinsics: Intrinsics, lens: tuple[str, tuple[float, ...]] | None) -> np.ndarray:
    """(H*SCALE) x (W*SCALE) x 2 normalised pinhole coordinates (x/z, y/z) seen by SCALE x SCALE sub-samples of each
    camera pixel, through the lens (``cv2.undistortPoints``) or a pinhole (None)."""
    us = (np.arange(intrinsics.width * SCALE) + 0.5) / SCALE - 0.5
    vs = (np.arange(intrinsics.height * SCALE) + 0.5) / SCALE - 0.5
    u, v = np.meshgrid(us, vs)
    pixels = np.stack((u, v), axis=-1).reshape(-1, 1, 2)
    if lens is None:
        return np.stack(((u - intrinsics.cx) / intrinsics.fx, (v - intrinsics.cy) / intrinsics.fy), axis=-1)
    model, d = lens
    if model == "equidistant":
        rays = cv2.fisheye.undistortPoints(pixels, intrinsics.matrix(), np.asarray(d))
    else:
        rays = cv2.undistortPoints(pixels, intrinsics.matrix(), np.asarray(d))
    return rays.reshape(u.shape + (2,))


def _render_through(lenses: list[tuple[str, tuple[float, ...]] | None], index: int = 3,
                    intrinsics: Intrinsics = CAMERA) -> list[np.ndarray]:
    """One street scene seen by the camera through each lens (None = pinhole), HxWx3 uint8: a pinhole render
    SCALE times finer and wide enough for every ray, read where each sub-sample's ray lands (``cv2.remap``),
    area-averaged to the camera's pixels."""
    rays = [_pixel_rays(intrinsics, lens) for lens in lenses]
    low = np.min([r.reshape(-1, 2).min(axis=0) for r in rays], axis=0)
    high = np.max([r.reshape(-1, 2).max(axis=0) for r in rays], axis=0)
    fx, fy, margin = intrinsics.fx * SCALE, intrinsics.fy * SCALE, 3
    fine = Intrinsics(fx=fx, fy=fy, cx=-low[0] * fx + margin, cy=-low[1] * fy + margin,
                      width=math.ceil((high[0] - low[0]) * fx) + 2 * margin,
                      height=math.ceil((high[1] - low[1]) * fy) + 2 * margin)
    world = build_world(domain_spec("kitti_like"), index, 0)
    sharp = render_world(world, fine, (0, index), with_lidar=False).rgb
    images = []
    for ray in rays:
        map_x = (ray[..., 0] * fine.fx + fine.cx).astype(np.float32)
        map_y = (ray[..., 1] * fine.fy + fine.cy).astype(np.float32)
        sub = cv2.remap(sharp, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        images.append(cv2.resize(sub, (intrinsics.width, intrinsics.height), interpolation=cv2.INTER_AREA))
    return images


class _RecordingRunner:
    """The estimator's runner, keeping a copy of every network input batch."""

    def __init__(self, runner: object) -> None:
        self.runner = runner
        self.inputs: list[torch.Tensor] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self.runner, name)

    def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> dict[str, torch.Tensor]:
        self.inputs.append(x.detach().float().clone())
        return self.runner(x, heads)


def _network_input(estimator: DepthEstimator, image: np.ndarray, camera: Intrinsics | CameraModel) -> torch.Tensor:
    """1x3xHnxWn input the estimator gives its network for this frame, in [0, 1]."""
    recorder = _RecordingRunner(estimator.runner)
    estimator.runner = recorder
    try:
        estimator.estimate(image, camera=camera, outputs=("depth",))
    finally:
        estimator.runner = recorder.runner
    return recorder.inputs[0]


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator(make_checkpoint(), device="cpu")


@pytest.fixture(scope="module")
def wide_estimator() -> DepthEstimator:
    return DepthEstimator(make_checkpoint(WIDE_CONFIG), device="cpu")


@pytest.mark.parametrize("lens_name", ["plumb_bob", "equidistant"])
def test_undistorted_network_input_equals_the_pinhole_renders(wide_estimator: DepthEstimator,
                                                              lens_name: str) -> None:
    """Measured against the pinhole render's input (grey levels of 255, mean / 99th percentile): plumb_bob 1.00 /
    7.7 undistorted (``cv2.remap`` at the camera size then the plain letterbox, two resamplings: 0.81 / 7.0)
    against 13.3 / 109 without undistortion; equidistant 1.00 / 7.8 (two resamplings 0.82 / 7.0) against 13.8 / 110.
    The 99th percentile comes from the borders, where the barrel lens spent fewer camera pixels on the scene."""
    model, d = LENSES[lens_name]
    distorted, pinhole = _render_through([LENSES[lens_name], None])
    camera = CameraModel(CAMERA, model, d)
    reference = _network_input(wide_estimator, pinhole, CAMERA)
    undistorted = _network_input(wide_estimator, distorted, camera)
    skipped = _network_input(wide_estimator, distorted, CAMERA)  # the same image taken as a pinhole one
    error = (undistorted - reference).abs() * 255
    skipped_error = (skipped - reference).abs() * 255
    print(f"{lens_name}: undistorted mean {error.mean():.2f} p99 {error.quantile(0.99):.1f}, "
          f"skipped mean {skipped_error.mean():.2f} p99 {skipped_error.quantile(0.99):.1f} (grey levels)")
    assert error.mean() < 1.3 and error.quantile(0.99) < 10
    assert skipped_error.mean() > 8 * error.mean() and skipped_error.quantile(0.99) > 8 * error.quantile(0.99)


@pytest.mark.parametrize("resolution", ["input", "network"])
def test_outputs_are_in_the_undistorted_pinhole_geometry(estimator: DepthEstimator, resolution: str) -> None:
    distorted, pinhole = _render_through([LENSES["plumb_bob"], None])
    camera = CameraModel(CAMERA, *LENSES["plumb_bob"])
    out = estimator.estimate(distorted, camera=camera, output_resolution=resolution)
    height, width = out.depth.shape
    assert out.intrinsics == scale_intrinsics(CAMERA, width, height)
    fields = CameraOutputs(OutputPlan(("depth", "depth_info", "points"))).messages(
        out, 0, depth_range=estimator.depth_range()).fields
    info = fields["depth_info"]
    assert (info.distortion_model, info.d) == ("plumb_bob", (0.0,) * 5)
    assert info.k == out.intrinsics.k() and info.p == out.intrinsics.p()
    assert (info.width, info.height) == (width, height)
    # points: the back-projection of the published depth with the published K
    k = np.asarray(info.k).reshape(3, 3)
    z = out.depth.numpy().astype(np.float64)
    v, u = np.mgrid[0:height, 0:width]
    points = cloud_array(fields["points"])
    valid = np.isfinite(z)
    assert valid.mean() > 0.5
    np.testing.assert_allclose(points[..., 0][valid], ((u - k[0, 2]) / k[0, 0] * z)[valid], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(points[..., 1][valid], ((v - k[1, 2]) / k[1, 1] * z)[valid], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(points[..., 2][valid], z[valid].astype(np.float32))
    assert np.isnan(points[..., :3][~valid]).all()
    # the colours are the undistorted image's: the pinhole render's, within interpolation error
    expected = cv2.resize(pinhole, (width, height), interpolation=cv2.INTER_AREA) if resolution == "network" \
        else pinhole
    assert np.abs(out.image.numpy().astype(float) - expected).mean() < 2.0
    assert np.abs(estimator.estimate(distorted, camera=CAMERA, output_resolution=resolution,
                                     outputs=("image",)).image.numpy().astype(float) - expected).mean() > 8.0


def test_pixels_without_image_data_are_nan_with_no_confidence_and_no_class(estimator: DepthEstimator) -> None:
    camera = CameraModel(CAMERA, *LENSES["pincushion"])
    (distorted,) = _render_through([LENSES["pincushion"]])
    out = estimator.estimate(distorted, camera=camera)
    empty = out.image.sum(dim=-1) == 0  # black: no data (the scene has no black pixel)
    assert 0.001 < empty.float().mean() < 0.2 and empty[0, 0] and empty[-1, -1] and not empty[94, 310]
    assert torch.isnan(out.depth[empty]).all()
    assert (out.confidence[empty] == 0).all() and (out.semantic[empty] == IGNORE_LABEL).all()
    assert (out.semantic[~empty] < 19).all() and torch.isfinite(out.depth[~empty]).any()


def test_zero_distortion_is_the_pinhole_path(estimator: DepthEstimator) -> None:
    image = _render_through([None])[0]
    fresh = DepthEstimator(make_checkpoint(), device="cpu")
    plain = fresh.estimate(image, camera=CAMERA)
    for camera in (CameraModel(CAMERA, "plumb_bob", (0.0,) * 5), CameraModel(CAMERA, "", ()),
                   CameraModel(CAMERA, "unknown_but_zero", (0.0, 0.0))):
        out = fresh.estimate(image, camera=camera)
        assert torch.equal(out.image, plain.image) and out.intrinsics == plain.intrinsics
        torch.testing.assert_close(out.depth, plain.depth, rtol=0, atol=0, equal_nan=True)
    assert fresh.cache_sizes()["undistortions"] == 0


def test_bad_models_are_refused_and_the_next_good_frame_is_served(estimator: DepthEstimator) -> None:
    distorted = _render_through([LENSES["plumb_bob"]])[0]
    good = CameraModel(CAMERA, *LENSES["plumb_bob"])
    expected = DepthEstimator(make_checkpoint(), device="cpu").estimate(distorted, camera=good)
    with pytest.raises(InvalidInputError, match=r"^distortion model 'kannala_brandt' is not supported \(supported: "
                                                r"plumb_bob, rational_polynomial, equidistant\)$"):
        estimator.estimate(distorted, camera=CameraModel(CAMERA, "kannala_brandt", (0.1, 0.0, 0.0, 0.0)))
    with pytest.raises(InvalidInputError, match="^distortion model 'plumb_bob' needs 5 coefficients in D, got 4$"):
        estimator.estimate(distorted, camera=CameraModel(CAMERA, "plumb_bob", (0.1, 0.0, 0.0, 0.0)))
    with pytest.raises(InvalidInputError, match="^distortion model 'fisheye' is not supported"):
        check_camera_model(CameraModel(CAMERA, "fisheye", (0.1, 0.0, 0.0, 0.0)))  # the same check, before batching
    assert check_camera_model(good) is good
    assert check_camera_model(CameraModel(CAMERA, "fisheye", (0.0,) * 4)).d == (0.0,) * 4  # zero D: no distortion
    out = estimator.estimate(distorted, camera=good)
    torch.testing.assert_close(out.depth, expected.depth, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(out.semantic, expected.semantic) and torch.equal(out.image, expected.image)


def test_a_batch_mixing_distorted_and_pinhole_frames_equals_single_calls(estimator: DepthEstimator) -> None:
    small = domain_intrinsics("kitti_like", 120, 400)
    barrel, plain = _render_through([LENSES["plumb_bob"], None])
    fisheye, = _render_through([LENSES["equidistant"]], index=5, intrinsics=small)
    frames = [(barrel, CameraModel(CAMERA, *LENSES["plumb_bob"])), (plain, CAMERA),
              (fisheye, CameraModel(small, *LENSES["equidistant"])), (plain, None)]
    for resolution in ("input", "network"):
        batch = estimator.estimate_batch(frames, output_resolution=resolution)
        for (image, camera), out in zip(frames, batch):
            single = estimator.estimate(image, camera=camera, output_resolution=resolution)
            torch.testing.assert_close(out.depth, single.depth, rtol=1e-5, atol=0, equal_nan=True)
            torch.testing.assert_close(out.confidence, single.confidence, rtol=1e-5, atol=1e-6)
            assert torch.equal(out.semantic, single.semantic) and torch.equal(out.image, single.image)
            assert out.intrinsics == single.intrinsics
        assert batch[3].intrinsics is None

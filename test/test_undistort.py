"""Lens undistortion: OpenCV maps (geometry), the fused undistort + letterbox resampling (inference), the
estimator's bounded cache of them."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from helpers import make_checkpoint

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics
from semantic_depth_ros.geometry.letterbox import letterbox
from semantic_depth_ros.geometry.undistort import undistortion_map, valid_mask, validate_distortion
from semantic_depth_ros.inference import estimator as estimator_module
from semantic_depth_ros.inference.preprocess import resize_rgb, to_network_input
from semantic_depth_ros.inference.undistortion import build_undistortion

CPU = torch.device("cpu")
KITTI = Intrinsics(fx=721.5, fy=721.5, cx=609.6, cy=172.9, width=1242, height=375)
WIDE = Intrinsics(fx=330.0, fy=330.0, cx=318.2, cy=241.7, width=640, height=480)
CAMERAS = {
    "plumb_bob": (KITTI, (-0.37, 0.2, 0.001, -0.0005, -0.07)),
    "rational_polynomial": (KITTI, (0.6, -0.2, 0.0012, -0.0008, 0.03, 0.95, 0.04, 0.02)),
    "equidistant": (WIDE, (0.05, -0.012, 0.003, -0.0008)),
}


def _project_distorted(points: np.ndarray, intrinsics: Intrinsics, model: str, d: tuple[float, ...]) -> np.ndarray:
    """Nx3 camera-frame points -> Nx2 distorted pixels with OpenCV's own projection."""
    k, zero = intrinsics.matrix(), np.zeros(3)
    if model == "equidistant":
        pixels, _ = cv2.fisheye.projectPoints(points.reshape(-1, 1, 3), zero, zero, k, np.asarray(d))
    else:
        pixels, _ = cv2.projectPoints(points, zero, zero, k, np.asarray(d))
    return pixels.reshape(-1, 2)


def _bilinear(values: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Float64 bilinear interpolation of HxW ``values`` at points strictly inside the grid."""
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    v = values.astype(np.float64)
    top = v[y0, x0] * (1 - fx) + v[y0, x0 + 1] * fx
    bottom = v[y0 + 1, x0] * (1 - fx) + v[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """HxWx3 uint8 random texture, Gaussian-blurred (sigma 1 px) so that it has detail at every scale above a pixel."""
    noise = np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 1.0)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    return (noise * 255.0).round().astype(np.uint8)


@pytest.mark.parametrize("model", sorted(CAMERAS))
def test_map_takes_undistorted_pixels_back_to_opencv_projection(model: str) -> None:
    intrinsics, d = CAMERAS[model]
    rng = np.random.default_rng(1)
    u = rng.uniform(1.0, intrinsics.width - 2.0, 4000)
    v = rng.uniform(1.0, intrinsics.height - 2.0, 4000)
    z = rng.uniform(2.0, 60.0, 4000)
    points = np.stack(((u - intrinsics.cx) / intrinsics.fx * z, (v - intrinsics.cy) / intrinsics.fy * z, z), axis=1)
    distorted = _project_distorted(points, intrinsics, model, d)
    inside = ((distorted[:, 0] >= 0) & (distorted[:, 0] <= intrinsics.width - 1)
              & (distorted[:, 1] >= 0) & (distorted[:, 1] <= intrinsics.height - 1))
    assert inside.sum() > 1000
    map_x, map_y = undistortion_map(intrinsics, model, d)
    assert map_x.shape == map_y.shape == (intrinsics.height, intrinsics.width)
    assert map_x.dtype == map_y.dtype == np.float32
    sampled_x = _bilinear(map_x, u[inside], v[inside])
    sampled_y = _bilinear(map_y, u[inside], v[inside])
    error = np.hypot(sampled_x - distorted[inside, 0], sampled_y - distorted[inside, 1])
    assert error.max() < 0.05
    # the distortion is strong enough that the identity would fail this test by far
    assert np.hypot(u[inside] - distorted[inside, 0], v[inside] - distorted[inside, 1]).max() > 5.0


@pytest.mark.parametrize("d", [(), (0.0, 0.0, 0.0, 0.0, 0.0), [0, 0, 0, 0, 0]])
def test_zero_or_empty_distortion_is_none(d) -> None:
    assert validate_distortion("plumb_bob", d) is None
    box = letterbox(KITTI.height, KITTI.width, 188, 620)
    assert build_undistortion(KITTI, "plumb_bob", d, box, 375, 1242, CPU) is None


def test_empty_d_needs_no_model_name() -> None:
    assert validate_distortion("", []) is None


def test_unknown_model_is_rejected_naming_it() -> None:
    with pytest.raises(InvalidInputError, match="distortion model 'kannala_brandt' is not supported"):
        validate_distortion("kannala_brandt", (0.1, 0.0, 0.0, 0.0))
    box = letterbox(KITTI.height, KITTI.width, 188, 620)
    with pytest.raises(InvalidInputError, match="'fisheye'"):
        build_undistortion(KITTI, "fisheye", (0.1, 0.0, 0.0, 0.0), box, 375, 1242, CPU)


@pytest.mark.parametrize("model,length", [("plumb_bob", 4), ("plumb_bob", 8), ("rational_polynomial", 5),
                                          ("equidistant", 5)])
def test_wrong_d_length_is_rejected(model: str, length: int) -> None:
    with pytest.raises(InvalidInputError, match=f"'{model}' needs .* coefficients in D, got {length}"):
        validate_distortion(model, (0.01,) * length)


def test_non_finite_or_non_numeric_d_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="must be finite"):
        validate_distortion("plumb_bob", (0.1, float("nan"), 0.0, 0.0, 0.0))
    with pytest.raises(InvalidInputError, match="not a list of numbers"):
        validate_distortion("plumb_bob", ("a", 0.0, 0.0, 0.0, 0.0))


@pytest.mark.parametrize("network", [(188, 620), (384, 1280), (300, 300)])
def test_fused_network_input_equals_remap_then_letterbox(network: tuple[int, int]) -> None:
    """Downscale with anti-aliasing (188x620, 300x300 with padding rows) and upscale (384x1280, padding columns)."""
    intrinsics, d = CAMERAS["plumb_bob"]
    image = _texture(intrinsics.height, intrinsics.width)
    map_x, map_y = undistortion_map(intrinsics, "plumb_bob", d)
    undistorted = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box = letterbox(intrinsics.height, intrinsics.width, *network)
    reference = to_network_input(torch.from_numpy(undistorted), box, dtype=torch.float32, channels_last=False)
    undistortion = build_undistortion(intrinsics, "plumb_bob", d, box, intrinsics.height, intrinsics.width, CPU)
    fused = undistortion.network_input(torch.from_numpy(image), dtype=torch.float32, channels_last=True)
    assert fused.shape == (1, 3, *network)
    assert fused.is_contiguous(memory_format=torch.channels_last)
    difference = (fused - reference).abs() * 255.0
    # measured (grey levels): 0.82 (188x620), 1.78 (384x1280: two bilinear interpolations of a sharp texture
    # against one), 0.47 (300x300); skipping the undistortion instead gives 15 to 40 times more
    assert difference.mean() < 2.5
    skipped = to_network_input(torch.from_numpy(image), box, dtype=torch.float32, channels_last=False)
    assert (fused - skipped).abs().mean() * 255.0 > 8.0 * difference.mean()
    # the device path (grid_sample in float32, used off the CPU) gives the same input as the CPU's cv2.remap path
    on_device = undistortion.network(torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0).float()) / 255.0
    assert on_device.shape == fused.shape
    assert ((on_device - fused).abs().mean() * 255.0) < 0.5  # measured 0.09, 0.31, 0.04
    assert ((on_device - reference).abs().mean() * 255.0) < 2.5
    # the padding replicates the content's edge rows and columns, as the letterbox does
    assert any((box.top, box.bottom, box.left, box.right))
    content = fused[..., box.top:box.top + box.resized_height, box.left:box.left + box.resized_width]
    padded = torch.nn.functional.pad(content, (box.left, box.right, box.top, box.bottom), mode="replicate")
    assert torch.equal(fused, padded)


def test_fused_colours_equal_remap_then_resize() -> None:
    intrinsics, d = CAMERAS["plumb_bob"]
    image = _texture(intrinsics.height, intrinsics.width, seed=3)
    map_x, map_y = undistortion_map(intrinsics, "plumb_bob", d)
    undistorted = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    box = letterbox(intrinsics.height, intrinsics.width, 188, 620)
    for out_height, out_width in ((intrinsics.height, intrinsics.width), (box.resized_height, box.resized_width)):
        undistortion = build_undistortion(intrinsics, "plumb_bob", d, box, out_height, out_width, CPU)
        colours = undistortion.colours(torch.from_numpy(image))
        reference = resize_rgb(torch.from_numpy(undistorted), out_height, out_width)
        assert colours.shape == (out_height, out_width, 3) and colours.dtype == torch.uint8
        difference = (colours.float() - reference.float()).abs().mean()
        # measured: 0.19 at the camera's size (the same map, in OpenCV's fixed point), 0.8 at 187x620
        assert difference < 1.5


def test_pixels_mapping_outside_the_distorted_image_are_invalid_and_black() -> None:
    intrinsics = WIDE
    d = (0.25, 0.08, 0.0, 0.0, 0.0)  # pincushion: the undistorted corners look outside the distorted image
    box = letterbox(intrinsics.height, intrinsics.width, 188, 620)
    undistortion = build_undistortion(intrinsics, "plumb_bob", d, box, intrinsics.height, intrinsics.width, CPU)
    map_x, map_y = undistortion_map(intrinsics, "plumb_bob", d)
    expected = (map_x >= -0.5) & (map_x <= 639.5) & (map_y >= -0.5) & (map_y <= 479.5)
    valid = undistortion.valid.numpy()
    assert valid.dtype == bool and valid.shape == (480, 640)
    assert np.array_equal(valid, expected)
    assert not valid[0, 0] and not valid[-1, -1] and valid[240, 320]
    assert 0.01 < (~valid).mean() < 0.5
    colours = undistortion.colours(torch.full((480, 640, 3), 200, dtype=torch.uint8)).numpy()
    assert (colours[~valid] == 0).all() and (colours[valid] == 200).all()
    small = valid_mask(map_x, map_y, 240, 320)
    assert small.shape == (240, 320) and not small[0, 0] and small[120, 160]


def test_the_estimator_caches_undistortions_by_camera_and_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keyed by D, K, image and output size: a repeated camera builds nothing, each change builds once, and the
    least recently used entry goes when the cache is full."""
    builds: list[tuple] = []
    build = estimator_module.build_undistortion
    monkeypatch.setattr(estimator_module, "build_undistortion", lambda *args: builds.append(args) or build(*args))
    monkeypatch.setattr(estimator_module, "UNDISTORTION_CACHE_SIZE", 3)
    estimator = estimator_module.DepthEstimator(make_checkpoint(), device="cpu")
    intrinsics, d = CAMERAS["plumb_bob"]
    moved = Intrinsics(fx=700.0, fy=700.0, cx=609.6, cy=172.9, width=1242, height=375)
    image = np.zeros((375, 1242, 3), dtype=np.uint8)

    def plan(camera: CameraModel, resolution: str = "input") -> int:
        estimator.estimate(image, camera=camera, output_resolution=resolution, outputs=())  # planned, not run
        return len(builds)

    assert plan(CameraModel(intrinsics, "plumb_bob", d)) == 1
    assert plan(CameraModel(intrinsics, "plumb_bob", list(d))) == 1  # the same D as a list
    assert plan(CameraModel(moved, "plumb_bob", d)) == 2  # another K
    assert plan(CameraModel(intrinsics, "plumb_bob", (-0.3,) + d[1:])) == 3  # another D
    assert plan(CameraModel(intrinsics, "plumb_bob", d)) == 3  # the first: most recently used now
    assert plan(CameraModel(intrinsics, "plumb_bob", d), "network") == 4  # another output size: evicts `moved`
    assert estimator.cache_sizes()["undistortions"] == 3
    assert plan(CameraModel(intrinsics, "plumb_bob", d)) == 4
    assert plan(CameraModel(moved, "plumb_bob", d)) == 5  # evicted: rebuilt
    assert plan(CameraModel(intrinsics, "plumb_bob", (0.0,) * 5)) == 5  # no distortion: nothing to build


def test_letterbox_of_another_image_size_is_rejected() -> None:
    intrinsics, d = CAMERAS["plumb_bob"]
    box = letterbox(480, 640, 188, 620)
    with pytest.raises(InvalidInputError, match="letterbox is for a 640x480 image but the intrinsics are for 1242x375"):
        build_undistortion(intrinsics, "plumb_bob", d, box, 375, 1242, CPU)

"""Stages at the network's resolution: the estimator stops there (``defer``) when the camera's image is larger, the
stages run on those pixels, and one upsampling (``EstimatorOutputs.at_output_size``) gives the camera-size outputs
the message core publishes."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from helpers import make_checkpoint, random_image

from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics, scale_intrinsics
from semantic_depth_ros.inference.estimator import DepthEstimator, EstimatorOutputs
from semantic_depth_ros.inference.postprocess import Upsampling, upsample_outputs
from semantic_depth_ros.inference.preprocess import resize_grid
from semantic_depth_ros.labels import IGNORE_LABEL
from semantic_depth_ros.messages import image_array
from semantic_depth_ros.pipeline import CameraOutputs, FrameContext, OutputPlan

HEIGHT, WIDTH = 120, 300  # larger than the tiny network (64x160): resized to 64x160
NET_HEIGHT, NET_WIDTH = 64, 160
CAMERA = Intrinsics(fx=240.0, fy=240.0, cx=148.0, cy=61.0, width=WIDTH, height=HEIGHT)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator(make_checkpoint(), device="cpu", mask_sky=True)


class Rewrite:
    """A stage that records the outputs it got and rewrites depth, labels and confidence on a fixed pattern."""

    name, needs, enabled = "rewrite", ("depth", "semantic", "confidence"), True

    def __init__(self) -> None:
        self.seen: list[EstimatorOutputs] = []

    def process(self, outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
        self.seen.append(outputs)
        height, width = outputs.depth.shape
        depth = torch.full((height, width), 7.5)
        depth[:, : width // 4] = math.nan  # a stage's NaN (e.g. the filter's) stays NaN
        semantic = torch.zeros((height, width), dtype=torch.uint8)
        semantic[height // 2:] = 13
        confidence = torch.linspace(0.0, 1.0, width).expand(height, width).contiguous()
        return dataclasses.replace(outputs, depth=depth, semantic=semantic, confidence=confidence)

    def reset(self) -> None:
        self.seen.clear()

    def diagnostics(self) -> dict[str, str]:
        return {}


def _serve(estimator: DepthEstimator, camera: CameraOutputs, image: np.ndarray) -> dict[str, np.ndarray]:
    """One frame as the node and infer-bag serve it: the estimator (deferred while a stage works), then the
    camera's frame path; the published arrays by output key."""
    result = estimator.estimate(image, camera=CAMERA, outputs=camera.estimator_outputs(has_intrinsics=True),
                                defer=camera.defers_upsampling)
    fields = camera.messages(result, 0, depth_range=estimator.depth_range()).fields
    return {key: image_array(message) for key, message in fields.items() if key != "depth_info"}


def test_stages_get_the_network_resolution_and_the_published_outputs_are_their_upsampling(estimator) -> None:
    stage = Rewrite()
    camera = CameraOutputs(OutputPlan(("depth", "semantic", "confidence")), [stage])
    assert camera.defers_upsampling
    published = _serve(estimator, camera, random_image(HEIGHT, WIDTH))

    seen = stage.seen[0]
    assert seen.depth.shape == seen.semantic.shape == seen.confidence.shape == (NET_HEIGHT, NET_WIDTH)
    assert seen.intrinsics == scale_intrinsics(CAMERA, NET_WIDTH, NET_HEIGHT)
    assert seen.upsampling is not None and seen.upsampling.intrinsics == CAMERA

    depth, semantic, confidence = published["depth"], published["semantic"], published["confidence"]
    assert depth.shape == semantic.shape == confidence.shape == (HEIGHT, WIDTH)
    # a pixel is NaN exactly where its nearest network pixel is (column u of 300 reads column (u + 0.5) * 160 / 300)
    nearest_col = np.floor((np.arange(WIDTH) + 0.5) * NET_WIDTH / WIDTH).astype(int)
    nan_cols = nearest_col < NET_WIDTH // 4
    assert np.isnan(depth[:, nan_cols]).all() and np.allclose(depth[:, ~nan_cols], 7.5, rtol=1e-6)
    nearest_row = np.floor((np.arange(HEIGHT) + 0.5) * NET_HEIGHT / HEIGHT).astype(int)
    assert np.array_equal(semantic, np.where(nearest_row >= NET_HEIGHT // 2, 13, 0)[:, None].repeat(WIDTH, 1))
    # confidence bilinearly: the network's ramp read at each output pixel's centre (clamped at the borders)
    x = np.clip((np.arange(WIDTH) + 0.5) * NET_WIDTH / WIDTH - 0.5, 0, NET_WIDTH - 1)
    assert np.allclose(confidence, np.broadcast_to(x / (NET_WIDTH - 1), (HEIGHT, WIDTH)), atol=1e-6)


def test_the_published_depth_is_the_stage_depth_upsampled_once(estimator) -> None:
    halve = Halve()
    camera = CameraOutputs(OutputPlan(("depth",)), [halve])
    image = random_image(HEIGHT, WIDTH, seed=3)
    published = _serve(estimator, camera, image)["depth"]
    network = estimator.estimate(image, camera=CAMERA, outputs=("depth",), defer=True)
    expected = dataclasses.replace(network, depth=network.depth / 2).at_output_size(("depth",)).depth.numpy()
    assert np.array_equal(np.isnan(published), np.isnan(expected))
    assert np.array_equal(published[~np.isnan(published)], expected[~np.isnan(expected)])
    direct = estimator.estimate(image, camera=CAMERA, outputs=("depth",)).depth.numpy()  # the old camera-size path
    valid = ~np.isnan(direct) & ~np.isnan(published)
    assert valid.mean() > 0.5 and np.allclose(published[valid], direct[valid] / 2, rtol=0.02)


class Halve:
    name, needs, enabled = "halve", ("depth",), True

    def process(self, outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
        return dataclasses.replace(outputs, depth=outputs.depth / 2) if self.enabled else outputs

    def reset(self) -> None:
        pass

    def diagnostics(self) -> dict[str, str]:
        return {}


def test_without_a_working_stage_the_outputs_are_the_estimators_at_the_camera_size(estimator) -> None:
    off = Halve()
    off.enabled = False
    camera = CameraOutputs(OutputPlan(("depth", "semantic")), [off])
    assert not camera.defers_upsampling
    image = random_image(HEIGHT, WIDTH, seed=4)
    published = _serve(estimator, camera, image)
    direct = estimator.estimate(image, camera=CAMERA, outputs=("depth", "semantic"))
    assert np.array_equal(published["depth"], direct.depth.numpy(), equal_nan=True)
    assert np.array_equal(published["semantic"], direct.semantic.numpy())


def test_defer_stops_only_where_the_camera_is_larger_than_the_network(estimator) -> None:
    small = Intrinsics(fx=40.0, fy=40.0, cx=24.0, cy=10.0, width=50, height=20)
    for image, camera, resolution in ((random_image(20, 50), small, "input"),
                                      (random_image(HEIGHT, WIDTH), CAMERA, "network")):
        out = estimator.estimate(image, camera=camera, output_resolution=resolution, defer=True)
        assert out.upsampling is None and out.at_output_size() is out
    out = estimator.estimate_batch([(random_image(20, 50), small), (random_image(HEIGHT, WIDTH), CAMERA)],
                                   defer=[True, True])
    assert [o.upsampling is None for o in out] == [True, False]
    assert out[1].depth.shape == (NET_HEIGHT, NET_WIDTH) and out[1].at_output_size().depth.shape == (HEIGHT, WIDTH)


def test_only_the_outputs_asked_for_are_upsampled(estimator) -> None:
    out = estimator.estimate(random_image(HEIGHT, WIDTH), camera=CAMERA, defer=True)
    assert out.image.shape == (HEIGHT, WIDTH, 3)  # the point colours are at the camera's size from the start
    final = out.at_output_size(("depth", "image"))
    assert final.depth.shape == (HEIGHT, WIDTH) and final.image is out.image
    assert final.semantic is None and final.confidence is None and final.upsampling is None
    assert final.intrinsics == CAMERA


def test_upsampling_interpolates_log_depth_over_valid_neighbours_only() -> None:
    grid = resize_grid(2, 4, 2, 8, torch.device("cpu"))
    up = Upsampling(grid, None, None)
    depth = torch.tensor([[1.0, math.e, math.nan, math.e ** 3], [1.0, math.e, math.e ** 2, math.e ** 3]])
    out, _, _ = upsample_outputs(up, depth, None, None)
    log = out.log().numpy()
    # row 1: log-depth 0, 1, 2, 3 read at x = (u + 0.5) / 2 - 0.5 (clamped): a linear ramp
    assert np.allclose(log[1], np.clip((np.arange(8) + 0.5) / 2 - 0.5, 0, 3), atol=1e-6)
    # row 0: the NaN pixel's output pixels (u = 4, 5) are NaN; its neighbours interpolate without it
    assert np.isnan(log[0, 4:6]).all()
    assert log[0, 3] == pytest.approx(1.0) and log[0, 6] == pytest.approx(3.0)


def test_pixels_without_image_data_are_masked_at_the_camera_size(estimator) -> None:
    lens = CameraModel(CAMERA, "plumb_bob", (0.4, 0.0, 0.0, 0.0, 0.0))  # pincushion: no data in the corners
    image = random_image(HEIGHT, WIDTH, seed=5)
    out = estimator.estimate(image, camera=lens, defer=True)
    no_data = out.upsampling.no_data
    assert no_data is not None and no_data.shape == (HEIGHT, WIDTH) and no_data.any()
    final = out.at_output_size()
    assert torch.isnan(final.depth[no_data]).all()
    assert (final.semantic[no_data] == IGNORE_LABEL).all() and (final.confidence[no_data] == 0).all()
    direct = estimator.estimate(image, camera=lens)
    assert torch.equal(torch.isnan(direct.depth) & no_data, no_data)  # the same pixels as the direct path's

"""Cameras that change resolution or camera_info mid-stream: every frame is served as a fresh estimator serves it,
and the per-size caches (output grids, undistortions, ray grids, upload buffers) stay bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers import make_checkpoint, random_image

from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics
from semantic_depth_ros.geometry.pointcloud import RAY_GRID_CACHE_SIZE
from semantic_depth_ros.inference import estimator as estimator_module
from semantic_depth_ros.inference.estimator import UNDISTORTION_CACHE_SIZE, DepthEstimator
from semantic_depth_ros.inference.postprocess import GRID_CACHE_SIZE
from semantic_depth_ros.pipeline import CameraOutputs, CloudLayout, OutputPlan

WANTED = ("depth", "points", "semantic", "confidence")
PLAN = OutputPlan(WANTED, CloudLayout("xyzrgbl", stride=2))
LENS = ("plumb_bob", (-0.2, 0.05, 0.0, 0.0, 0.0))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _camera(height: int, width: int, distorted: bool) -> Intrinsics | CameraModel:
    intrinsics = Intrinsics(fx=0.8 * width, fy=0.8 * width, cx=width / 2 - 2.0, cy=height / 2 + 1.0, width=width,
                            height=height)
    return CameraModel(intrinsics, *LENS) if distorted else intrinsics


def _serve(estimator: DepthEstimator, outputs: CameraOutputs, image: np.ndarray,
           camera: Intrinsics | CameraModel) -> dict[str, bytes]:
    """One frame through the estimator and the camera's frame path, as the node serves it: the message bytes."""
    result = estimator.estimate(image, camera=camera, outputs=outputs.estimator_outputs(has_intrinsics=True))
    fields = outputs.messages(result, 0, depth_range=estimator.depth_range()).fields
    return {name: bytes(message.data) for name, message in fields.items()}


def test_a_stream_that_changes_size_and_camera_is_served_at_every_size() -> None:
    streamed, outputs = DepthEstimator(make_checkpoint(), device="cpu"), CameraOutputs(PLAN)
    stream = [(96, 240, True), (96, 240, True), (150, 200, False), (150, 200, True), (96, 240, True),
              (60, 300, False), (96, 240, False)]
    for index, (height, width, distorted) in enumerate(stream):
        image = random_image(height, width, seed=index)
        camera = _camera(height, width, distorted)
        got = _serve(streamed, outputs, image, camera)
        fresh = _serve(DepthEstimator(make_checkpoint(), device="cpu"), CameraOutputs(PLAN), image, camera)
        assert len(got["depth"]) == 4 * height * width
        assert len(got["points"]) == 20 * ((height + 1) // 2) * (width // 2)  # xyzrgbl: 20 bytes a point
        for name in WANTED:
            assert got[name] == fresh[name], f"frame {index} {name}"
        sizes = streamed.cache_sizes()
        assert sizes["grids"] <= GRID_CACHE_SIZE and sizes["undistortions"] <= UNDISTORTION_CACHE_SIZE
        assert sizes["pinned"] <= 1 and outputs.cache_sizes()["rays"] <= RAY_GRID_CACHE_SIZE


def test_caches_stay_bounded_over_many_sizes() -> None:
    estimator = DepthEstimator(make_checkpoint(), device="cpu")
    camera_outputs = CameraOutputs(OutputPlan(("points",)))
    counts, rays = [], []
    for step in range(GRID_CACHE_SIZE + 4):
        height, width = 40 + 2 * step, 100 + 3 * step
        outputs = estimator.estimate(random_image(height, width, seed=step), camera=_camera(height, width, True),
                                     outputs=("depth", "image"))
        camera_outputs.messages(outputs, step, depth_range=estimator.depth_range())
        counts.append(estimator.cache_sizes())
        rays.append(camera_outputs.cache_sizes()["rays"])
    assert counts[-1]["grids"] == GRID_CACHE_SIZE and max(c["grids"] for c in counts) == GRID_CACHE_SIZE
    assert counts[-1]["undistortions"] == min(len(counts), UNDISTORTION_CACHE_SIZE)
    assert rays[-1] == max(rays) == RAY_GRID_CACHE_SIZE


@pytest.mark.ros
def test_every_camera_of_a_full_node_keeps_its_undistortion(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_CAMERAS distorted cameras batched round-robin build each map once (not every batch); more distinct
    cameras than the cache holds still leave it at its bound."""
    from semantic_depth_ros.ros.params import MAX_CAMERAS

    builds = []
    build = estimator_module.build_undistortion
    monkeypatch.setattr(estimator_module, "build_undistortion", lambda *args: builds.append(args) or build(*args))
    estimator = DepthEstimator(make_checkpoint(), device="cpu")
    image = random_image(24, 40, seed=0)
    cameras = [CameraModel(Intrinsics(fx=30.0 + i, fy=30.0 + i, cx=20.0, cy=12.0, width=40, height=24), *LENS)
               for i in range(2 * UNDISTORTION_CACHE_SIZE)]
    fleet = [(image, camera) for camera in cameras[:MAX_CAMERAS]]
    for _ in range(3):  # outputs=(): the frames are planned (undistortion included) without running the network
        estimator.estimate_batch(fleet, outputs=())
    assert len(builds) == MAX_CAMERAS
    estimator.estimate_batch([(image, camera) for camera in cameras], outputs=())
    assert estimator.cache_sizes()["undistortions"] == UNDISTORTION_CACHE_SIZE

"""Cameras that change resolution or camera_info mid-stream: every frame is served as a fresh estimator serves it,
and the per-size caches (output grids, undistortions, ray grids, upload buffers) stay bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics
from semantic_depth_ros.geometry.pointcloud import RayGridCache
from semantic_depth_ros.inference.estimator import GRID_CACHE_SIZE, UNDISTORTION_CACHE_SIZE, DepthEstimator
from semantic_depth_ros.messages import HostStaging, estimator_outputs_for, output_tensors
from test_estimator import make_checkpoint, random_image

WANTED = ["depth", "points", "semantic", "confidence"]
RAY_CACHE_SIZE = 2
LENS = ("plumb_bob", (-0.2, 0.05, 0.0, 0.0, 0.0))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _camera(height: int, width: int, distorted: bool) -> Intrinsics | CameraModel:
    intrinsics = Intrinsics(fx=0.8 * width, fy=0.8 * width, cx=width / 2 - 2.0, cy=height / 2 + 1.0, width=width,
                            height=height)
    return CameraModel(intrinsics, *LENS) if distorted else intrinsics


def _serve(estimator: DepthEstimator, rays: RayGridCache, staging: HostStaging, image: np.ndarray,
           camera: Intrinsics | CameraModel) -> dict[str, np.ndarray]:
    """One frame through the estimator and the message core, as the node serves it (xyzrgbl points)."""
    outputs = estimator.estimate(image, intrinsics=camera, outputs=estimator_outputs_for(WANTED, "xyzrgbl"))
    tensors = output_tensors(WANTED, outputs, depth_range=estimator.depth_range(), point_stride=2, rays=rays,
                             point_fields="xyzrgbl")
    return {name: array.copy() for name, array in staging.fetch(tensors).items()}


def test_a_stream_that_changes_size_and_camera_is_served_at_every_size() -> None:
    streamed = DepthEstimator(make_checkpoint(), device="cpu")
    rays, staging = RayGridCache(max_entries=RAY_CACHE_SIZE), HostStaging()
    stream = [(96, 240, True), (96, 240, True), (150, 200, False), (150, 200, True), (96, 240, True),
              (60, 300, False), (96, 240, False)]
    for index, (height, width, distorted) in enumerate(stream):
        image = random_image(height, width, seed=index)
        camera = _camera(height, width, distorted)
        got = _serve(streamed, rays, staging, image, camera)
        fresh = _serve(DepthEstimator(make_checkpoint(), device="cpu"), RayGridCache(), HostStaging(), image, camera)
        assert got["depth"].shape == (height, width) and got["points"].shape == ((height + 1) // 2, width // 2, 5)
        for name in WANTED:
            np.testing.assert_array_equal(got[name], fresh[name], err_msg=f"frame {index} {name}")
        sizes = streamed.cache_sizes()
        assert sizes["grids"] <= GRID_CACHE_SIZE and sizes["undistortions"] <= UNDISTORTION_CACHE_SIZE
        assert sizes["pinned"] <= 1 and len(rays) <= RAY_CACHE_SIZE


def test_caches_stay_bounded_over_many_sizes() -> None:
    estimator = DepthEstimator(make_checkpoint(), device="cpu")
    rays = RayGridCache(max_entries=RAY_CACHE_SIZE)
    counts = []
    for step in range(GRID_CACHE_SIZE + 4):
        height, width = 40 + 2 * step, 100 + 3 * step
        outputs = estimator.estimate(random_image(height, width, seed=step), intrinsics=_camera(height, width, True),
                                     outputs=("depth", "image"))
        output_tensors(["points"], outputs, depth_range=estimator.depth_range(), point_stride=1, rays=rays)
        counts.append(estimator.cache_sizes())
        assert len(rays) <= RAY_CACHE_SIZE
    assert counts[-1]["grids"] == GRID_CACHE_SIZE and max(c["grids"] for c in counts) == GRID_CACHE_SIZE
    assert counts[-1]["undistortions"] == min(len(counts), UNDISTORTION_CACHE_SIZE)


def test_every_camera_of_a_full_node_keeps_its_undistortion(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_CAMERAS distorted cameras batched round-robin build each map once (not every batch); more distinct
    cameras than the cache holds still leave it at its bound."""
    from semantic_depth_ros.geometry import undistort
    from semantic_depth_ros.ros.params import MAX_CAMERAS

    builds = []
    build = undistort.build_undistortion
    monkeypatch.setattr(undistort, "build_undistortion", lambda *args: builds.append(args) or build(*args))
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

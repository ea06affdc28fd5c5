"""GPU tier: the CUDA paths compute the same function as the CPU reference (skipped without CUDA)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import backproject_organised, build_rays, pack_rgb
from semantic_depth_ros.inference.colorize import colorize_depth, colorize_semantic
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.model.checkpoint import save_checkpoint
from semantic_depth_ros.model.config import load_preset
from semantic_depth_ros.model.network import SemanticDepthNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def resnet18_checkpoint(tmp_path_factory):
    torch.manual_seed(1)
    config = load_preset("resnet18")
    path = tmp_path_factory.mktemp("cuda") / "r18.pt"
    save_checkpoint(path, SemanticDepthNet(config), config, trained=False)
    return path


def _scene(height: int, width: int, seed: int) -> tuple[np.ndarray, Intrinsics]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return image, Intrinsics(fx=0.58 * width, fy=0.58 * width, cx=width / 2, cy=height / 2, width=width, height=height)


def _assert_close_to(ref, out, tolerance: float, what: str) -> None:
    ref_depth, out_depth = ref.depth.numpy(), out.depth.float().cpu().numpy()
    assert np.array_equal(np.isnan(ref_depth), np.isnan(out_depth)) or np.isnan(out_depth).mean() < 1e-3
    both = np.isfinite(ref_depth) & np.isfinite(out_depth)
    rel = np.linalg.norm(out_depth[both] - ref_depth[both]) / np.linalg.norm(ref_depth[both])
    assert rel < tolerance, (what, rel)
    agree = (out.semantic.cpu().numpy() == ref.semantic.numpy()).mean()
    assert agree > 0.97, (what, agree)
    assert out.depth.device.type == "cuda"


@pytest.mark.parametrize("precision,backend,tolerance", [("fp32", "eager", 2e-3), ("fp16", "cudagraphs", 3e-2)])
def test_cuda_estimator_matches_cpu_fp32(resnet18_checkpoint, precision, backend, tolerance):
    reference = DepthEstimator(resnet18_checkpoint, device="cpu", precision="fp32")
    fast = DepthEstimator(resnet18_checkpoint, device="cuda", precision=precision, backend=backend)
    scenes = [_scene(375, 1242, seed) for seed in range(3)]
    refs = [reference.estimate(image, camera=intrinsics) for image, intrinsics in scenes]
    # two DIFFERENT frames replayed back to back, both read only afterwards: stale static outputs would show
    first = fast.estimate(scenes[0][0], camera=scenes[0][1])
    second = fast.estimate(scenes[1][0], camera=scenes[1][1])
    _assert_close_to(refs[0], first, tolerance, f"{precision} frame 0 (read after frame 1)")
    _assert_close_to(refs[1], second, tolerance, f"{precision} frame 1")
    # a batch of three (its own graph per batch size), then single frames again on the batch-1 graphs
    batch = fast.estimate_batch(scenes)
    for seed, (ref, out) in enumerate(zip(refs, batch)):
        _assert_close_to(ref, out, tolerance, f"{precision} batch frame {seed}")
    again = fast.estimate(scenes[2][0], camera=scenes[2][1])
    _assert_close_to(refs[2], again, tolerance, f"{precision} frame 2 after the batch")
    if backend == "cudagraphs":
        assert {key[1][0] for key in fast.runner.graphs} == {1, 3}


def _cloud_inputs(seed: int) -> tuple[Intrinsics, torch.Generator, torch.Tensor, torch.Tensor]:
    """KITTI-sized intrinsics, the generator (for further draws), 375x1242 depth (metres, some NaN) and RGB."""
    intrinsics = Intrinsics(fx=700.0, fy=710.0, cx=620.0, cy=187.0, width=1242, height=375)
    generator = torch.Generator().manual_seed(seed)
    depth = torch.rand(375, 1242, generator=generator) * 80 + 0.5
    depth[::7, ::5] = float("nan")
    rgb = torch.randint(0, 256, (375, 1242, 3), dtype=torch.uint8, generator=generator)
    return intrinsics, generator, depth, rgb


def test_cuda_backprojection_and_colours_are_bit_identical_to_cpu():
    intrinsics, generator, depth, rgb = _cloud_inputs(0)
    cpu = backproject_organised(depth, build_rays(intrinsics, 2, "cpu"), rgb, stride=2)
    gpu = backproject_organised(depth.cuda(), build_rays(intrinsics, 2, "cuda"), rgb.cuda(), stride=2).cpu()
    assert torch.equal(cpu[..., 3].view(torch.int32), gpu[..., 3].view(torch.int32))  # packed rgb bits
    assert torch.equal(pack_rgb(rgb.cuda()).cpu().view(torch.int32), pack_rgb(rgb).view(torch.int32))
    torch.testing.assert_close(gpu[..., :3], cpu[..., :3], rtol=1e-6, atol=1e-5, equal_nan=True)
    ids = torch.randint(0, 256, (375, 1242), generator=generator).to(torch.uint8)
    assert torch.equal(colorize_semantic(ids.cuda()).cpu(), colorize_semantic(ids))
    assert torch.equal(colorize_depth(depth.cuda(), 1.0, 80.0).cpu(), colorize_depth(depth, 1.0, 80.0))


def test_cuda_semantic_cloud_matches_cpu():
    intrinsics, generator, depth, rgb = _cloud_inputs(1)
    labels = torch.randint(0, 19, (375, 1242), dtype=torch.uint8, generator=generator)
    confidence = torch.rand(375, 1242, generator=generator)
    options = dict(stride=2, point_fields="xyzrgblc", drop_labels=(0, 10))
    cpu = backproject_organised(depth, build_rays(intrinsics, 2, "cpu"), rgb, labels=labels, confidence=confidence,
                                **options)
    gpu = backproject_organised(depth.cuda(), build_rays(intrinsics, 2, "cuda"), rgb.cuda(), labels=labels.cuda(),
                                confidence=confidence.cuda(), **options).cpu()
    assert gpu.shape == (188, 621, 6)
    assert torch.equal(cpu[..., 3:].view(torch.int32), gpu[..., 3:].view(torch.int32))  # rgb, label, confidence
    assert torch.equal(torch.isnan(cpu[..., 2]), torch.isnan(gpu[..., 2]))
    torch.testing.assert_close(gpu[..., :3], cpu[..., :3], rtol=1e-6, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("precision,backend,tolerance", [("fp32", "eager", 2e-3), ("fp16", "cudagraphs", 3e-2)])
def test_cuda_undistortion_matches_cpu(resnet18_checkpoint, precision, backend, tolerance):
    from semantic_depth_ros.geometry.intrinsics import CameraModel

    reference = DepthEstimator(resnet18_checkpoint, device="cpu", precision="fp32")
    fast = DepthEstimator(resnet18_checkpoint, device="cuda", precision=precision, backend=backend)
    frames = []
    for seed, (height, width, d) in enumerate([(375, 1242, (0.2, 0.05, 0.0, 0.0, 0.0)),
                                               (480, 640, (-0.3, 0.09, 0.001, -0.0005, 0.0)),
                                               (375, 1242, ())]):
        image, intrinsics = _scene(height, width, seed)
        image = np.ascontiguousarray(np.repeat(np.repeat(image[::8, ::8], 8, 0), 8, 1)[:height, :width])
        frames.append((image, CameraModel(intrinsics, "plumb_bob", d)))
    refs = [reference.estimate(image, camera=camera) for image, camera in frames]
    singles = [fast.estimate(image, camera=camera) for image, camera in frames]
    batch = fast.estimate_batch(frames)
    for index, ref in enumerate(refs):
        for out in (singles[index], batch[index]):
            _assert_close_to(ref, out, tolerance, f"{precision} undistorted frame {index}")
            assert out.intrinsics == ref.intrinsics
            colours = (out.image.cpu().int() - ref.image.int()).abs()
            assert colours.float().mean() < 0.5 and colours.max() <= 3, (index, colours.max())
            black = ref.image.sum(-1) == 0
            assert torch.equal(out.image.cpu().sum(-1) == 0, black)
            assert torch.isnan(out.depth.cpu()[black]).all()
    assert fast.cache_sizes()["pinned"] == 3

"""DepthEstimator: shapes, NaN rules, canonical camera, padding geometry, heads computed, errors."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from helpers import CONFIG, make_checkpoint, random_image

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.inference.benchmark import benchmark_model, latency_stats
from semantic_depth_ros import devices
from semantic_depth_ros.devices import resolve_device, resolve_precision
from semantic_depth_ros.geometry.letterbox import letterbox
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.model.bins import DepthBins
from semantic_depth_ros.model.checkpoint import save_checkpoint
from semantic_depth_ros.model.network import SemanticDepthNet

CONSTANT_BIN = 7
SKY = 10


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def force_depth_bin(model: SemanticDepthNet, index: int = CONSTANT_BIN) -> None:
    """DC head predicts bin ``index`` everywhere with certainty; the (zero-initialised) DRN adds nothing."""
    model.dc_head.classifier.weight.zero_()
    model.dc_head.classifier.bias.zero_()
    model.dc_head.classifier.bias[index] = 50.0


def force_sky(model: SemanticDepthNet) -> None:
    """SC head predicts sky everywhere."""
    model.sc_head.classifier.weight.zero_()
    model.sc_head.classifier.bias.zero_()
    model.sc_head.classifier.bias[SKY] = 50.0


def constant_depth() -> float:
    return float(DepthBins(CONFIG.min_depth, CONFIG.max_depth, CONFIG.num_depth_bins).centers[CONSTANT_BIN])


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator(make_checkpoint(), device="cpu")


@pytest.fixture(scope="module")
def constant_estimator() -> DepthEstimator:
    def edit(model: SemanticDepthNet) -> None:
        force_depth_bin(model)
        force_sky(model)
    return DepthEstimator(make_checkpoint(edit=edit), device="cpu")


# ---------------------------------------------------------------- shapes and types

@pytest.mark.parametrize("height,width", [(64, 160), (100, 300), (240, 160), (37, 51), (20, 40), (375, 1242)])
def test_output_shapes_and_dtypes(estimator: DepthEstimator, height: int, width: int) -> None:
    image = random_image(height, width)
    intrinsics = Intrinsics(fx=2.0 * width, fy=2.0 * width, cx=width / 2, cy=height / 2, width=width, height=height)
    out = estimator.estimate(image, camera=intrinsics)
    for tensor, dtype in ((out.depth, torch.float32), (out.semantic, torch.uint8), (out.confidence, torch.float32)):
        assert tensor.shape == (height, width)
        assert tensor.dtype == dtype
        assert tensor.device.type == "cpu"
    assert out.intrinsics == intrinsics
    assert int(out.semantic.max()) < CONFIG.num_classes
    assert not torch.isnan(out.confidence).any()
    assert float(out.confidence.min()) >= 0.0 and float(out.confidence.max()) <= 1.0

    box = letterbox(height, width, CONFIG.input_height, CONFIG.input_width)
    small = estimator.estimate(image, camera=intrinsics, output_resolution="network")
    expected = (box.resized_height, box.resized_width)
    assert small.depth.shape == small.semantic.shape == small.confidence.shape == expected
    assert (small.intrinsics.width, small.intrinsics.height) == (box.resized_width, box.resized_height)
    assert small.intrinsics.fx == pytest.approx(intrinsics.fx * box.resized_width / width)
    assert small.intrinsics.cx == pytest.approx((intrinsics.cx + 0.5) * box.resized_width / width - 0.5)


def test_letterbox_placement() -> None:
    kitti = letterbox(375, 1242, 188, 620)
    assert (kitti.resized_height, kitti.resized_width, kitti.top, kitti.left, kitti.bottom, kitti.right) == \
        (187, 620, 0, 0, 1, 0)
    vga = letterbox(480, 640, 188, 620)
    assert (vga.resized_height, vga.resized_width, vga.top, vga.left, vga.right) == (188, 251, 0, 184, 185)
    small = letterbox(20, 80, 64, 160)  # upscaled x2 to fill the width
    assert (small.resized_height, small.resized_width, small.top, small.bottom, small.left) == (40, 160, 12, 12, 0)
    assert small.needs_resize and not small.downscales
    with pytest.raises(InvalidInputError, match="image size 0x5"):
        letterbox(5, 0, 64, 160)


def test_without_intrinsics_the_outputs_have_none(estimator: DepthEstimator) -> None:
    out = estimator.estimate(random_image(64, 160))
    assert out.intrinsics is None
    assert out.depth.shape == (64, 160)


def test_views_give_the_same_result_as_contiguous_copies(estimator: DepthEstimator) -> None:
    padded = random_image(50, 130, seed=3)
    view = padded[:, 5:125][:, ::-1]  # non-contiguous, negative stride (the node's row-step / BGR views)
    readonly = np.frombuffer(np.ascontiguousarray(view).tobytes(), dtype=np.uint8).reshape(view.shape)
    assert not view.flags.c_contiguous and not readonly.flags.writeable
    reference = estimator.estimate(np.ascontiguousarray(view))
    for image in (view, readonly):
        out = estimator.estimate(image)
        torch.testing.assert_close(out.depth, reference.depth, equal_nan=True)
        assert torch.equal(out.semantic, reference.semantic)


# ---------------------------------------------------------------- outputs and heads

def _record_heads(estimator: DepthEstimator) -> tuple[list[tuple[str, ...]], Callable[[], None]]:
    calls: list[tuple[str, ...]] = []

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        calls.append(tuple(kwargs["heads"]))
        assert kwargs["upsample"] is False

    handle = estimator.runner.model.register_forward_pre_hook(hook, with_kwargs=True)
    return calls, handle.remove


@pytest.mark.parametrize("outputs,mask_sky,heads", [
    (("depth",), False, ("drn",)),
    (("depth",), True, ("sc", "drn")),
    (("semantic",), False, ("sc",)),
    (("confidence",), False, ("dc",)),
    (("semantic", "confidence"), True, ("dc", "sc")),
    (("depth", "semantic", "confidence"), False, ("dc", "sc", "drn")),
])
def test_only_the_needed_heads_run(estimator: DepthEstimator, outputs: tuple[str, ...], mask_sky: bool,
                                   heads: tuple[str, ...]) -> None:
    calls, remove = _record_heads(estimator)
    estimator.mask_sky = mask_sky
    try:
        out = estimator.estimate(random_image(48, 120), outputs=outputs)
    finally:
        estimator.mask_sky = False
        remove()
    assert calls == [heads]
    for name in ("depth", "semantic", "confidence"):
        assert (getattr(out, name) is not None) == (name in outputs), name


def test_image_output_is_the_input_at_the_output_size(estimator: DepthEstimator) -> None:
    image = random_image(100, 300, seed=3)
    calls, remove = _record_heads(estimator)
    try:
        only = estimator.estimate(image, outputs=("image",))
        both = estimator.estimate(image, outputs=("depth", "image"), output_resolution="network")
    finally:
        remove()
    assert calls == [("drn",)]  # the image alone runs no network
    assert only.depth is None and only.image.dtype == torch.uint8
    np.testing.assert_array_equal(only.image.numpy(), image)
    assert tuple(both.image.shape) == (*both.depth.shape, 3)
    expected = torch.nn.functional.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(),
                                               size=tuple(both.depth.shape), mode="bilinear",
                                               align_corners=False, antialias=True)
    expected = expected.round().clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
    assert torch.equal(both.image, expected)


def test_no_outputs_runs_no_network(estimator: DepthEstimator) -> None:
    calls, remove = _record_heads(estimator)
    try:
        out = estimator.estimate(random_image(48, 120), outputs=())
    finally:
        remove()
    assert calls == []
    assert (out.depth, out.semantic, out.confidence) == (None, None, None)


def test_model_without_drn_uses_the_classification_depth() -> None:
    config = CONFIG.replace(name="no_drn", use_drn=False)
    est = DepthEstimator(make_checkpoint(config, edit=force_depth_bin), device="cpu")
    calls, remove = _record_heads(est)
    try:
        out = est.estimate(random_image(64, 160), outputs=["depth"])
    finally:
        remove()
    assert calls == [("dc",)]
    torch.testing.assert_close(out.depth, torch.full((64, 160), constant_depth()), rtol=1e-5, atol=0)


# ---------------------------------------------------------------- NaN rules and confidence

def test_depth_outside_the_range_is_nan(constant_estimator: DepthEstimator) -> None:
    c = constant_depth()
    image = random_image(64, 160)
    inside = constant_estimator.estimate(image, outputs=("depth",))
    torch.testing.assert_close(inside.depth, torch.full((64, 160), c), rtol=1e-5, atol=0)
    try:
        constant_estimator.min_depth, constant_estimator.max_depth = c + 0.5, None
        assert torch.isnan(constant_estimator.estimate(image, outputs=("depth",)).depth).all()
        constant_estimator.min_depth, constant_estimator.max_depth = None, c - 0.5
        assert torch.isnan(constant_estimator.estimate(image, outputs=("depth",)).depth).all()
        constant_estimator.min_depth, constant_estimator.max_depth = c - 0.5, c + 0.5
        assert not torch.isnan(constant_estimator.estimate(image, outputs=("depth",)).depth).any()
    finally:
        constant_estimator.min_depth = constant_estimator.max_depth = None


def test_sky_is_masked_only_when_asked(constant_estimator: DepthEstimator) -> None:
    image = random_image(70, 150)
    out = constant_estimator.estimate(image)
    assert bool((out.semantic == SKY).all())
    assert not torch.isnan(out.depth).any()
    try:
        constant_estimator.mask_sky = True
        masked = constant_estimator.estimate(image)
        depth_only = constant_estimator.estimate(image, outputs=("depth",))
    finally:
        constant_estimator.mask_sky = False
    assert torch.isnan(masked.depth).all()
    assert depth_only.semantic is None and torch.isnan(depth_only.depth).all()


def test_sky_mask_follows_the_labels_pixel_by_pixel() -> None:
    """Sky on the left half of the input only (the SC logit follows the image's red channel)."""
    def edit(model: SemanticDepthNet) -> None:
        force_depth_bin(model)
        model.sc_head.classifier.weight.zero_()
        model.sc_head.classifier.bias.zero_()
        model.sc_head.classifier.bias[0] = 1.0
        model.sc_head.classifier.bias[SKY] = 0.0
    est = DepthEstimator(make_checkpoint(edit=edit), device="cpu", mask_sky=True)
    original_forward = est.runner.model.forward

    def forward(images: torch.Tensor, heads: tuple[str, ...], upsample: bool) -> dict[str, torch.Tensor]:
        out = original_forward(images, heads=heads, upsample=upsample)
        if "semantic_logits" in out:
            red = torch.nn.functional.adaptive_avg_pool2d(images[:, :1].float(), out["semantic_logits"].shape[-2:])
            out["semantic_logits"][:, SKY] = red * 4.0  # sky where red > 0.25
        return out

    est.runner.model.forward = forward
    image = np.zeros((64, 160, 3), dtype=np.uint8)
    image[:, :80, 0] = 255
    out = est.estimate(image)
    sky = out.semantic == SKY
    assert bool(sky[:, :64].all()) and not bool(sky[:, 96:].any())
    assert torch.equal(torch.isnan(out.depth), sky)


def test_confidence_is_one_for_certain_and_zero_for_uniform_bins(constant_estimator: DepthEstimator) -> None:
    certain = constant_estimator.estimate(random_image(40, 90), outputs=("confidence",)).confidence
    torch.testing.assert_close(certain, torch.ones_like(certain), rtol=0, atol=1e-5)

    def uniform(model: SemanticDepthNet) -> None:
        model.dc_head.classifier.weight.zero_()
        model.dc_head.classifier.bias.zero_()
    est = DepthEstimator(make_checkpoint(edit=uniform), device="cpu")
    flat = est.estimate(random_image(40, 90), outputs=("confidence",)).confidence
    torch.testing.assert_close(flat, torch.zeros_like(flat), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- canonical camera

def test_canonical_camera_rule(constant_estimator: DepthEstimator) -> None:
    c = constant_depth()
    focal = CONFIG.focal_px

    def depth_at(height: int, width: int, fx: float) -> torch.Tensor:
        intrinsics = Intrinsics(fx=fx, fy=fx, cx=width / 2, cy=height / 2, width=width, height=height)
        return constant_estimator.estimate(random_image(height, width), camera=intrinsics,
                                           outputs=("depth",)).depth

    torch.testing.assert_close(depth_at(64, 160, focal), torch.full((64, 160), c), rtol=1e-5, atol=0)
    torch.testing.assert_close(depth_at(64, 160, 2 * focal), torch.full((64, 160), 2 * c), rtol=1e-5, atol=0)
    # twice the image with twice the focal length: the same camera at a finer sampling -> the same depth
    torch.testing.assert_close(depth_at(128, 320, 2 * focal), torch.full((128, 320), c), rtol=1e-5, atol=0)
    # a narrower image that is padded: the scale follows the width, 80 px -> 160 px
    torch.testing.assert_close(depth_at(64, 80, focal), torch.full((64, 80), c), rtol=1e-5, atol=0)
    torch.testing.assert_close(depth_at(32, 80, focal / 2), torch.full((32, 80), c), rtol=1e-5, atol=0)


# ---------------------------------------------------------------- padding geometry

class _RampNetwork(torch.nn.Module):
    """Stand-in network: at stride 8, log-depth = log(2) + 0.1 * (row or column index), label = that index."""

    def __init__(self, axis: int) -> None:
        super().__init__()
        self.axis = axis
        self.inputs: list[torch.Tensor] = []

    def forward(self, images: torch.Tensor, heads: tuple[str, ...], upsample: bool) -> dict[str, torch.Tensor]:
        self.inputs.append(images.clone())
        h, w = images.shape[-2] // 8, images.shape[-1] // 8
        index = torch.arange(h if self.axis == 0 else w, dtype=torch.float32)
        index = index.view(-1, 1).expand(h, w) if self.axis == 0 else index.view(1, -1).expand(h, w)
        depth = torch.exp(math.log(2.0) + 0.1 * index).view(1, 1, h, w)
        probs = torch.full((1, 4, h, w), 0.25)
        logits = torch.nn.functional.one_hot(index.long(), max(h, w)).permute(2, 0, 1).unsqueeze(0).float()
        return {"depth": depth, "dc_depth": depth, "depth_probs": probs, "semantic_logits": logits}


def _expected_cells(out_size: int, start: int, extent: int, first: int, last: int) -> torch.Tensor:
    """Cell-centre coordinate read by each output pixel (stride 8), clamped to the crop's cells."""
    centres = start + (torch.arange(out_size, dtype=torch.float64) + 0.5) * extent / out_size
    return (centres / 8.0 - 0.5).clamp(first, last - 1)


@pytest.mark.parametrize("height,width,axis", [(64, 320, 0), (128, 100, 1)])
def test_padding_never_reaches_the_outputs(height: int, width: int, axis: int) -> None:
    est = DepthEstimator(make_checkpoint(), device="cpu", min_depth=0.5, max_depth=100.0)
    ramp = _RampNetwork(axis)
    est.runner.model = ramp
    image = random_image(height, width)
    out = est.estimate(image)
    box = letterbox(height, width, 64, 160)
    if axis == 0:  # 64x320 -> 32x160 pasted at row 16: content cells are rows 2..5 of 8
        assert (box.top, box.resized_height) == (16, 32)
        cells = _expected_cells(height, box.top, box.resized_height, 2, 6).view(-1, 1).expand(height, width)
    else:  # 128x100 -> 64x50 pasted at column 55: content cells are columns 6..13 of 20
        assert (box.left, box.resized_width) == (55, 50)
        cells = _expected_cells(width, box.left, box.resized_width, 6, 14).view(1, -1).expand(height, width)
    expected_depth = torch.exp(math.log(2.0) + 0.1 * cells).float()
    torch.testing.assert_close(out.depth, expected_depth, rtol=1e-5, atol=0)
    expected_labels = torch.floor(cells + 0.5).to(torch.uint8)  # nearest cell
    assert torch.equal(out.semantic, expected_labels)
    assert set(out.semantic.unique().tolist()) == ({2, 3, 4, 5} if axis == 0 else set(range(6, 14)))

    # the network saw the resized image in the middle and replicated edge pixels around it
    network_input = ramp.inputs[-1][0]
    content = network_input[:, box.top:box.top + box.resized_height, box.left:box.left + box.resized_width]
    if axis == 0:
        assert torch.equal(network_input[:, :box.top], content[:, :1].expand(-1, box.top, -1))
        assert torch.equal(network_input[:, box.top + box.resized_height:], content[:, -1:].expand(-1, box.bottom, -1))
    else:
        assert torch.equal(network_input[:, :, :box.left], content[:, :, :1].expand(-1, -1, box.left))
        assert torch.equal(network_input[:, :, box.left + box.resized_width:],
                           content[:, :, -1:].expand(-1, -1, box.right))
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(2, 0, 1).unsqueeze(0), size=(box.resized_height, box.resized_width),
        mode="bilinear", align_corners=False, antialias=True)[0].float() / 255.0
    torch.testing.assert_close(content.float(), resized, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- precision, device, errors

def test_bf16_on_cpu_is_close_to_fp32() -> None:
    checkpoint = make_checkpoint()
    image = random_image(64, 160)
    fp32 = DepthEstimator(checkpoint, device="cpu").estimate(image)
    bf16 = DepthEstimator(checkpoint, device="cpu", precision="bf16").estimate(image)
    assert bf16.depth.dtype == torch.float32 and bf16.semantic.dtype == torch.uint8
    relative = ((bf16.depth - fp32.depth).abs() / fp32.depth).nanmedian()
    assert float(relative) < 0.01


def test_auto_precision(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_precision("auto", torch.device("cuda", 0)) == "fp16"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"
    assert DepthEstimator(make_checkpoint(), device="cpu", precision="auto").precision == "bf16"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


@pytest.mark.parametrize(("forced", "expected"), [("1", "bf16"), ("0", "fp32")])
def test_the_cpu_bf16_decision_can_be_forced(monkeypatch: pytest.MonkeyPatch, forced: str, expected: str) -> None:
    monkeypatch.setenv(devices.CPU_BF16_ENV, forced)  # what CI does to run the suite both ways on any CPU
    assert devices.cpu_has_native_bf16() is (forced == "1")
    assert resolve_precision("auto", torch.device("cpu")) == expected
    monkeypatch.setenv(devices.CPU_BF16_ENV, "yes")
    with pytest.raises(ConfigError, match="^SEMANTIC_DEPTH_CPU_BF16 = 'yes' must be 0 or 1$"):
        devices.cpu_has_native_bf16()


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(ConfigError, match="^precision fp16 needs a CUDA device, got cpu$"):
        DepthEstimator(make_checkpoint(), device="cpu", precision="fp16")


def test_unknown_precision_and_backend_are_refused() -> None:
    with pytest.raises(ConfigError, match="precision 'int8' is not one of fp32, fp16, bf16, auto"):
        DepthEstimator(make_checkpoint(), device="cpu", precision="int8")
    with pytest.raises(ConfigError, match="backend 'tensorrt' is not one of auto, eager, compile, cudagraphs"):
        DepthEstimator(make_checkpoint(), device="cpu", backend="tensorrt")
    with pytest.raises(ConfigError, match="^backend cudagraphs needs a CUDA device, got cpu$"):
        DepthEstimator(make_checkpoint(), device="cpu", backend="cudagraphs")
    assert DepthEstimator(make_checkpoint(), device="cpu").backend == "eager"  # auto: CUDA graphs on CUDA only


def test_num_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    DepthEstimator(make_checkpoint(), device="cpu", num_threads=3)
    DepthEstimator(make_checkpoint(), device="cpu")
    assert seen == [3]
    with pytest.raises(ConfigError, match="^num_threads = 0 must be a positive integer$"):
        DepthEstimator(make_checkpoint(), device="cpu", num_threads=0)


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="^device 'tpu' is not one of auto, cpu, cuda, cuda:N$"):
        resolve_device("tpu")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError, match="device 'cuda:0' is not available: this machine has no usable CUDA"):
        resolve_device("cuda:0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="device 'cuda:3' is not available: this machine has 1 CUDA device"):
        resolve_device("cuda:3")


def test_invalid_device_is_refused_at_construction() -> None:
    with pytest.raises(ConfigError, match="device 'gpu0'"):
        DepthEstimator(make_checkpoint(), device="gpu0")


@pytest.mark.parametrize("image,message", [
    (np.zeros((10, 20, 3), dtype=np.float32), "image dtype float32 must be uint8"),
    (np.zeros((10, 20), dtype=np.uint8), r"image shape \(10, 20\) must be HxWx3"),
    (np.zeros((10, 20, 4), dtype=np.uint8), r"image shape \(10, 20, 4\) must be HxWx3"),
    (np.zeros((0, 20, 3), dtype=np.uint8), "image size 20x0 must be between"),
    ([[1, 2, 3]], "image must be a numpy array, got list"),
])
def test_bad_images_are_refused(estimator: DepthEstimator, image: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        estimator.estimate(image)  # type: ignore[arg-type]


def test_bad_arguments_are_refused(estimator: DepthEstimator) -> None:
    image = random_image(20, 40)
    wrong = Intrinsics(fx=50, fy=50, cx=20, cy=10, width=41, height=20)
    with pytest.raises(InvalidInputError, match="^intrinsics are for 41x20 but the image is 40x20$"):
        estimator.estimate(image, camera=wrong)
    with pytest.raises(ConfigError, match="unknown output.*points: choose from depth, semantic, confidence"):
        estimator.estimate(image, outputs=("depth", "points"))
    with pytest.raises(ConfigError, match="output_resolution 'full' is not one of input, network"):
        estimator.estimate(image, output_resolution="full")
    estimator.min_depth, estimator.max_depth = 10.0, 5.0
    try:
        with pytest.raises(ConfigError, match="max_depth = 5.0 must be larger than min_depth = 10.0"):
            estimator.estimate(image)
    finally:
        estimator.min_depth = estimator.max_depth = None


def test_untrained_checkpoint_warns_loudly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "untrained.pt"
    torch.manual_seed(0)
    save_checkpoint(path, SemanticDepthNet(CONFIG), CONFIG, trained=False)
    with caplog.at_level(logging.WARNING, logger="semantic_depth_ros.inference.estimator"):
        est = DepthEstimator(path, device="cpu")
    assert est.trained is False and est.model_name == "tiny" and est.config == CONFIG
    assert est.device == torch.device("cpu")
    assert any("UNTRAINED" in r.getMessage() and str(path) in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="semantic_depth_ros.inference.estimator"):
        DepthEstimator(make_checkpoint(trained=True), device="cpu")
    assert not any("UNTRAINED" in r.getMessage() for r in caplog.records)


def test_warmup_runs_every_output(estimator: DepthEstimator) -> None:
    calls, remove = _record_heads(estimator)
    try:
        estimator.warmup(30, 70)
    finally:
        remove()
    assert calls == [("dc", "sc", "drn")] * 2


def test_warmup_with_cuda_graphs_visits_every_head_combination() -> None:
    est = DepthEstimator(make_checkpoint(), device="cpu", mask_sky=True)
    est.backend = "cudagraphs"  # the eager network stands in: only the head sets asked for are checked here
    calls, remove = _record_heads(est)
    try:
        est.warmup(20, 50)
    finally:
        remove()
    assert set(calls) == {("drn",), ("sc", "drn"), ("sc",), ("dc",), ("dc", "drn"), ("dc", "sc"), ("dc", "sc", "drn")}
    assert est.mask_sky is True


# ---------------------------------------------------------------- benchmark

def test_latency_stats() -> None:
    stats = latency_stats([10.0, 20.0, 30.0, 40.0, 50.0], total_s=0.25)
    assert stats == {"p50_ms": 30.0, "p95_ms": pytest.approx(48.0), "fps": 20.0}
    with pytest.raises(ConfigError, match="need samples"):
        latency_stats([], total_s=1.0)


def test_benchmark_model_times_the_estimator() -> None:
    stats = benchmark_model(CONFIG, device="cpu", height=30, width=70, warmup=1, iters=3, num_threads=1)
    assert set(stats) == {"p50_ms", "p95_ms", "fps", "peak_mem_mb", "precision", "runtime"}
    assert (stats["precision"], stats["runtime"]) == ("fp32", "torch eager fp32 on cpu")
    assert 0 < stats["p50_ms"] <= stats["p95_ms"]
    assert stats["peak_mem_mb"] > 50  # the process holds torch
    with pytest.raises(ConfigError, match="warmup >= 0 and iters >= 1, got warmup=0, iters=0"):
        benchmark_model(CONFIG, device="cpu", height=30, width=70, warmup=0, iters=0)
    with pytest.raises(ConfigError, match="precision fp16 needs a CUDA device"):
        benchmark_model(CONFIG, device="cpu", precision="fp16", height=30, width=70)

"""Estimator seams: batched estimation, the runner interface, CUDA-graph bookkeeping (on the CPU, with a stand-in
capture), and confidence checked against the bin distribution of the same frame."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.inference.runners import GraphedRunner, NetworkRunner, TorchRunner, make_runner
from semantic_depth_ros.model.fuse import fold_batchnorm
from helpers import CONFIG, make_checkpoint, random_image

Outputs = dict[str, torch.Tensor]


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def estimator() -> DepthEstimator:
    return DepthEstimator(make_checkpoint(), device="cpu")


def _intrinsics(height: int, width: int, fx: float) -> Intrinsics:
    return Intrinsics(fx=fx, fy=fx, cx=width / 2 - 3, cy=height / 2 + 1, width=width, height=height)


# ---------------------------------------------------------------- batched estimation

@pytest.mark.parametrize("resolution", ["input", "network"])
def test_a_batch_equals_single_frames(estimator: DepthEstimator, resolution: str) -> None:
    frames = [(random_image(64, 160, seed=1), _intrinsics(64, 160, 120.0)),
              (random_image(100, 300, seed=2), None),
              (random_image(240, 160, seed=3), _intrinsics(240, 160, 300.0))]
    calls: list[int] = []
    handle = estimator.runner.model.register_forward_pre_hook(lambda m, a, k: calls.append(a[0].shape[0]),
                                                              with_kwargs=True)
    try:
        batch = estimator.estimate_batch(frames, output_resolution=resolution)
    finally:
        handle.remove()
    assert calls == [3]  # one forward pass for the three frames
    assert len(batch) == 3
    for (image, intrinsics), out in zip(frames, batch):
        single = estimator.estimate(image, camera=intrinsics, output_resolution=resolution)
        assert out.depth.shape == single.depth.shape
        torch.testing.assert_close(out.depth, single.depth, rtol=1e-5, atol=0, equal_nan=True)
        torch.testing.assert_close(out.confidence, single.confidence, rtol=1e-5, atol=1e-6)
        assert torch.equal(out.semantic, single.semantic)
        assert torch.equal(out.image, single.image)
        assert out.intrinsics == single.intrinsics
    assert batch[1].intrinsics is None and batch[0].depth.shape == (64, 160)


def test_a_batch_keeps_each_frames_canonical_scale_and_options(estimator: DepthEstimator) -> None:
    image = random_image(64, 160, seed=4)
    near, far = estimator.estimate_batch([(image, _intrinsics(64, 160, 100.0)), (image, _intrinsics(64, 160, 200.0))],
                                         outputs=("depth",))
    both = torch.isfinite(near.depth) & torch.isfinite(far.depth)
    assert both.any()
    torch.testing.assert_close(far.depth[both], 2 * near.depth[both], rtol=1e-5, atol=0)
    assert near.semantic is None and near.confidence is None and near.image is None
    with pytest.raises(InvalidInputError, match="estimate_batch needs at least one frame"):
        estimator.estimate_batch([])
    with pytest.raises(InvalidInputError, match="^intrinsics are for 160x64 but the image is 50x20$"):
        estimator.estimate_batch([(image, None), (random_image(20, 50), _intrinsics(64, 160, 1.0))])


# ---------------------------------------------------------------- confidence against the bin distribution

def test_confidence_is_one_minus_normalised_entropy_of_the_frames_bins(estimator: DepthEstimator) -> None:
    """A frame at the network size (no resize, no padding): the estimator's confidence is the bilinear
    up-sampling of 1 - H(p) / log K of the model's own bin distribution p for that frame."""
    image = random_image(64, 160, seed=5)
    model = estimator.runner.model
    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        probs = model(x, heads=("dc",), upsample=False)["depth_probs"].double()
    assert probs.shape == (1, CONFIG.num_depth_bins, 8, 20)
    entropy = -(probs * probs.clamp_min(1e-30).log()).sum(dim=1, keepdim=True)
    expected_cells = 1.0 - entropy / math.log(CONFIG.num_depth_bins)
    assert float(expected_cells.std()) > 1e-4  # a random network: the confidence varies over the frame
    expected = F.interpolate(expected_cells, size=(64, 160), mode="bilinear", align_corners=False)[0, 0].float()
    for resolution in ("input", "network"):  # both are 64x160 for this frame
        out = estimator.estimate(image, outputs=("confidence",), output_resolution=resolution)
        torch.testing.assert_close(out.confidence, expected, rtol=0, atol=1e-5)


# ---------------------------------------------------------------- runner interface

def test_make_runner_gives_a_described_network_runner() -> None:
    runner = make_runner(make_checkpoint(), backend="eager", device=torch.device("cpu"), precision="fp32",
                         dtype=torch.float32)
    assert isinstance(runner, NetworkRunner) and isinstance(runner, TorchRunner)
    assert runner.description == "torch eager fp32 on cpu"
    assert runner.heads == frozenset({"dc", "sc", "drn"}) and runner.input_dtype == torch.float32
    out = runner(torch.rand(2, 3, 64, 160), ("dc", "sc"))
    assert set(out) == {"depth_logits", "dc_depth", "depth_probs", "semantic_logits"}
    assert out["depth_probs"].shape == (2, CONFIG.num_depth_bins, 8, 20)
    plain = make_runner(make_checkpoint(CONFIG.replace(use_drn=False)), backend="eager",
                        device=torch.device("cpu"), precision="fp32", dtype=torch.float32)
    assert plain.heads == frozenset({"dc", "sc"})


def test_an_estimator_around_any_runner(estimator: DepthEstimator) -> None:
    """``from_runner`` needs no torch module: a runner object and the model's config are enough."""
    inner = estimator.runner

    class Wrapped:
        device, input_dtype, description, heads = inner.device, inner.input_dtype, "wrapped", inner.heads

        def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> Outputs:
            return inner(x, heads)

    other = DepthEstimator.from_runner(Wrapped(), CONFIG, trained=True, source="wrapped.model", precision="fp32",
                                       backend="wrapped")
    image = random_image(50, 130, seed=6)
    a, b = other.estimate(image), estimator.estimate(image)
    torch.testing.assert_close(a.depth, b.depth, equal_nan=True)
    assert torch.equal(a.semantic, b.semantic)
    assert (other.backend, other.precision, other.device, other.trained) == ("wrapped", "fp32", inner.device, True)


# ---------------------------------------------------------------- CUDA-graph bookkeeping with a stand-in capture

class FakeCapture:
    """Behaves like a CUDA graph: capture runs the forward once and keeps its output tensors; replay recomputes
    the forward from whatever the captured closure reads NOW and writes into those same tensors."""

    def __init__(self) -> None:
        self.captures = 0
        self.replays = 0

    def __call__(self, forward: Callable[[], Outputs]) -> tuple[Callable[[], None], Outputs]:
        self.captures += 1
        static = {k: v.clone() for k, v in forward().items()}

        def replay() -> None:
            self.replays += 1
            for name, value in forward().items():
                static[name].copy_(value)

        return replay, static


@pytest.fixture()
def graphed() -> tuple[GraphedRunner, FakeCapture, torch.nn.Module]:
    model = fold_batchnorm(make_checkpoint().build_model()).to(memory_format=torch.channels_last)
    capture = FakeCapture()
    return GraphedRunner(model, torch.device("cpu"), torch.float32, "fake graphs", capture=capture), capture, model


def test_graphs_are_cached_per_head_set_and_shape(graphed: tuple[GraphedRunner, FakeCapture, torch.nn.Module]) -> None:
    runner, capture, model = graphed
    one, three = torch.rand(1, 3, 64, 160), torch.rand(3, 3, 64, 160)
    runner(one, ("drn",))
    runner(one, ("drn",))
    assert capture.captures == 1 and capture.replays == 2
    runner(one, ("dc", "sc"))
    assert capture.captures == 2 and len(runner.inputs) == 1  # one input buffer shared by the head sets
    runner(three, ("drn",))
    assert capture.captures == 3 and set(runner.inputs) == {(1, 3, 64, 160), (3, 3, 64, 160)}
    runner(torch.rand(1, 3, 32, 96), ("drn",))  # another input shape: its own buffer and graph
    assert capture.captures == 4 and len(runner.inputs) == 3
    assert set(runner.graphs) == {(("drn",), (1, 3, 64, 160)), (("dc", "sc"), (1, 3, 64, 160)),
                                  (("drn",), (3, 3, 64, 160)), (("drn",), (1, 3, 32, 96))}
    buffer = runner.inputs[(1, 3, 64, 160)]
    runner(one, ("drn",))
    assert runner.inputs[(1, 3, 64, 160)] is buffer and capture.captures == 4  # reused, no re-capture


def test_graph_replays_follow_new_inputs(graphed: tuple[GraphedRunner, FakeCapture, torch.nn.Module]) -> None:
    """Each replay computes on the frame just passed (the static input is refreshed), for every cached graph."""
    runner, _, model = graphed
    frames = [torch.rand(2, 3, 64, 160, generator=torch.Generator().manual_seed(s)) for s in range(3)]
    heads = ("dc", "sc", "drn")
    with torch.no_grad():
        for x in frames + frames[::-1]:
            out = {k: v.clone() for k, v in runner(x, heads).items()}
            reference = model(x, heads=heads, upsample=False)
            assert set(out) == set(reference)
            for name in reference:
                torch.testing.assert_close(out[name], reference[name], rtol=1e-5, atol=1e-6)


def test_estimator_on_graphed_runner_matches_eager(estimator: DepthEstimator) -> None:
    """The whole estimator over the graph bookkeeping (batch sizes 1 and 2, several head sets) equals eager."""
    est = DepthEstimator(make_checkpoint(), device="cpu")
    capture = FakeCapture()
    est.runner = GraphedRunner(est.runner.model, est.device, torch.float32, "fake graphs", capture=capture)
    images = [random_image(64, 160, seed=s) for s in range(3)] + [random_image(30, 90, seed=9)]
    for outputs in (("depth",), ("depth", "semantic", "confidence")):
        for image in images:
            got, want = est.estimate(image, outputs=outputs), estimator.estimate(image, outputs=outputs)
            torch.testing.assert_close(got.depth, want.depth, rtol=1e-5, atol=0, equal_nan=True)
        pair = est.estimate_batch([(images[0], None), (images[3], None)], outputs=outputs)
        for got, image in zip(pair, (images[0], images[3])):
            torch.testing.assert_close(got.depth, estimator.estimate(image, outputs=outputs).depth, rtol=1e-5,
                                       atol=0, equal_nan=True)
    assert capture.captures == 4  # (drn | dc+sc+drn) x (batch 1 | batch 2)
    assert capture.replays == 2 * (len(images) + 1)


def test_warmup_runs_batches_of_the_asked_size() -> None:
    est = DepthEstimator(make_checkpoint(), device="cpu")
    sizes: list[int] = []
    handle = est.runner.model.register_forward_pre_hook(lambda m, a, k: sizes.append(a[0].shape[0]),
                                                        with_kwargs=True)
    try:
        est.warmup(20, 50, batch_size=3)
    finally:
        handle.remove()
    assert sizes == [3, 3]

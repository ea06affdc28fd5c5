"""Conditional-flow schedule, stream batch sampler, LR schedule, losses and seeded training samples."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from semantic_depth_ros.errors import ConfigError, DatasetError
from semantic_depth_ros.model.bins import DepthBins
from semantic_depth_ros.training.config import AugmentationConfig, LossConfig, ScheduleConfig, config_from_dict
from semantic_depth_ros.training.datasets import (CenterScaleCrop, TaskSamples, build_train_streams,
                                                  build_validation_sets, train_transform)
from semantic_depth_ros.training.model_setup import resolve_model_config
from semantic_depth_ros.training.flow import FlowSchedule, StreamBatchSampler
from semantic_depth_ros.training.losses import (depth_classification_loss, depth_gradient_loss, depth_l1_loss,
                                                depth_losses, depth_relative_loss, semantic_loss)
from semantic_depth_ros.training.schedule import build_scheduler, lr_factor
from semantic_depth_ros.model.config import ModelConfig


# ------------------------------------------------------------------------------------------ FlowSchedule

@pytest.mark.parametrize(("depth", "semantic", "expected"), [
    (1, 1, ["depth", "semantic"] * 3),
    (2, 1, ["depth", "semantic", "depth"] * 2),
    (1, 0, ["depth"] * 6),
    (0, 1, ["semantic"] * 6),
    (3, 2, ["depth", "semantic", "depth", "semantic", "depth", "depth"]),
])
def test_flow_interleaves_tasks_at_the_ratio(depth: int, semantic: int, expected: list[str]) -> None:
    schedule = FlowSchedule({"depth": depth, "semantic": semantic})
    assert [schedule.task_at(step) for step in range(6)] == expected


@pytest.mark.parametrize("shuffle", [False, True])
def test_count_before_matches_the_tasks_drawn(shuffle: bool) -> None:
    schedule = FlowSchedule({"depth": 3, "semantic": 2}, seed=7, shuffle=shuffle)
    tasks = [schedule.task_at(step) for step in range(40)]
    assert tasks.count("depth") == 24 and tasks.count("semantic") == 16  # exact ratio over whole cycles
    for step in range(41):
        for task in ("depth", "semantic"):
            assert schedule.count_before(task, step) == tasks[:step].count(task)


def test_shuffled_flow_is_a_function_of_seed_and_step() -> None:
    a = FlowSchedule({"depth": 2, "semantic": 2}, seed=3, shuffle=True)
    b = FlowSchedule({"depth": 2, "semantic": 2}, seed=3, shuffle=True)
    other = FlowSchedule({"depth": 2, "semantic": 2}, seed=4, shuffle=True)
    order = [a.task_at(s) for s in range(64)]
    assert [b.task_at(s) for s in reversed(range(64))] == order[::-1]  # random access, any order
    assert [other.task_at(s) for s in range(64)] != order
    for cycle in range(16):  # every cycle keeps the ratio
        assert order[cycle * 4:(cycle + 1) * 4].count("depth") == 2


def test_flow_rejects_bad_ratios() -> None:
    with pytest.raises(ConfigError, match="not all 0"):
        FlowSchedule({"depth": 0, "semantic": 0})


# ------------------------------------------------------------------------------------ StreamBatchSampler

def test_stream_sampler_epochs_cover_the_dataset_and_resume_anywhere() -> None:
    sampler = StreamBatchSampler(10, 3, seed=5, stream=0)
    assert sampler.batches_per_epoch == 3
    batches = [sampler.batch(n) for n in range(6)]
    first_epoch = [index for batch in batches[:3] for index, _ in batch]
    assert len(set(first_epoch)) == 9 and set(first_epoch) <= set(range(10))
    assert [i for b in batches[:3] for i, _ in b] != [i for b in batches[3:] for i, _ in b]  # reshuffled
    keys = [key for batch in batches for _, key in batch]
    assert keys == list(range(18))  # unique augmentation keys
    resumed = StreamBatchSampler(10, 3, seed=5, stream=0, start_batch=4)
    iterator = iter(resumed)
    assert [next(iterator) for _ in range(2)] == batches[4:6]


def test_stream_sampler_ranks_get_disjoint_shares() -> None:
    ranks = [StreamBatchSampler(12, 2, seed=1, stream=1, rank=r, world_size=2) for r in range(2)]
    seen = [[i for n in range(3) for i, _ in sampler.batch(n)] for sampler in ranks]
    assert set(seen[0]).isdisjoint(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(12))
    keys = [k for sampler in ranks for n in range(3) for _, k in sampler.batch(n)]
    assert len(set(keys)) == len(keys)
    other_stream = StreamBatchSampler(12, 2, seed=1, stream=0, rank=0, world_size=2)
    assert [i for n in range(3) for i, _ in other_stream.batch(n)] != seen[0]


def test_stream_sampler_needs_a_full_batch() -> None:
    with pytest.raises(DatasetError, match="3 samples, fewer than batch_size 2 x 2"):
        StreamBatchSampler(3, 2, seed=0, stream=0, rank=0, world_size=2)


# --------------------------------------------------------------------------------------------- schedule

def test_lr_factor_warms_up_then_decays_to_the_floor() -> None:
    cosine = ScheduleConfig(warmup_steps=4, decay="cosine", min_lr_ratio=0.1)
    assert [lr_factor(s, 14, cosine) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 14, cosine) == pytest.approx(1.0)
    assert lr_factor(13, 14, cosine) == pytest.approx(0.1)
    assert lr_factor(8, 14, cosine) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 4 / 9)))
    poly = ScheduleConfig(warmup_steps=0, decay="poly", min_lr_ratio=0.0, power=2.0)
    assert lr_factor(5, 11, poly) == pytest.approx(0.25)
    assert lr_factor(7, 11, ScheduleConfig(warmup_steps=0, decay="constant")) == 1.0


def test_scheduler_sets_the_lr_of_each_update() -> None:
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=0.1)
    scheduler = build_scheduler(optimizer, 10, ScheduleConfig(warmup_steps=2, decay="poly", power=1.0,
                                                             min_lr_ratio=0.0))
    seen = []
    for _ in range(4):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.05, 0.1, 0.1, 0.1 * (1 - 1 / 7)])  # decay over updates 2..9


# ------------------------------------------------------------------------------------------------ losses

def test_depth_ce_uses_only_valid_pixels() -> None:
    bins = DepthBins(1.0, 80.0, 4)
    logits = torch.randn(1, 4, 1, 3, requires_grad=True)
    depth = torch.tensor([[[[2.0, 0.0, 50.0]]]])
    target = bins.depth_to_index(depth[:, 0])
    expected = F.cross_entropy(logits[..., [0, 2]], target[..., [0, 2]])
    assert depth_classification_loss(logits, depth, bins).item() == pytest.approx(expected.item(), rel=1e-6)
    depth_classification_loss(logits, depth, bins).backward()
    assert torch.all(logits.grad[..., 1] == 0) and torch.all(logits.grad[..., 0] != 0)


def test_soft_depth_targets_are_a_gaussian_around_the_continuous_bin() -> None:
    bins = DepthBins(1.0, 80.0, 8)
    logits = torch.randn(1, 8, 1, 2)
    centre = bins.centers[3]
    between = torch.sqrt(bins.centers[5] * bins.centers[6])  # half-way between bins 5 and 6 in log space
    depth = torch.stack([centre, between]).view(1, 1, 1, 2)
    log_probs = torch.log_softmax(logits, dim=1)[0, :, 0]  # 8x2
    expected = []
    for pixel, position in enumerate((3.0, 5.5)):
        weights = torch.softmax(-((torch.arange(8.0) - position) ** 2) / (2 * 0.7**2), dim=0)
        expected.append(-(weights * log_probs[:, pixel]).sum())
    loss = depth_classification_loss(logits, depth, bins, sigma=0.7)
    assert loss.item() == pytest.approx(torch.stack(expected).mean().item(), rel=1e-5)
    # a very narrow Gaussian on a bin centre is the hard cross-entropy
    sharp = depth_classification_loss(logits[..., :1], depth[..., :1], bins, sigma=1e-3)
    assert sharp.item() == pytest.approx(depth_classification_loss(logits[..., :1], depth[..., :1], bins).item(),
                                         rel=1e-5)
    invalid = depth_classification_loss(logits, torch.zeros_like(depth), bins, sigma=0.7)
    assert invalid.item() == 0.0


def test_semantic_ce_ignores_255_and_empty_batches_give_zero() -> None:
    logits = torch.randn(1, 3, 1, 2, requires_grad=True)
    labels = torch.tensor([[[2, 255]]])
    expected = F.cross_entropy(logits[..., :1], labels[..., :1])
    assert semantic_loss(logits, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    empty = semantic_loss(logits, torch.full((1, 1, 2), 255))
    empty.backward()
    assert empty.item() == 0.0 and torch.all(logits.grad == 0)


def test_semantic_balance_weighs_each_class_by_its_share_to_the_power_minus_p() -> None:
    logits = torch.randn(1, 3, 1, 5)
    labels = torch.tensor([[[0, 0, 0, 1, 255]]])
    per_pixel = F.cross_entropy(logits, labels, ignore_index=255, reduction="none")[0, 0]
    assert semantic_loss(logits, labels, 0.0).item() == pytest.approx(per_pixel[:4].mean().item(), rel=1e-6)
    # shares 3/4 and 1/4: weights (3/4)^-1 = 4/3 and (1/4)^-1 = 4, normalised by their sum over the pixels
    expected = (4 / 3 * per_pixel[:3].sum() + 4 * per_pixel[3]) / (3 * 4 / 3 + 4)
    assert semantic_loss(logits, labels, 1.0).item() == pytest.approx(expected.item(), rel=1e-6)
    half = (0.75 ** -0.5 * per_pixel[:3].sum() + 0.25 ** -0.5 * per_pixel[3]) / (3 * 0.75 ** -0.5 + 0.25 ** -0.5)
    assert semantic_loss(logits, labels, 0.5).item() == pytest.approx(half.item(), rel=1e-6)
    assert semantic_loss(logits, torch.full((1, 1, 5), 255), 0.5).item() == 0.0


def test_depth_l1_masks_invalid_and_clamps_targets() -> None:
    pred = torch.tensor([[[[3.0, 7.0, 90.0, 1.0]]]])
    depth = torch.tensor([[[[2.0, 0.0, 120.0, float("nan")]]]])
    # valid: |3-2| = 1 and |90-80| = 10 (target clamped to max 80 m)
    assert depth_l1_loss(pred, depth, 1.0, 80.0).item() == pytest.approx(5.5)
    assert depth_l1_loss(pred, torch.zeros_like(depth), 1.0, 80.0).item() == 0.0


def test_relative_term_is_abs_rel_and_weighs_near_and_far_alike() -> None:
    pred = torch.tensor([[[[6.0, 66.0, 7.0, 90.0, 1.0]]]])
    depth = torch.tensor([[[[5.0, 60.0, 0.0, 120.0, float("nan")]]]])
    # valid: 1/5 = 0.2 (a metre at 5 m), 6/60 = 0.1 (six metres at 60 m), |90-80|/80 (target clamped to 80 m)
    assert depth_relative_loss(pred, depth, 1.0, 80.0).item() == pytest.approx((0.2 + 0.1 + 0.125) / 3)
    assert depth_l1_loss(pred, depth, 1.0, 80.0).item() == pytest.approx((1.0 + 6.0 + 10.0) / 3)
    assert depth_relative_loss(pred, torch.zeros_like(depth), 1.0, 80.0).item() == 0.0
    outputs = {"depth": pred}
    losses = depth_losses(outputs, depth, DepthBins(1.0, 80.0, 8), 2, LossConfig(depth_l1=0.1, depth_relative=4.0))
    assert losses["loss"].item() == pytest.approx(0.1 * (17.0 / 3) + 4.0 * (0.425 / 3))
    assert set(losses) == {"loss", "depth_l1", "depth_relative"}


def test_phase_two_depth_loss_combines_l1_and_ce() -> None:
    bins = DepthBins(1.0, 80.0, 8)
    depth = torch.full((1, 1, 2, 2), 10.0)
    outputs = {"depth": torch.full((1, 1, 2, 2), 12.0), "depth_logits": torch.zeros(1, 8, 2, 2)}
    losses = depth_losses(outputs, depth, bins, 2, LossConfig(depth_l1=1.0, phase2_depth_ce=0.5))
    assert losses["depth_l1"].item() == pytest.approx(2.0)
    assert losses["depth_ce"].item() == pytest.approx(math.log(8))
    assert losses["loss"].item() == pytest.approx(2.0 + 0.5 * math.log(8))
    phase_one = depth_losses(outputs, depth, bins, 1, LossConfig(depth_ce=2.0))
    assert set(phase_one) == {"loss", "depth_ce"} and phase_one["loss"].item() == pytest.approx(2 * math.log(8))


def test_gradient_term_is_scale_invariant_and_counts_blurred_edges() -> None:
    depth = torch.full((1, 1, 8, 8), 20.0)
    depth[..., 2:6, 2:6] = 5.0  # a box in front of a wall
    depth[..., 0, 0] = 0.0  # no ground truth: pairs with it do not count
    assert depth_gradient_loss(depth.clamp_min(1.0) * 1.7, depth).item() == pytest.approx(0.0, abs=1e-6)
    blurred = F.avg_pool2d(depth.clamp_min(5.0), 3, stride=1, padding=1, count_include_pad=False)
    assert depth_gradient_loss(blurred, depth).item() > 0.1
    outputs = {"depth": blurred}
    losses = depth_losses(outputs, depth, DepthBins(1.0, 80.0, 8), 2, LossConfig(depth_l1=0.0, depth_gradient=2.0))
    assert losses["loss"].item() == pytest.approx(2.0 * losses["depth_gradient"].item())


def test_depth_ce_at_the_logits_stride_samples_the_depth_there() -> None:
    bins = DepthBins(1.0, 80.0, 16)
    depth = torch.full((1, 1, 8, 8), 3.0)
    depth[..., :, 4:] = 40.0
    logits = torch.randn(1, 16, 4, 4)
    at_stride = depth_classification_loss(logits, depth, bins, sigma=1.0)
    assert at_stride.item() == pytest.approx(depth_classification_loss(logits, depth[..., ::2, ::2], bins, 1.0).item())


def test_model_keeps_depth_logits_at_its_stride_on_request() -> None:
    from semantic_depth_ros.model.network import SemanticDepthNet

    net = SemanticDepthNet(ModelConfig(input_height=64, input_width=96, decoder_channels=(16, 8))).eval()
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        full = net(images, heads=("drn",))
        strided = net(images, heads=("drn",), logits_at_stride=True)
    assert full["depth_logits"].shape[-2:] == (64, 96) and strided["depth_logits"].shape[-2:] == (8, 12)
    torch.testing.assert_close(strided["depth"], full["depth"])  # the DRN depth is at the input size either way


# ------------------------------------------------------------------------------------------- samples

class _Frames(torch.utils.data.Dataset):
    """Two 20x40 depth frames with a ramp image, fx 50 px."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> dict:
        image = torch.linspace(0, 1, 20 * 40).reshape(1, 20, 40).repeat(3, 1, 1)
        depth = torch.full((1, 20, 40), 10.0 + index)
        depth[:, :5] = 0.0
        return {"image": image, "depth": depth, "fx": 50.0, "semantic": torch.zeros(20, 40, dtype=torch.long)}


def test_training_samples_are_seeded_and_canonical() -> None:
    model_config = ModelConfig(input_height=32, input_width=48, focal_px=30.0, decoder_channels=(32, 16))
    transform = train_transform(AugmentationConfig(scale_min=1.0, scale_max=1.0, hflip=0.0), model_config)
    samples = TaskSamples(_Frames(), "depth", transform, name="frames", seed=3, stream=0)
    sample = samples[(1, 17)]
    assert set(sample) == {"image", "depth", "fx"}  # other labels dropped
    assert sample["image"].shape == (3, 32, 48) and sample["depth"].shape == (1, 32, 48)
    # covering scale = max(32/20, 48/40) = 1.6 -> fx 80 px; canonical depth = 11 m * 30 / 80
    assert sample["fx"] == pytest.approx(80.0)
    valid = sample["depth"][sample["depth"] > 0]
    assert torch.allclose(valid, torch.full_like(valid, 11.0 * 30.0 / 80.0))
    assert torch.equal(samples[(1, 17)]["image"], sample["image"])  # same key, same augmentation
    assert not torch.equal(samples[(1, 18)]["image"], sample["image"])  # another key, another jitter


def test_validation_crop_keeps_metric_depth_and_centre() -> None:
    sample = _Frames()[0]
    out = CenterScaleCrop(32, 48)(sample)
    assert out["image"].shape == (3, 32, 48) and out["fx"] == pytest.approx(80.0)
    assert set(out["depth"].unique().tolist()) == {0.0, 10.0}


def test_a_dataset_crop_sets_its_samples_training_and_validation_size() -> None:
    """A semantic dataset with ``crop`` trains (and validates) at that size while the depth stream keeps the
    network input: a longer-focal domain scaled to the vehicle camera's object size."""
    kitti = {"type": "synthetic", "task": "depth",
             "options": {"domain": "kitti_like", "length": 2, "seed": 0, "height": 40, "width": 132}}
    city = {"type": "synthetic", "task": "semantic", "crop": [32, 64],
            "options": {"domain": "cityscapes_like", "length": 2, "seed": 0, "height": 36, "width": 72}}
    config = config_from_dict({"datasets": [kitti, city], "flow": {"depth": 1, "semantic": 1},
                               "augmentation": {"scale_min": 1.0, "scale_max": 1.0, "hflip": 0.0},
                               "model": {"preset": "resnet18_fast", "overrides": {
                                   "input_height": 32, "input_width": 96, "focal_px": 55.8}},
                               "validation": {"datasets": [kitti, city]}})
    model_config, _ = resolve_model_config(config)
    streams = build_train_streams(config, model_config)
    assert streams["depth"][(0, 1)]["image"].shape == (3, 32, 96)
    semantic = streams["semantic"][(0, 1)]
    assert semantic["image"].shape == (3, 32, 64) and semantic["semantic"].shape == (32, 64)
    # covering scale max(32/36, 64/72) = 0.889: fx follows the 64 px width
    assert semantic["fx"] == pytest.approx(1131.3 * 72 / 1024 * 64 / 72, rel=1e-3)
    shapes = {s.task: tuple(s.dataset[0]["image"].shape) for s in build_validation_sets(config, model_config)}
    assert shapes == {"depth": (3, 32, 96), "semantic": (3, 32, 64)}


def test_a_dataset_augmentation_overrides_the_runs_for_its_samples_only() -> None:
    options = {"length": 1, "seed": 0, "height": 32, "width": 96}
    kitti = {"type": "synthetic", "task": "depth", "options": {"domain": "kitti_like", **options}}
    city = {"type": "synthetic", "task": "semantic", "augmentation": {"brightness": 0.9, "hue": 0.2},
            "options": {"domain": "cityscapes_like", **options}}
    config = config_from_dict({"datasets": [kitti, city], "flow": {"depth": 1, "semantic": 1},
                               "augmentation": {"scale_min": 1.0, "scale_max": 1.0, "hflip": 0.0, "brightness": 0.0,
                                                "contrast": 0.0, "saturation": 0.0},
                               "model": {"preset": "resnet18_fast", "overrides": {
                                   "input_height": 32, "input_width": 96, "focal_px": 55.8}}})
    semantic_aug = config.datasets[1].augmentation_of(config.augmentation)
    assert (semantic_aug.brightness, semantic_aug.hue, semantic_aug.contrast) == (0.9, 0.2, 0.0)
    model_config, _ = resolve_model_config(config)
    streams = build_train_streams(config, model_config)
    depth_stream, semantic_stream = streams["depth"], streams["semantic"]
    assert torch.allclose(depth_stream[(0, 1)]["image"], depth_stream.reader[0]["image"], atol=1e-6)  # run's: none
    changes = [(semantic_stream[(0, key)]["image"] - semantic_stream.reader[0]["image"]).abs().max()
               for key in range(4)]
    assert min(changes) > 0.01  # the dataset's own jitter

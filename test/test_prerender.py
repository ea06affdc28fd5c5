"""Generated frames rendered on several threads before training: the same arrays, in the shared cache, only when
it helps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, Subset

from semantic_depth_ros.cache import BoundedCache
from semantic_depth_ros.data.synthetic import dataset as synthetic_dataset
from semantic_depth_ros.data.synthetic import prerender as prerender_module
from semantic_depth_ros.data.synthetic import render_frame
from semantic_depth_ros.data.synthetic.dataset import SyntheticDataset
from semantic_depth_ros.data.synthetic.prerender import missing_keys, prerender, render_frames
from semantic_depth_ros.training import run as run_module
from semantic_depth_ros.training.config import config_from_dict
from semantic_depth_ros.training.datasets import TaskSamples, readers_of
from semantic_depth_ros.training.trainer import run_training


@pytest.fixture()
def cache(monkeypatch: pytest.MonkeyPatch) -> BoundedCache:
    """A fresh, empty frame cache in place of the process-wide one."""
    fresh: BoundedCache = BoundedCache(64, "test frames")
    monkeypatch.setattr(synthetic_dataset, "RENDERED", fresh)
    monkeypatch.setattr(prerender_module, "RENDERED", fresh)
    return fresh


def _refuse_rendering(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("rendered on use although prerendered")

    monkeypatch.setattr(synthetic_dataset, "render_frame", refuse)


def test_prerendered_frames_are_the_ones_a_dataset_renders_itself(cache: BoundedCache,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    depth = SyntheticDataset("kitti_like", "depth", 12, seed=3, height=24, width=80)
    semantic = SyntheticDataset("cityscapes_like", "semantic", 8, seed=4, height=32, width=64)
    uncached = SyntheticDataset("kitti_like", "depth", 30, seed=5, height=24, width=80, cache=False)
    same_frames = SyntheticDataset("kitti_like", "depth", 12, seed=3, height=24, width=80)
    datasets = [depth, semantic, uncached, same_frames, "not a dataset"]
    assert len(missing_keys(datasets)) == 20  # the uncached one is skipped, the repeated one counted once
    assert prerender(datasets, workers=2) == 20 and len(cache) == 20
    assert missing_keys(datasets) == [] and prerender(datasets, workers=2) == 0
    _refuse_rendering(monkeypatch)
    for dataset, index in ((depth, 11), (semantic, 0), (same_frames, 5)):
        frame = render_frame(dataset.domain, index, seed=dataset.seed, height=dataset.intrinsics.height,
                             width=dataset.intrinsics.width)
        sample = dataset[index]
        np.testing.assert_array_equal((sample["image"] * 255).round().byte().permute(1, 2, 0).numpy(), frame.rgb)
        if dataset.task == "depth":
            np.testing.assert_array_equal(sample["depth"][0].numpy(), frame.depth)
        else:
            np.testing.assert_array_equal(sample["semantic"].numpy(), frame.semantic)


def test_prerender_leaves_rendering_on_use_where_it_cannot_help(cache: BoundedCache,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    twenty = [SyntheticDataset("kitti_like", "depth", 20, seed=6, height=24, width=80)]
    assert prerender(twenty, workers=1) == 0  # one core: nothing to share
    assert prerender([SyntheticDataset("kitti_like", "depth", 15, seed=6, height=24, width=80)], workers=2) == 0
    small: BoundedCache = BoundedCache(16, "small")
    monkeypatch.setattr(prerender_module, "RENDERED", small)
    assert prerender(twenty, workers=2) == 0  # 20 frames would evict each other in 16 places
    assert len(cache) == 0 and len(small) == 0


def test_render_frames_gives_render_frame_of_each_index_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    indices = [15, *range(15), 40]
    frames = render_frames("kitti_like", indices, seed=9, height=24, width=80, workers=2)
    assert len(frames) == 17
    for index, frame in zip(indices[::8], frames[::8]):
        alone = render_frame("kitti_like", index, seed=9, height=24, width=80)
        assert frame.intrinsics == alone.intrinsics
        for name in ("rgb", "depth", "semantic"):
            np.testing.assert_array_equal(getattr(frame, name), getattr(alone, name))

    def no_threads(*args: object) -> None:
        raise AssertionError("threads for too few frames")

    monkeypatch.setattr(prerender_module, "_executor", no_threads)
    few = render_frames("kitti_like", [3, 1], seed=9, height=24, width=80, workers=2)
    np.testing.assert_array_equal(few[1].rgb, render_frame("kitti_like", 1, seed=9, height=24, width=80).rgb)


def test_readers_are_found_through_concatenations_and_subsets() -> None:
    a = SyntheticDataset("kitti_like", "depth", 2, height=24, width=80)
    b = SyntheticDataset("cityscapes_like", "semantic", 2, height=24, width=80)
    c = SyntheticDataset("kitti_like", "depth", 2, seed=1, height=24, width=80)
    samples = [TaskSamples(reader, reader.task, lambda s, g: s, name=str(i)) for i, reader in enumerate((a, b, c))]
    found = readers_of([ConcatDataset(samples[:2]), Subset(samples[2], [0])])
    assert [id(r) for r in found] == [id(a), id(b), id(c)]


def test_a_training_run_prerenders_its_generated_frames(cache: BoundedCache, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.set_num_threads(1)
    monkeypatch.setattr(run_module.os, "cpu_count", lambda: 2)
    data = {"type": "synthetic", "task": "depth", "options": {"domain": "kitti_like", "length": 12, "seed": 7,
                                                              "height": 40, "width": 120}}
    val = {**data, "options": {**data["options"], "length": 6, "seed": 8}}
    config = config_from_dict({
        "steps": 1, "batch_size": 2, "model": {"preset": "resnet18_fast", "overrides": {
            "input_height": 32, "input_width": 96, "decoder_channels": [16], "encoder_widths": [8, 8, 16, 16]}},
        "datasets": [data], "flow": {"depth": 1, "semantic": 0},
        "validation": {"every": 1, "batch_size": 2, "datasets": [val]},
        "logging": {"every": 1, "tensorboard": False, "num_images": 0}})
    run_training(config, out_dir=tmp_path, progress=False)
    assert "rendered 18 generated frames in " in capsys.readouterr().out
    assert len(cache) == 18

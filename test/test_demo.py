"""`semantic-depth demo` end to end on a tiny budget (real training, real node over DDS), and the ablation set-up."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
from plyread import read_ply_vertices

from semantic_depth_ros.commands.ablate import summarise, variant_configs
from semantic_depth_ros.commands.generated_scenes import load_demo_config
from semantic_depth_ros.evaluation.colorbar import depth_scale_bar
from semantic_depth_ros.evaluation.metrics import DEPTH_METRIC_KEYS, compute_depth_metrics
from semantic_depth_ros.model.checkpoint import load_checkpoint
from semantic_depth_ros.training.run_folder import MODEL_FILE


def reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    command = [sys.executable, "-m", "semantic_depth_ros.cli", "demo", "--out", str(out), "--phase1-steps", "2",
               "--phase2-steps", "2", "--frames", "2", "--eval-count", "2", "--drive-frames", "2", "--device", "cpu",
               "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


@pytest.mark.ros  # the demo runs the node
def test_demo_writes_every_output_a_person_looks_at(demo_run):
    out, result = demo_run
    assert (out / "phase1" / MODEL_FILE).is_file() and (out / "phase2" / MODEL_FILE).is_file()
    for index in range(2):
        frame = out / "frames" / f"{index:03d}"
        for name in ("input", "semantic_color", "confidence", "error_map"):
            image = cv2.imread(str(frame / f"{name}.png"))
            assert image is not None and image.shape == (188, 620, 3), name
        config = load_checkpoint(out / "phase2" / MODEL_FILE).config  # the node colours depth over its range
        scale = depth_scale_bar(620, config.min_depth, config.max_depth)
        depth_color = cv2.imread(str(frame / "depth_color.png"))[..., ::-1]
        assert depth_color.shape == (188 + scale.shape[0], 620, 3)
        np.testing.assert_array_equal(depth_color[188:], scale)  # the colour scale in metres under the picture
        depth = np.load(frame / "depth.npy")
        assert depth.shape == (188, 620) and depth.dtype == np.float32
        assert not (depth == 0).any()  # invalid depth is NaN, never 0
        vertices = read_ply_vertices(frame / "points.ply")
        assert len(vertices) == int(np.isfinite(depth).sum())  # one point per valid depth pixel (stride 1)
    summary = cv2.imread(str(out / "summary.png"))[..., ::-1]
    assert summary is not None and summary.shape[1] > 1000
    scale = depth_scale_bar(summary.shape[1], config.min_depth, config.max_depth)
    np.testing.assert_array_equal(summary[-scale.shape[0]:], scale)
    assert "summary.png" in result.stdout and "latency" in result.stdout
    assert "without temporal_filter" in result.stdout and "scale_from_road" in result.stdout
    assert "depth edges (iBims-1" in result.stdout and "car IoU" in result.stdout
    # the last row of tiles: the node's cloud from behind and above, by class and by image colour, over a grid
    text_and_rows = summary[:-scale.shape[0]]
    views = text_and_rows[-420:]
    assert (views == (24, 24, 32)).all(axis=2).mean() > 0.05  # the view's background


@pytest.mark.ros
def test_demo_metrics_are_those_of_the_published_depth(demo_run):
    from semantic_depth_ros.commands.generated_scenes import CAMERA_SIZE, HELDOUT_SEED
    from semantic_depth_ros.data.synthetic import render_frame

    out, _ = demo_run
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=reject_constant)
    assert set(DEPTH_METRIC_KEYS) <= set(metrics["depth"]) and metrics["depth"]["count"] == 2
    assert metrics["node"]["frames"] == 2 and metrics["node"]["latency_ms"]["p50"] > 0
    assert set(metrics["evaluation"]["depth"]) == {"50.0", "80.0"}
    assert 0.0 <= metrics["node"]["semantic_miou"] <= 1.0
    node = metrics["node"]
    assert set(node["class_abs_rel"]) == {"car", "vegetation", "pole", "building", "road"}
    assert node["class_abs_rel"]["road"]["pixels"] > 0 and node["class_abs_rel"]["road"]["abs_rel"] > 0
    assert node["boundary"]["count"] == 2 and 0.0 <= node["boundary"]["completeness"] <= 10.0
    drive = metrics["drive"]
    assert drive["frames"] == 2 and drive["flicker"]["off"] > 0 and drive["flicker"]["on"] > 0
    assert drive["road_frames_accepted"] + drive["road_frames_rejected"] == 4  # both passes reached the road scale
    assert drive["temporal_filter"] == "auto"  # switched on while the node ran ("on" means auto with odometry)
    expected = []
    for index in range(2):
        truth = render_frame("kitti_like", index, seed=HELDOUT_SEED + 1, height=CAMERA_SIZE[0], width=CAMERA_SIZE[1])
        published = np.load(out / "frames" / f"{index:03d}" / "depth.npy")
        expected.append(compute_depth_metrics(published, truth.depth, min_depth=1.0, max_depth=80.0, crop="none"))
    assert metrics["depth"]["abs_rel"] == pytest.approx(np.mean([m["abs_rel"] for m in expected]), rel=1e-9)
    report = (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["checkpoint"].endswith("model.pt")
    assert "DSC-DRN demo via the ROS node" in report and "DSC-DRN (paper)" in report
    assert "## Depth on objects" in report and "abs rel car" in report and "edge completeness px" in report


@pytest.mark.ros  # imports the node client, whose streaming is replaced here
def test_node_stage_scores_every_frame_and_writes_the_saved_ones(tmp_path, monkeypatch):
    """Per-class figures need many frames, their pictures and clouds only a few: all ``--frames`` are scored,
    the first ``--saved-frames`` written. The stand-in node publishes the truth, so every score is perfect."""
    import argparse
    from types import SimpleNamespace

    from semantic_depth_ros.commands import demo
    from semantic_depth_ros.ros import demo_client

    frames = demo.heldout_frames(3)

    def publish_truth(checkpoint, inputs, device):
        for frame, _ in zip(frames, inputs):
            height, width = frame.depth.shape
            rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
            points = np.stack([cols, rows, frame.depth, np.zeros_like(rows)], axis=-1)
            yield SimpleNamespace(depth=np.where(frame.depth > 0, frame.depth, np.nan).astype(np.float32),
                                  semantic=frame.semantic, points=points, latency_ms=5.0,
                                  semantic_color=np.zeros((height, width, 3), np.uint8),
                                  depth_color=np.zeros((height, width, 3), np.uint8),
                                  confidence=np.ones((height, width), np.float32))

    monkeypatch.setattr(demo_client, "stream_through_node", publish_truth)
    monkeypatch.setattr(demo, "node_depth_range", lambda checkpoint: (1.0, 80.0))
    args = argparse.Namespace(frames=3, saved_frames=2, device="cpu")
    result, tile_rows = demo.run_node_stage(demo.DemoPaths(tmp_path), tmp_path / "model.pt", args)
    assert result["frames"] == 3 and result["saved_frames"] == 2 and result["depth"]["count"] == 3
    assert result["depth"]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["000", "001"]
    assert (tmp_path / "frames" / "001" / "points.ply").is_file()
    assert len(tile_rows) == 2 + 1  # the saved frames' tiles, then the cloud views


def test_demo_refuses_to_save_no_frame_before_training(tmp_path):
    command = [sys.executable, "-m", "semantic_depth_ros.cli", "demo", "--out", str(tmp_path / "run"),
               "--saved-frames", "0"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "--saved-frames 0 must be at least 1" in result.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_ablation_variants_share_the_depth_budget(tmp_path):
    base1 = load_demo_config(1)
    runs = {v: variant_configs(v, 3, tmp_path / v, depth_steps=10, phase2_steps=4, device="cpu")
            for v in ("DRN", "DC-DRN", "DSC-DRN")}
    (drn,) = runs["DRN"]
    assert drn.phase == 2 and drn.init_from is None and drn.steps == 14
    assert drn.model.preset == base1.model.preset and drn.tasks() == ("depth",)
    dc1, dc2 = runs["DC-DRN"]
    dsc1, dsc2 = runs["DSC-DRN"]
    assert dc1.phase == 1 and dc1.tasks() == ("depth",) and dc1.steps == 10 and dc1.flow.semantic == 0
    assert dsc1.phase == 1 and dsc1.tasks() == ("depth", "semantic") and dsc1.steps == 20
    assert (dsc1.flow.depth, dsc1.flow.semantic) == (1, 1)  # 10 depth batches, like DC-DRN
    for phase1, phase2, variant in ((dc1, dc2, "DC-DRN"), (dsc1, dsc2, "DSC-DRN")):
        assert phase2.init_from == str(tmp_path / variant / "phase1" / MODEL_FILE)
        assert phase2.tasks() == ("depth",) and phase2.freeze == ["sc"] and phase2.steps == 4
        assert phase1.seed == phase2.seed == drn.seed == 3
    strip = {"init_from", "out_dir", "name"}
    assert ({k: v for k, v in dc2.to_dict().items() if k not in strip}
            == {k: v for k, v in dsc2.to_dict().items() if k not in strip})  # identical phase 2


def test_ablation_summary_is_mean_and_sample_std():
    per_seed = [{cap: {key: value for key in DEPTH_METRIC_KEYS} for cap in (50.0, 80.0)} for value in (1.0, 3.0)]
    summary = summarise(per_seed)
    assert summary[80.0]["abs_rel"] == 2.0 and summary[80.0]["seeds"] == 2
    assert summary[80.0]["std"]["rmse"] == pytest.approx(np.sqrt(2.0))


def test_full_size_demo_trains_a_few_steps_on_the_cpu(tmp_path):
    """The CUDA configuration (`--size full`) on the CPU for 2 steps a phase, so that it cannot rot."""
    import argparse
    import dataclasses

    from semantic_depth_ros.commands.demo import DemoPaths, demo_size, phase_config
    from semantic_depth_ros.commands.generated_scenes import train_or_reuse

    args = argparse.Namespace(size="full", device="cpu", phase1_steps=2, phase2_steps=2)
    assert demo_size(args) == "full" and demo_size(argparse.Namespace(size="auto", device="cpu")) == "small"
    paths = DemoPaths(tmp_path)
    checkpoint = None
    for phase in (1, 2):
        config = phase_config(phase, paths, args)
        assert config.steps == 2 and config.precision in ("fp32", "bf16")
        config = config.replace(batch_size=2, num_workers=0, logging={"every": 1, "tensorboard": False},
                                validation={**dataclasses.asdict(config.validation), "max_samples": 2})
        checkpoint, summary = train_or_reuse(config, retrain=False, progress=False)
        assert summary["steps"] == 2
    model = load_checkpoint(checkpoint).config
    assert (model.input_height, model.input_width) == (188, 620) and model.use_drn
    assert model.name == "resnet18_fast" and model.output_stride == 4  # the network a vehicle runs

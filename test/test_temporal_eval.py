"""`semantic-depth temporal-eval` and its metrics (evaluation/temporal_eval.py)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from semantic_depth_ros.cli import main
from semantic_depth_ros.data.synthetic.sequence import render_sequence
from semantic_depth_ros.evaluation.evaluate import load_eval_estimator
from semantic_depth_ros.evaluation.temporal_eval import (VARIANTS, correspondences, flicker, region_metrics,
                                                         run_network, run_variant)
from semantic_depth_ros.temporal.settings import TemporalSettings


@pytest.fixture(scope="module")
def sequence():
    return render_sequence(4, seed=7, height=40, width=128)


def _truth(sequence) -> list[np.ndarray]:
    return [np.where(f.depth > 0, f.depth, np.nan).astype(np.float32) for f in sequence.frames]


def test_flicker_of_the_truth_is_the_rounding_floor_and_a_scale_flip_adds_its_log(sequence) -> None:
    pairs = correspondences(sequence)
    assert all(p[0].size > 500 for p in pairs)
    floor = flicker(_truth(sequence), sequence, pairs)
    assert 0.0 < floor < 0.01
    flipped = [d * (1.1 if k % 2 else 1.0) for k, d in enumerate(_truth(sequence))]
    assert flicker(flipped, sequence, pairs) == pytest.approx(math.log(1.1), abs=floor)
    # a constant scale error flickers on a moving camera: the metric motion does not scale with it
    assert flicker([d * 1.3 for d in _truth(sequence)], sequence, pairs) > 2 * floor


def test_flicker_on_selected_pixels_only(sequence) -> None:
    pairs = correspondences(sequence)
    flipped = [d * (1.1 if k % 2 else 1.0) for k, d in enumerate(_truth(sequence))]
    everything = [np.ones(d.shape, dtype=bool) for d in flipped]
    assert flicker(flipped, sequence, pairs, everything) == flicker(flipped, sequence, pairs)
    assert math.isnan(flicker(flipped, sequence, pairs, [np.zeros(d.shape, dtype=bool) for d in flipped]))
    bottom = [np.zeros(d.shape, dtype=bool) for d in flipped]
    for mask in bottom:
        mask[20:] = True
    assert flicker(flipped, sequence, pairs, bottom) == pytest.approx(math.log(1.1), abs=0.01)


def test_region_metrics_score_static_pixels_and_the_moving_car_apart(sequence) -> None:
    depths = _truth(sequence)
    for depth, frame in zip(depths, sequence.frames):
        depth[frame.moving] *= 1.5  # only the car is wrong
    metrics = region_metrics(depths, sequence)
    assert metrics["static"]["abs_rel"] == pytest.approx(0.0, abs=1e-6) and metrics["static"]["a1"] == 1.0
    assert metrics["car"]["abs_rel"] == pytest.approx(0.5, rel=1e-5) and metrics["car"]["a1"] == 0.0
    assert metrics["static"]["frames"] == metrics["car"]["frames"] == 4


def test_the_filter_runs_at_the_network_resolution_and_is_scored_at_the_camera_size(tiny_checkpoint) -> None:
    seq = render_sequence(3, seed=7, height=96, width=320)  # larger than the tiny network's 64x192
    estimator = load_eval_estimator(tiny_checkpoint, device="cpu", precision="fp32")
    deferred, _ = run_network(estimator, seq, defer=True)
    assert deferred[0].upsampling is not None and deferred[0].depth.shape == (58, 192)
    depths, masks, stats = run_variant("poses", deferred, seq, TemporalSettings(), torch.device("cpu"))
    assert all(d.shape == (96, 320) for d in depths) and all(m.shape == (96, 320) for m in masks)
    assert stats["upsample_ms_per_frame"] > 0 and stats["filter_ms_per_frame"] > 0
    # the first frame starts the filter: its output is its input, upsampled as the node publishes it
    assert np.array_equal(depths[0], deferred[0].at_output_size(("depth",)).depth.numpy(), equal_nan=True)
    off, _, _ = run_variant("off", deferred, seq, TemporalSettings(), torch.device("cpu"))
    assert np.array_equal(off[1], deferred[1].at_output_size().depth.numpy(), equal_nan=True)


def test_temporal_eval_end_to_end_writes_every_key(tiny_checkpoint, tmp_path, capsys) -> None:
    out = tmp_path / "nested" / "temporal.json"
    (tmp_path / "nested").mkdir()
    code = main(["temporal-eval", "--checkpoint", str(tiny_checkpoint), "--frames", "3", "--height", "32",
                 "--width", "96", "--device", "cpu", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "| poses |" in printed and "| no_poses |" in printed and f"wrote {out}" in printed
    assert "| stopped camera, no_poses |" in printed

    def no_constants(name: str) -> None:
        raise AssertionError(f"non-strict JSON constant {name}")

    result = json.loads(out.read_text(), parse_constant=no_constants)
    assert set(result) == {"checkpoint", "model", "trained", "device", "precision", "sequence", "settings",
                           "network_ms_per_frame", "flicker_floor", "variants", "stopped_camera", "goals"}
    assert result["trained"] is False and result["sequence"]["frames"] == 3
    assert result["settings"]["temporal_filter"] == "auto" and result["network_ms_per_frame"] > 0
    assert set(result["variants"]) == set(VARIANTS)
    for name, variant in result["variants"].items():
        assert {"flicker", "flicker_parked_cars", "static", "car"} <= set(variant)
        assert set(variant["static"]) == {"abs_rel", "a1", "frames"} and variant["static"]["frames"] == 3
        if name != "off":
            assert {"filter_ms_per_frame", "fused_fraction_mean", "resets", "frames_without_pose",
                    "flicker_fused_pixels", "off_flicker_fused_pixels"} <= set(variant)
            assert variant["resets"] == 0
    assert result["variants"]["poses"]["frames_without_pose"] == 0
    assert result["variants"]["no_poses"]["frames_without_pose"] == 3
    stopped = result["stopped_camera"]
    assert set(stopped["variants"]) == {"off", "no_poses"} and stopped["flicker_floor"] >= 0.0
    assert stopped["variants"]["no_poses"]["frames_without_pose"] == 3
    assert set(result["goals"]) == {
        "poses_flicker_ratio", "poses_flicker_at_most_half", "poses_static_abs_rel_not_worse",
        "no_poses_flicker_ratio", "no_poses_flicker_clearly_lower", "poses_car_abs_rel_change",
        "no_poses_car_abs_rel_change", "car_abs_rel_at_most_5_percent_worse", "stopped_no_poses_flicker_ratio",
        "stopped_no_poses_flicker_clearly_lower", "filter_cost_ratio", "filter_cost_below_10_percent",
    }


@pytest.mark.parametrize("extra, message", [
    (["--frames", "1"], "error: synthetic frames 1 must be in [2, 100]"),
    (["--temporal-disagreement", "0"], "error: temporal_disagreement = 0.0 must be in (0, 1]"),
    (["--temporal-moving-labels", "30"], "error: temporal_moving_labels: 30 is not a train id"),
])
def test_temporal_eval_user_errors_print_one_line(tiny_checkpoint, capsys, extra, message) -> None:
    code = main(["temporal-eval", "--checkpoint", str(tiny_checkpoint), "--height", "32", "--width", "96",
                 "--device", "cpu", *extra])
    assert code == 1
    assert message in capsys.readouterr().err

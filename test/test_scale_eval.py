"""`semantic-depth scale-eval` (evaluation/scale_eval.py) and `evaluate --scale-from-road`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from semantic_depth_ros import cli
from semantic_depth_ros.data.synthetic import render_frame
from semantic_depth_ros.evaluation.evaluate import build_eval_dataset, evaluate_depth
from semantic_depth_ros.evaluation.metrics import DepthMetricAccumulator
from semantic_depth_ros.evaluation.scale_eval import (SCALE_EVAL_SEED, format_scale_report, measure_road_scale,
                                                     nominal_camera_height)
from semantic_depth_ros.inference.estimator import EstimatorOutputs
from semantic_depth_ros.roadscale import RoadScale, RoadScaleSettings

HEIGHT, WIDTH = 48, 160


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> None:
    torch.set_num_threads(1)


class TruthEstimator:
    """Answers with the rendered frame's own depth (NaN where 0) and labels, times ``bias``: a perfect model."""

    trained = True

    def __init__(self, domain: str, seed: int, bias: float = 1.0) -> None:
        self.domain, self.seed, self.bias = domain, seed, bias
        self.index = 0

    def estimate(self, image: np.ndarray, *, camera: Any, output_resolution: str, outputs: Any,
                 defer: bool = False) -> Any:
        frame = render_frame(self.domain, self.index, seed=self.seed, height=image.shape[0], width=image.shape[1])
        assert np.array_equal(frame.rgb, image) and "depth" in outputs
        self.index += 1
        depth = np.where(frame.depth > 0, frame.depth * self.bias, np.nan).astype(np.float32)
        return EstimatorOutputs(depth=torch.from_numpy(depth), semantic=torch.from_numpy(frame.semantic),
                                confidence=None, intrinsics=camera)


def test_a_perfect_model_scaled_by_e_is_corrected_from_the_road() -> None:
    settings = RoadScaleSettings(camera_height=nominal_camera_height("kitti_like"), scale_window=3)
    report = measure_road_scale(TruthEstimator("kitti_like", 11), settings, scale_error=1.25, frames=4,
                                seed=11, height=HEIGHT, width=WIDTH, progress=False)
    assert nominal_camera_height("kitti_like") == pytest.approx(1.65)
    depth = report["depth"]
    assert depth["unscaled"]["abs_rel"] < 1e-6 and depth["scaled"]["abs_rel"] == pytest.approx(0.25, rel=0.01)
    assert depth["scaled"]["abs_rel"] <= 0.25  # predictions are clipped at the cap, 80 m
    assert depth["corrected"]["abs_rel"] < 0.02  # only the vehicle's height jitter (about 1 %) remains
    truths = [frame["true_height"] for frame in report["per_frame"]]
    assert all(abs(h - 1.65) < 0.05 for h in truths) and len(set(truths)) == 4  # jittered per frame
    for frame in report["per_frame"]:
        assert frame["reason"] == "accepted"
        assert frame["fitted_height"] == pytest.approx(frame["true_height"] * 1.25, rel=0.003)
        assert frame["frame_scale"] == pytest.approx(1.65 / frame["fitted_height"])
    scale = report["scale"]
    assert scale["ideal"] == 0.8 and scale["accepted_fraction"] == 1.0 and scale["accepted"] == 4
    assert scale["applied"]["median"] == pytest.approx(0.8, rel=0.02) and scale["applied"]["spread"] < 0.02
    assert report["model_camera_height"]["median"] == pytest.approx(report["true_camera_height"]["median"], 0.01)
    goals = report["goals"]
    assert goals["corrected_abs_rel_vs_unscaled"]["target"] == 0.10 and goals["applied_scale_spread"]["met"]
    text = format_scale_report(report)
    assert "model x E, road-corrected" in text and "frames accepted 4/4 (100%)" in text


def test_metrics_are_the_eigen_metrics_of_each_variant() -> None:
    settings = RoadScaleSettings(camera_height=1.5, scale_window=1)
    report = measure_road_scale(TruthEstimator("kitti_like", 12, bias=1.1), settings, scale_error=0.75, frames=2,
                                seed=12, height=HEIGHT, width=WIDTH, progress=False)
    road = RoadScale(settings)
    expected = {name: DepthMetricAccumulator(min_depth=1.0, max_depth=80.0, crop="none")
                for name in ("unscaled", "scaled", "corrected")}
    for index in range(2):
        frame = render_frame("kitti_like", index, seed=12, height=HEIGHT, width=WIDTH)
        model = torch.from_numpy(np.where(frame.depth > 0, frame.depth * 1.1, np.nan).astype(np.float32))
        scale = road.update(model * 0.75, torch.from_numpy(frame.semantic), frame.intrinsics)
        for name, depth in (("unscaled", model), ("scaled", model * 0.75), ("corrected", model * 0.75 * scale)):
            expected[name].add(depth.numpy(), frame.depth)
    for name, accumulator in expected.items():
        for key in ("abs_rel", "rmse", "a1"):
            assert report["depth"][name][key] == pytest.approx(accumulator.result()[key], rel=1e-6)
    assert report["scale"]["applied_final"] == pytest.approx(road.scale)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_untrained_model_writes_strict_json_and_leaves_the_scale_at_one(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_checkpoint: Path) -> None:
    out = tmp_path / "scale.json"
    code, text, err = run_cli(capsys, "scale-eval", "--checkpoint", str(tiny_checkpoint), "--scale-error", "1.25",
                              "--frames", "2", "--height", "32", "--width", "96", "--device", "cpu", "--no-progress",
                              "--json", str(out))
    assert code == 0, err
    assert "UNTRAINED" in err and "UNTRAINED model" in text and f"wrote {out}" in text
    report = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON {name}"))
    assert report["checkpoint"] == str(tiny_checkpoint) and report["trained"] is False
    assert report["seed"] == SCALE_EVAL_SEED and report["image_size"] == [32, 96] and report["frames"] == 2
    assert report["camera_height"] == pytest.approx(1.65) and report["scale_error"] == 1.25
    assert report["scale"]["accepted"] == 0 and report["scale"]["applied_final"] == 1.0
    assert report["scale"]["applied"]["median"] is None  # NaN becomes null
    assert report["depth"]["corrected"] == report["depth"]["scaled"]
    assert report["goals"] == {"untrained_rejected": {"value": 0, "target": 0, "met": True}}
    assert sum(report["scale"]["rejected"].values()) == 2 and len(report["per_frame"]) == 2


def test_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_checkpoint: Path) -> None:
    base = ("scale-eval", "--checkpoint", str(tiny_checkpoint), "--frames", "1", "--device", "cpu", "--no-progress")
    code, _, err = run_cli(capsys, *base, "--scale-error", "0")
    assert code == 1 and err == "error: scale error 0.0 must be in [0.1, 10]\n"
    code, _, err = run_cli(capsys, *base, "--scale-error", "1", "--camera-height", "-1")
    assert code == 1 and err == "error: camera_height = -1.0 must be > 0 metres when scale_from_road is on\n"
    code, _, err = run_cli(capsys, *base, "--scale-error", "1", "--json", str(tmp_path))
    assert code == 1 and err == f"error: --json {tmp_path} is a folder; give a file name such as scale.json\n"


# ---------------------------------------------------------------------------------------------------------------
# evaluate --scale-from-road


def test_evaluate_depth_corrects_each_frame_from_its_road() -> None:
    dataset = build_eval_dataset("synthetic", domain="kitti_like", count=3, seed=13, height=HEIGHT, width=WIDTH)

    class Doubled(TruthEstimator):
        def estimate(self, image: np.ndarray, **kwargs: Any) -> Any:
            out = super().estimate(image, **kwargs)
            out.depth = out.depth * 2.0
            return out

    plain = evaluate_depth(Doubled("kitti_like", 13), dataset, caps=(80.0,), min_depth=1.0, crop="none",
                           progress=False)
    road = RoadScale(RoadScaleSettings(camera_height=1.65, scale_window=1))
    corrected = evaluate_depth(Doubled("kitti_like", 13), dataset, caps=(80.0,), min_depth=1.0, crop="none",
                               progress=False, road_scale=road)
    assert plain[80.0]["abs_rel"] > 0.8
    # the samples' principal point is the image centre (they carry fx only): the fit barely notices
    assert corrected[80.0]["abs_rel"] < 0.02 and corrected[80.0]["count"] == 3
    assert road.accepted == 3 and road.scale == pytest.approx(0.5, rel=0.02)


def test_evaluate_cli_with_and_without_camera_height(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     tiny_checkpoint: Path) -> None:
    base = ("evaluate", "--checkpoint", str(tiny_checkpoint), "--count", "2", "--height", "16", "--width", "48",
            "--device", "cpu", "--no-progress", "--caps", "80")
    code, _, err = run_cli(capsys, *base, "--scale-from-road")
    assert code == 1 and err.endswith("error: --camera-height is needed with --scale-from-road: camera_height must "
                                      "be > 0 metres when scale_from_road is on\n")
    code, _, err = run_cli(capsys, *base, "--scale-from-road", "--camera-height", "0")
    assert code == 1 and err.endswith("error: camera_height = 0.0 must be > 0 metres when scale_from_road is on\n")
    code, _, err = run_cli(capsys, *base, "--camera-height", "1.65")
    assert code == 1 and err.endswith("error: --camera-height is an option of --scale-from-road, which is not given\n")
    code, out, err = run_cli(capsys, *base, "--scale-from-road", "--camera-height", "1.65", "--out",
                             str(tmp_path / "r"))
    assert code == 0, err
    data = json.loads((tmp_path / "r" / "evaluation.json").read_text())
    assert data["method"] == "tiny (untrained) + road scale"
    assert data["road_scale"]["frames"] == 2 and data["road_scale"]["scale_window"] == 1
    assert data["road_scale"]["camera_height"] == 1.65
    accepted = data["road_scale"]["accepted"]
    assert data["scaling"] == f"scale from the road (camera_height 1.65 m, {accepted} of 2 frames accepted; " \
                              "no median scaling)"
    assert "+ road scale" in out


def test_an_untrained_models_depth_is_rejected_even_on_the_true_road(tiny_checkpoint: Path) -> None:
    from semantic_depth_ros.evaluation.evaluate import load_eval_estimator

    model = load_eval_estimator(tiny_checkpoint, device="cpu")

    class TrueLabels:
        trained = False

        def __init__(self) -> None:
            self.index = 0

        def estimate(self, image: np.ndarray, **kwargs: Any) -> Any:
            out = model.estimate(image, **kwargs)
            frame = render_frame("kitti_like", self.index, seed=14, height=image.shape[0], width=image.shape[1])
            self.index += 1
            out.semantic = torch.from_numpy(frame.semantic)  # the road where it really is
            return out

    report = measure_road_scale(TrueLabels(), RoadScaleSettings(camera_height=1.65), scale_error=1.25, frames=3,
                                seed=14, height=HEIGHT, width=WIDTH, progress=False)
    assert all(frame["road_fraction"] > 0.1 for frame in report["per_frame"])
    assert report["scale"]["rejected"]["few_road_pixels"] == 0  # rejected by the fit, not for want of road
    assert report["scale"]["accepted"] == 0 and report["scale"]["applied_final"] == 1.0
    assert report["goals"]["untrained_rejected"]["met"]

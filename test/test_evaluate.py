"""Dataset evaluation (evaluation/evaluate.py) and `semantic-depth evaluate` on tiny generated and fake datasets."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest
import torch

from semantic_depth_ros import cli
from semantic_depth_ros.data.fileio import depth_to_uint16
from semantic_depth_ros.data.synthetic import SyntheticDataset
from semantic_depth_ros.errors import ConfigError, DatasetError, InvalidInputError
from semantic_depth_ros.evaluation.evaluate import (
    EVAL_MAX_DEPTH,
    EVAL_MIN_DEPTH,
    build_eval_dataset,
    describe_eval_dataset,
    evaluate_depth,
    evaluate_semantic,
    evaluation_results,
    load_eval_estimator,
    method_name,
    sample_image_to_uint8,
)
from semantic_depth_ros.evaluation.metrics import DEPTH_METRIC_KEYS, SemanticConfusion, compute_depth_metrics
from semantic_depth_ros.evaluation.report import write_report
from semantic_depth_ros.labels import CITYSCAPES_TRAIN_ID_NAMES

HEIGHT, WIDTH = 24, 64


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint: Path) -> Path:
    """conftest's tiny UNTRAINED checkpoint (64x192 input, decoder (32, 16), 16 bins)."""
    torch.set_num_threads(1)
    return tiny_checkpoint


@pytest.fixture(scope="module")
def estimator(checkpoint: Path) -> Any:
    return load_eval_estimator(checkpoint, device="cpu")


def depth_sample(gt: np.ndarray, fx: float, seed: int) -> dict[str, Any]:
    """An in-memory depth sample with a random image (exactly representable as uint8 / 255)."""
    rgb = np.random.default_rng(seed).integers(0, 256, (*gt.shape, 3), dtype=np.uint8)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0
    return {"image": image, "depth": torch.from_numpy(gt.astype(np.float32))[None], "fx": fx}


class StubEstimator:
    """Returns prepared depth/semantic maps in call order and records what it was given."""

    def __init__(self, depths: list[np.ndarray] | None = None, labels: list[np.ndarray] | None = None) -> None:
        self.depths = list(depths or [])
        self.labels = list(labels or [])
        self.calls: list[dict[str, Any]] = []

    def estimate(self, image: np.ndarray, *, camera=None, output_resolution="input", outputs=()) -> Any:
        self.calls.append({"image": image, "intrinsics": camera, "resolution": output_resolution,
                           "outputs": tuple(outputs)})
        depth = torch.from_numpy(self.depths.pop(0)) if "depth" in outputs else None
        semantic = torch.from_numpy(self.labels.pop(0)) if "semantic" in outputs else None
        return SimpleNamespace(depth=depth, semantic=semantic, confidence=None, intrinsics=camera)


def ramp_depth(low: float, high: float) -> np.ndarray:
    """HxW depth (metres) rising linearly over the pixels, with the first row invalid (0)."""
    depth = np.linspace(low, high, HEIGHT * WIDTH, dtype=np.float32).reshape(HEIGHT, WIDTH)
    depth[0] = 0.0
    return depth


# --------------------------------------------------------------------------------------------------------------
# evaluate_depth / evaluate_semantic with stub estimators


def test_prediction_equal_to_ground_truth_scores_perfectly_and_sees_the_sample_camera() -> None:
    gts = [ramp_depth(2.0, 70.0), ramp_depth(5.0, 40.0)]
    dataset = [depth_sample(gts[0], 55.0, 1), depth_sample(gts[1], 60.0, 2)]
    stub = StubEstimator([np.where(gt > 0, gt, np.nan).astype(np.float32) for gt in gts])
    results = evaluate_depth(stub, dataset, caps=(50, 80), min_depth=1.0, crop="none", progress=False)
    assert sorted(results) == [50.0, 80.0]
    for metrics in results.values():
        assert metrics["abs_rel"] == 0.0 and metrics["sq_rel"] == 0.0 and metrics["rmse"] == 0.0
        assert metrics["a1"] == 1.0 and metrics["a2"] == 1.0 and metrics["a3"] == 1.0
        assert metrics["count"] == 2 and metrics["skipped"] == 0
    for call, sample, fx in zip(stub.calls, dataset, (55.0, 60.0)):
        assert call["image"].dtype == np.uint8 and call["image"].shape == (HEIGHT, WIDTH, 3)
        np.testing.assert_array_equal(call["image"], sample_image_to_uint8(sample["image"]))
        np.testing.assert_array_equal(call["image"].transpose(2, 0, 1), np.rint(sample["image"].numpy() * 255))
        intr = call["intrinsics"]
        assert (intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height) == (fx, fx, 31.5, 11.5, WIDTH, HEIGHT)
        assert call["resolution"] == "input" and call["outputs"] == ("depth",)


def test_caps_select_different_pixels_and_images_and_match_the_metrics_function() -> None:
    gts = [ramp_depth(2.0, 70.0), ramp_depth(55.0, 75.0)]  # the second image has nothing below 50 m
    rng = np.random.default_rng(3)
    preds = [(gt * rng.uniform(0.7, 1.4, gt.shape)).astype(np.float32) for gt in gts]
    preds[0][5, :10] = np.nan  # "no depth" pixels are scored, not dropped
    stub = StubEstimator([p.copy() for p in preds + preds])
    dataset = [depth_sample(gt, 50.0, i) for i, gt in enumerate(gts)]
    garg = evaluate_depth(stub, dataset, caps=(50.0, 80.0), min_depth=1.0, crop="garg", progress=False)
    none = evaluate_depth(stub, dataset, caps=(80.0,), min_depth=1.0, crop="none", progress=False)

    assert garg[50.0]["count"] == 1 and garg[50.0]["skipped"] == 1
    assert garg[80.0]["count"] == 2 and garg[80.0]["skipped"] == 0
    expected_50 = compute_depth_metrics(preds[0], gts[0], min_depth=1.0, max_depth=50.0, crop="garg")
    pairs = list(zip(preds, gts))
    per_image_80 = [compute_depth_metrics(p, g, min_depth=1.0, max_depth=80.0, crop="garg") for p, g in pairs]
    per_image_none = [compute_depth_metrics(p, g, min_depth=1.0, max_depth=80.0, crop="none") for p, g in pairs]
    for key in DEPTH_METRIC_KEYS:
        assert garg[50.0][key] == pytest.approx(expected_50[key], rel=1e-12)
        assert garg[80.0][key] == pytest.approx(np.mean([m[key] for m in per_image_80]), rel=1e-12)
        assert none[80.0][key] == pytest.approx(np.mean([m[key] for m in per_image_none]), rel=1e-12)
    assert garg[50.0]["abs_rel"] != pytest.approx(garg[80.0]["abs_rel"])
    assert garg[80.0]["abs_rel"] != pytest.approx(none[80.0]["abs_rel"])


def test_limit_stops_early_and_bad_arguments_are_config_errors() -> None:
    gt = ramp_depth(2.0, 70.0)
    stub = StubEstimator([gt.copy()])
    results = evaluate_depth(stub, [depth_sample(gt, 50.0, 0)] * 3, limit=1, crop="none", progress=False)
    assert len(stub.calls) == 1 and results[80.0]["count"] == 1
    with pytest.raises(ConfigError, match="depth cap 1 must be finite and larger than min_depth 1"):
        evaluate_depth(stub, [depth_sample(gt, 50.0, 0)], caps=(1.0, 80.0), min_depth=1.0, progress=False)
    with pytest.raises(ConfigError, match="depth caps must be distinct"):
        evaluate_depth(stub, [depth_sample(gt, 50.0, 0)], caps=(80, 80.0), progress=False)
    with pytest.raises(ConfigError, match="limit must be a positive integer, got 0"):
        evaluate_depth(stub, [depth_sample(gt, 50.0, 0)], limit=0, progress=False)
    with pytest.raises(DatasetError, match="evaluation dataset has no samples"):
        evaluate_depth(stub, [], progress=False)
    with pytest.raises(DatasetError, match="sample 0 has no 'depth'"):
        evaluate_depth(stub, [{"image": torch.zeros(3, 4, 4), "fx": 1.0}], progress=False)


def test_prediction_of_the_wrong_size_is_rejected() -> None:
    gt = ramp_depth(2.0, 70.0)
    stub = StubEstimator([gt[:-1].copy()])
    with pytest.raises(InvalidInputError, match=r"estimator depth output is \(23, 64\), expected the input size"):
        evaluate_depth(stub, [depth_sample(gt, 50.0, 0)], progress=False)


def test_semantic_confusion_gives_exact_iou_and_ignores_255() -> None:
    gt = np.full((HEIGHT, WIDTH), 0, dtype=np.int64)
    gt[:, 32:] = 13  # car on the right half
    gt[0] = 255  # ignored row
    pred = np.where(gt == 255, 10, gt).astype(np.uint8)
    pred[1:, 32:40] = 0  # 8 columns of car predicted as road
    sample = {"image": torch.rand(3, HEIGHT, WIDTH), "semantic": torch.from_numpy(gt), "fx": 40.0}
    result = evaluate_semantic(StubEstimator(labels=[pred]), [sample], progress=False)
    rows = HEIGHT - 1
    road_iou = (32 * rows) / (40 * rows)
    car_iou = (24 * rows) / (32 * rows)
    assert list(result["iou"]) == list(CITYSCAPES_TRAIN_ID_NAMES)
    assert result["iou"]["road"] == pytest.approx(road_iou) and result["iou"]["car"] == pytest.approx(car_iou)
    assert np.isnan(result["iou"]["sky"])  # predicted only on ignored pixels: absent
    assert result["miou"] == pytest.approx((road_iou + car_iou) / 2)
    assert result["pixel_accuracy"] == pytest.approx(56 / 64)
    assert result["count"] == 1


# --------------------------------------------------------------------------------------------------------------
# The real estimator on generated scenes, an extracted folder and a fake KITTI tree


def direct_depth_metrics(estimator: Any, dataset: Any, cap: float, crop: str) -> dict[str, float]:
    """Per-image mean of compute_depth_metrics on the estimator's own outputs (the reference numbers)."""
    from semantic_depth_ros.geometry.intrinsics import Intrinsics

    per_image = []
    for index in range(len(dataset)):
        sample = dataset[index]
        rgb = np.rint(sample["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        h, w = rgb.shape[:2]
        intr = Intrinsics(sample["fx"], sample["fx"], (w - 1) / 2, (h - 1) / 2, w, h)
        depth = estimator.estimate(rgb, camera=intr, output_resolution="input", outputs=("depth",)).depth
        per_image.append(compute_depth_metrics(depth.cpu(), sample["depth"], min_depth=1.0, max_depth=cap, crop=crop))
    return {key: float(np.mean([m[key] for m in per_image])) for key in DEPTH_METRIC_KEYS}


def test_eval_estimator_keeps_every_prediction(estimator: Any) -> None:
    assert estimator.mask_sky is False
    assert (estimator.min_depth, estimator.max_depth) == (EVAL_MIN_DEPTH, EVAL_MAX_DEPTH)
    assert estimator.trained is False


def test_generated_scenes_match_the_metrics_function_on_the_estimator_outputs(estimator: Any) -> None:
    dataset = build_eval_dataset("synthetic", domain="kitti_like", count=2, seed=7, height=HEIGHT, width=WIDTH)
    assert isinstance(dataset, SyntheticDataset) and dataset[0]["image"].shape == (3, HEIGHT, WIDTH)
    results = evaluate_depth(estimator, dataset, caps=(50.0, 80.0), crop="none", progress=False)
    for cap in (50.0, 80.0):
        expected = direct_depth_metrics(estimator, dataset, cap, "none")
        for key in DEPTH_METRIC_KEYS:
            assert results[cap][key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12)
        assert results[cap]["count"] == 2
    assert results[50.0]["rmse"] != pytest.approx(results[80.0]["rmse"])


def test_generated_semantic_scenes_match_a_direct_confusion(estimator: Any) -> None:
    dataset = build_eval_dataset("synthetic", domain="cityscapes_like", task="semantic", count=2, seed=3,
                                 height=16, width=32)
    result = evaluate_semantic(estimator, dataset, progress=False)
    confusion = SemanticConfusion()
    for index in range(2):
        sample = dataset[index]
        rgb = np.rint(sample["image"].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        confusion.add(estimator.estimate(rgb, outputs=("semantic",)).semantic.cpu(), sample["semantic"])
    assert result["miou"] == pytest.approx(confusion.miou())
    assert result["pixel_accuracy"] == pytest.approx(confusion.pixel_accuracy())


def write_extracted(root: Path, count: int = 2) -> list[np.ndarray]:
    """A folder in the `semantic-depth extract` layout; returns the ground-truth depth maps (metres)."""
    rng = np.random.default_rng(11)
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    intrinsics = {"fx": 50.0, "fy": 51.0, "cx": 31.0, "cy": 12.0, "width": WIDTH, "height": HEIGHT}
    (root / "intrinsics.json").write_text(json.dumps(intrinsics))
    lines, gts = [], []
    for index in range(count):
        rgb = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
        gt = np.where(rng.random((HEIGHT, WIDTH)) < 0.3, rng.uniform(2.0, 70.0, (HEIGHT, WIDTH)), 0.0)
        cv2.imwrite(str(root / "rgb" / f"{index:06d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "depth" / f"{index:06d}.png"), depth_to_uint16(gt))
        gts.append(depth_to_uint16(gt).astype(np.float32) / 256.0)
        lines.append(json.dumps({"rgb": f"rgb/{index:06d}.png", "depth": f"depth/{index:06d}.png"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    return gts


def test_extracted_folder_with_the_real_estimator(estimator: Any, tmp_path: Path) -> None:
    write_extracted(tmp_path / "bag")
    dataset = build_eval_dataset("extracted", root=tmp_path / "bag")
    results = evaluate_depth(estimator, dataset, caps=(80.0,), crop="none", progress=False)
    expected = direct_depth_metrics(estimator, dataset, 80.0, "none")
    for key in DEPTH_METRIC_KEYS:
        assert results[80.0][key] == pytest.approx(expected[key], rel=1e-9, abs=1e-12)
    assert results[80.0]["count"] == 2


KITTI_DATE = "2011_09_26"
KITTI_DRIVE = "2011_09_26_drive_0001_sync"
KITTI_K = np.array([[40.0, 0.0, 31.5], [0.0, 40.0, 11.5], [0.0, 0.0, 1.0]])


def write_fake_kitti(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A one-frame KITTI raw tree (identity rectification, Velodyne axes x fwd / y left / z up) whose LiDAR points
    land on the pixel centres of every other pixel at depths 4..64 m; returns (root, split file, gt depth)."""
    root = tmp_path / "kitti"
    date_dir = root / KITTI_DATE
    drive = date_dir / KITTI_DRIVE
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    p_rect = np.hstack([KITTI_K, np.zeros((3, 1))])
    numbers = lambda values: " ".join(f"{v:.10e}" for v in np.asarray(values, dtype=float).ravel())  # noqa: E731
    (date_dir / "calib_cam_to_cam.txt").write_text(
        f"calib_time: 09-Jan-2012 13:57:47\nR_rect_00: {numbers(np.eye(3))}\n"
        f"S_rect_02: {WIDTH} {HEIGHT}\nP_rect_02: {numbers(p_rect)}\n"
    )
    velo_to_cam = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    (date_dir / "calib_velo_to_cam.txt").write_text(f"R: {numbers(velo_to_cam)}\nT: 0 0 0\n")
    rows, cols = np.mgrid[0:HEIGHT:2, 0:WIDTH:2]
    z = 4.0 + 60.0 * (rows * WIDTH + cols) / (HEIGHT * WIDTH)
    cam = np.stack([(cols - KITTI_K[0, 2]) * z / KITTI_K[0, 0], (rows - KITTI_K[1, 2]) * z / KITTI_K[1, 1], z], -1)
    velo = cam.reshape(-1, 3) @ velo_to_cam  # inverse rotation, row vectors
    scan = np.column_stack([velo, np.ones(len(velo))]).astype("<f4")
    scan.tofile(drive / "velodyne_points" / "data" / "0000000005.bin")
    rgb = np.random.default_rng(5).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cv2.imwrite(str(drive / "image_02" / "data" / "0000000005.png"), rgb)
    split = tmp_path / "eigen_test.txt"
    split.write_text(f"{KITTI_DATE}/{KITTI_DRIVE} 5 l\n")
    gt = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    gt[rows, cols] = z
    return root, split, gt


def test_fake_kitti_velodyne_and_annotated_ground_truth(tmp_path: Path) -> None:
    root, split, gt = write_fake_kitti(tmp_path)
    annotated = tmp_path / "annotated" / "val" / KITTI_DRIVE / "proj_depth" / "groundtruth" / "image_02"
    annotated.mkdir(parents=True)
    cv2.imwrite(str(annotated / "0000000005.png"), depth_to_uint16(gt))
    reference = build_eval_dataset("kitti", root=root, split_file=split)[0]["depth"][0].numpy()
    shifted = np.zeros_like(gt)
    shifted[:-1, :-1] = gt[1:, 1:]  # the default, reference procedure puts a point at round(u) - 1, round(v) - 1
    np.testing.assert_allclose(reference, shifted, rtol=1e-6)
    for options in ({"gt": "velodyne", "projection": "geometric"},
                    {"gt": "annotated", "annotated_root": tmp_path / "annotated"}):
        dataset = build_eval_dataset("kitti", root=root, split_file=split, **options)
        read = dataset[0]["depth"][0].numpy()
        np.testing.assert_allclose(read, gt, atol=1 / 256)
        stub = StubEstimator([(1.2 * read + (read == 0) * 30.0).astype(np.float32)])
        results = evaluate_depth(stub, dataset, caps=(50.0, 80.0), crop="garg", progress=False)
        assert stub.calls[0]["intrinsics"].fx == 40.0
        rows, cols = np.arange(HEIGHT)[:, None], np.arange(WIDTH)[None, :]
        garg = (rows >= int(0.40810811 * HEIGHT)) & (rows < int(0.99189189 * HEIGHT))
        garg = garg & (cols >= int(0.03594771 * WIDTH)) & (cols < int(0.96405229 * WIDTH))
        for cap in (50.0, 80.0):  # prediction = 1.2 x gt, clipped to the cap by the protocol
            target = read[garg & (read > 1.0) & (read < cap)].astype(np.float64)
            assert np.count_nonzero(read) > target.size > 0
            clipped = np.clip(1.2 * target, 1.0, cap)
            assert results[cap]["abs_rel"] == pytest.approx(np.mean(np.abs(clipped - target) / target), rel=1e-6)
            assert results[cap]["rmse"] == pytest.approx(np.sqrt(np.mean((clipped - target) ** 2)), rel=1e-6)
            assert results[cap]["a1"] == 1.0 and results[cap]["count"] == 1
        assert results[80.0]["abs_rel"] == pytest.approx(0.2, rel=1e-6)  # 1.2 x 64 m stays below 80 m
        assert results[50.0]["abs_rel"] < 0.19


def test_dataset_factory_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"extracted dataset folder not found: {tmp_path / 'none'}"):
        build_eval_dataset("extracted", root=tmp_path / "none")
    with pytest.raises(DatasetError, match="KITTI split '.*missing.txt' is neither a file nor an installed name"):
        build_eval_dataset("kitti", root=tmp_path, split_file=tmp_path / "missing.txt")
    with pytest.raises(ConfigError, match="kitti dataset needs option\\(s\\) split_file"):
        build_eval_dataset("kitti", root=tmp_path)
    with pytest.raises(ConfigError, match="extracted dataset does not take option\\(s\\) gt"):
        build_eval_dataset("extracted", root=tmp_path, gt="velodyne")
    with pytest.raises(ConfigError, match="unknown evaluation dataset 'nyu'"):
        build_eval_dataset("nyu", root=tmp_path)
    with pytest.raises(ConfigError, match="count must be a positive integer, got 0"):
        build_eval_dataset("synthetic", domain="kitti_like", count=0)
    assert describe_eval_dataset("extracted", root=Path("/data/bag")) == "extracted (root=/data/bag)"


# --------------------------------------------------------------------------------------------------------------
# Report assembly and the command line


def test_results_dict_and_report_files(tmp_path: Path) -> None:
    depth = {80.0: {"abs_rel": 0.2, "a1": 0.9, "count": 3}, 50.0: {"abs_rel": 0.1, "a1": 0.95, "count": 3}}
    semantic = {"miou": 0.5, "pixel_accuracy": 0.8, "iou": {"road": 0.9, "sky": float("nan")}, "count": 2}
    method = method_name("/runs/dsc_drn_best.pt", trained=True)
    assert method == "dsc_drn_best" and method_name("x.pt", "ours", trained=False) == "ours (untrained)"
    results = evaluation_results(method=method, checkpoint=Path("/runs/dsc_drn_best.pt"), trained=True, depth=depth,
                                 semantic=semantic, depth_dataset="kitti (root=/k)", semantic_dataset="cityscapes",
                                 min_depth=1.0, crop="garg", extra={"device": "cpu"})
    assert [(row["cap"], row["metrics"]["abs_rel"]) for row in results["depth"]] == [(50.0, 0.1), (80.0, 0.2)]
    assert results["caps"] == [50.0, 80.0] and results["crop"] == "garg" and results["device"] == "cpu"
    json_path, md_path = write_report(tmp_path / "evaluation", results)
    data = json.loads(json_path.read_text())
    assert data["checkpoint"] == "/runs/dsc_drn_best.pt" and data["trained"] is True
    assert data["semantic"][0]["iou"] == {"road": 0.9, "sky": None}
    markdown = md_path.read_text()
    assert "## Depth, cap 50 m" in markdown and "## Depth, cap 80 m" in markdown
    assert "| dsc_drn_best | 80 m | 0.200 |" in markdown and "| DSC-DRN (paper) | 80 m | 0.100 |" in markdown
    with pytest.raises(ConfigError, match="unknown crop 'center'"):
        evaluation_results(method="m", checkpoint="c.pt", trained=True, depth=depth, crop="center")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(["evaluate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_missing_checkpoint_and_dataset_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path
) -> None:
    code, _, err = run_cli(capsys, "--checkpoint", str(tmp_path / "nope.pt"), "--count", "1",
                           "--height", "16", "--width", "32", "--no-progress")
    assert code == 1 and err == f"error: checkpoint {tmp_path / 'nope.pt'}: file not found\n"
    code, _, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "extracted",
                           "--root", str(tmp_path / "absent"))
    assert code == 1 and err == f"error: extracted dataset folder not found: {tmp_path / 'absent'}\n"
    code, _, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "kitti", "--root", str(tmp_path))
    calib = tmp_path / "2011_09_26" / "calib_cam_to_cam.txt"  # the default split, eigen_test, starts on that date
    assert code == 1 and err == f"error: missing KITTI calibration file: {calib}\n"
    code, _, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--caps", "0.5", "--no-progress")
    assert code == 1 and err == "error: depth cap 0.5 must be finite and larger than min_depth 1\n"
    code, _, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "none")
    assert code == 1 and err == "error: nothing to evaluate: --dataset none and --semantic none\n"
    (tmp_path / "a_file").write_text("not a folder")
    code, out, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--count", "1", "--height", "16",
                             "--width", "32", "--device", "cpu", "--no-progress", "--out", str(tmp_path / "a_file"))
    assert code == 1 and err == f"error: --out {tmp_path / 'a_file'}: cannot be created (File exists)\n" and not out


def test_cli_generated_depth_and_semantics_writes_the_report(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, checkpoint: Path
) -> None:
    code, out, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "synthetic", "--count", "2",
                             "--height", "16", "--width", "48", "--semantic", "synthetic", "--out",
                             str(tmp_path / "report"), "--label", "tiny", "--no-progress", "--device", "cpu")
    assert code == 0, err
    assert "UNTRAINED" in err
    assert "| tiny (untrained) | 50 m |" in out and "| DSC-DRN (paper) | 80 m | 0.100 |" in out
    data = json.loads((tmp_path / "report" / "evaluation.json").read_text())
    assert data["method"] == "tiny (untrained)" and data["trained"] is False
    assert data["checkpoint"] == str(checkpoint) and data["crop"] == "none" and data["caps"] == [50.0, 80.0]
    assert data["depth_dataset"].startswith("synthetic (domain=kitti_like, task=depth, count=2, seed=2024")
    assert data["semantic_dataset"].startswith("synthetic (domain=cityscapes_like, task=semantic")
    assert [row["cap"] for row in data["depth"]] == [50.0, 80.0]
    assert all(row["metrics"]["count"] == 2 for row in data["depth"])
    assert set(data["semantic"][0]["iou"]) == set(CITYSCAPES_TRAIN_ID_NAMES)
    assert (tmp_path / "report" / "evaluation.md").read_text().startswith("# Evaluation report")
    dataset = build_eval_dataset("synthetic", domain="kitti_like", count=2, seed=2024, height=16, width=48)
    estimator = load_eval_estimator(checkpoint, device="cpu")
    expected = direct_depth_metrics(estimator, dataset, 80.0, "none")
    assert data["depth"][1]["metrics"]["abs_rel"] == pytest.approx(expected["abs_rel"], rel=1e-9)


def test_cli_kitti_defaults_to_the_garg_crop(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              checkpoint: Path) -> None:
    root, split, _ = write_fake_kitti(tmp_path)
    code, out, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "kitti", "--root", str(root),
                             "--split-file", str(split), "--caps", "80", "--no-progress", "--device", "cpu",
                             "--out", str(tmp_path / "r"))
    assert code == 0, err
    data = json.loads((tmp_path / "r" / "evaluation.json").read_text())
    assert data["crop"] == "garg" and data["caps"] == [80.0] and data["method"] == "tiny (untrained)"
    assert data["depth_dataset"] == f"kitti (root={root}, split_file={split}, gt=velodyne, projection=reference)"
    assert "## Depth, cap 80 m" in out and "## Depth, cap 50 m" not in out
    assert "| Godard K+CS | 80 m | 0.124 | 1.240 | 5.393 | 0.230 | 0.052 | 0.855 | 0.946 | 0.975 |" in out
    json.loads((tmp_path / "r" / "evaluation.json").read_text(), parse_constant=reject_constant)
    # The same frames scored from an exported gt file give the same numbers.
    assert cli.main(["export-gt", "--root", str(root), "--split", str(split), "--out", str(tmp_path / "gt.npz"),
                     "--no-progress"]) == 0
    code, _, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "kitti", "--root", str(root),
                           "--split", str(split), "--gt-file", str(tmp_path / "gt.npz"), "--caps", "80",
                           "--no-progress", "--device", "cpu", "--out", str(tmp_path / "f"))
    assert code == 0, err
    from_file = json.loads((tmp_path / "f" / "evaluation.json").read_text())
    assert from_file["depth"] == data["depth"]
    gt_file = tmp_path / "gt.npz"
    assert from_file["depth_dataset"] == f"kitti (root={root}, split_file={split}, gt=velodyne, gt_file={gt_file})"
    code, _, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--dataset", "kitti", "--root", str(root),
                           "--split", "eigen_test", "--gt-file", str(tmp_path / "gt.npz"), "--no-progress")
    assert code == 1 and err == f"error: gt file {tmp_path / 'gt.npz'} holds 1 frames, the split lists 697\n"


def reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")

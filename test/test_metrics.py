"""Depth (Eigen protocol) and semantic metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.evaluation.metrics import (
    DEPTH_METRIC_KEYS,
    DepthMetricAccumulator,
    NoValidPixelsError,
    SemanticConfusion,
    compute_depth_metrics,
    crop_mask,
)


def test_every_metric_on_a_2x2_image() -> None:
    gt = np.array([[2.0, 4.0], [5.0, 10.0]])
    pred = np.array([[2.0, 5.0], [4.0, 20.0]])
    m = compute_depth_metrics(pred, gt, crop="none")
    assert tuple(m) == DEPTH_METRIC_KEYS
    assert m["abs_rel"] == pytest.approx((0 + 1 / 4 + 1 / 5 + 10 / 10) / 4)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 4 + 1 / 5 + 100 / 10) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 1 + 100) / 4))
    assert m["rmse_log"] == pytest.approx(math.sqrt((2 * math.log(1.25) ** 2 + math.log(2) ** 2) / 4))
    assert m["log10"] == pytest.approx((2 * math.log10(1.25) + math.log10(2)) / 4)
    # ratios 1, 1.25, 1.25, 2: the thresholds are strict, so 1.25 itself fails a1
    assert (m["a1"], m["a2"], m["a3"]) == (0.25, 0.75, 0.75)
    assert all(isinstance(value, float) for value in m.values())


def test_thresholds_are_powers_of_1_25_in_both_directions() -> None:
    gt = np.full((1, 4), 10.0)
    over = compute_depth_metrics(gt * np.array([[1.2, 1.5, 1.9, 2.0]]), gt, crop="none")
    under = compute_depth_metrics(gt / np.array([[1.2, 1.5, 1.9, 2.0]]), gt, crop="none")
    for m in (over, under):
        assert (m["a1"], m["a2"], m["a3"]) == (0.25, 0.5, 0.75)


def test_perfect_prediction() -> None:
    gt = np.array([[1.5, 3.0, 70.0]])
    m = compute_depth_metrics(gt.copy(), gt, crop="none")
    errors = dict.fromkeys(("abs_rel", "sq_rel", "rmse", "rmse_log", "log10"), 0.0)
    assert m == errors | dict.fromkeys(("a1", "a2", "a3"), 1.0)


def test_mask_rules_exclude_invalid_ground_truth() -> None:
    # only gt=10 (pred 12) is valid: 0, NaN, == min, == max, > max, inf and negative are all excluded
    gt = np.array([[10.0, 0.0, np.nan, 1.0, 80.0, 95.0, np.inf, -3.0]])
    pred = np.array([[12.0, 50.0, 50.0, 50.0, 50.0, 50.0, 50.0, 50.0]])
    m = compute_depth_metrics(pred, gt, min_depth=1.0, max_depth=80.0, crop="none")
    assert m["abs_rel"] == pytest.approx(0.2)
    assert m["rmse"] == pytest.approx(2.0)
    assert m["a1"] == 1.0


def test_pixels_outside_the_crop_are_ignored() -> None:
    gt = np.full((375, 1242), 10.0)
    pred = np.full((375, 1242), 10.0)
    pred[0, 0] = 40.0  # outside both crops (top rows)
    pred[200, 600] = 20.0  # inside both crops
    inside = int(crop_mask(375, 1242, "garg").sum())
    m = compute_depth_metrics(pred, gt, crop="garg")
    assert m["abs_rel"] == pytest.approx(1.0 / inside)
    assert compute_depth_metrics(pred, gt, crop="none")["abs_rel"] == pytest.approx(4.0 / (375 * 1242))


def test_predictions_are_clipped_to_the_depth_range() -> None:
    gt = np.array([[40.0, 2.0, 40.0, 2.0]])
    pred = np.array([[100.0, -5.0, np.inf, 0.0]])  # -> 80, 1, 80, 1
    m = compute_depth_metrics(pred, gt, min_depth=1.0, max_depth=80.0, crop="none")
    assert m["abs_rel"] == pytest.approx((1.0 + 0.5 + 1.0 + 0.5) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((1600 + 1 + 1600 + 1) / 4))


def test_nan_prediction_is_scored_as_the_worst_bound_in_log_space() -> None:
    # gt 10 in [1, 80]: ln(10/1) > ln(80/10) -> scored as 1 m; gt 2: ln(80/2) > ln(2/1) -> scored as 80 m
    m = compute_depth_metrics(np.array([[np.nan, np.nan]]), np.array([[10.0, 2.0]]), min_depth=1.0, crop="none")
    assert m["abs_rel"] == pytest.approx((0.9 + 39.0) / 2)
    assert (m["a1"], m["a2"], m["a3"]) == (0.0, 0.0, 0.0)


def test_no_valid_pixel_raises() -> None:
    with pytest.raises(NoValidPixelsError, match="no valid ground-truth pixel in the 'none' crop of a 1x2 image"):
        compute_depth_metrics(np.ones((1, 2)), np.zeros((1, 2)), crop="none")
    assert issubclass(NoValidPixelsError, InvalidInputError)


def test_input_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match="unknown crop 'kitti'"):
        compute_depth_metrics(np.ones((4, 4)), np.ones((4, 4)), crop="kitti")
    with pytest.raises(InvalidInputError, match=r"pred shape \(2, 2\) differs from gt shape \(2, 3\)"):
        compute_depth_metrics(np.ones((2, 2)), np.ones((2, 3)), crop="none")
    with pytest.raises(InvalidInputError, match=r"one HxW depth image, got shape \(2, 2, 2\)"):
        compute_depth_metrics(np.ones((2, 2, 2)), np.ones((2, 2, 2)), crop="none")
    with pytest.raises(ConfigError, match=r"got \[5.0, 1.0\]"):
        compute_depth_metrics(np.ones((2, 2)), np.ones((2, 2)), min_depth=5.0, max_depth=1.0, crop="none")


def test_torch_inputs_with_singleton_axes() -> None:
    gt = torch.tensor([[[[2.0, 4.0], [5.0, 10.0]]]])
    pred = torch.tensor([[[[2.0, 5.0], [4.0, 20.0]]]])
    assert compute_depth_metrics(pred, gt, crop="none")["abs_rel"] == pytest.approx(0.3625)
    half = compute_depth_metrics(pred.to(torch.bfloat16), gt.to(torch.float16), crop="none")  # autocast outputs
    assert half["abs_rel"] == pytest.approx(0.3625)


@pytest.mark.parametrize(
    ("crop", "rows", "cols"),
    [("garg", (153, 371), (44, 1197)), ("eigen", (124, 342), (44, 1197)), ("none", (0, 375), (0, 1242))],
)
def test_crop_pixel_bounds_for_kitti_size(crop: str, rows: tuple[int, int], cols: tuple[int, int]) -> None:
    mask = crop_mask(375, 1242, crop)
    expected = np.zeros((375, 1242), dtype=bool)
    expected[rows[0] : rows[1], cols[0] : cols[1]] = True
    np.testing.assert_array_equal(mask, expected)


def test_accumulator_averages_per_image_not_per_pixel() -> None:
    acc = DepthMetricAccumulator(crop="none")
    # image 1: one valid pixel, abs_rel 0.5; image 2: three valid pixels, abs_rel 0
    acc.add(np.array([[15.0, 0.0], [0.0, 0.0]]), np.array([[10.0, 0.0], [0.0, 0.0]]))
    acc.add(np.array([[3.0, 4.0], [5.0, 1.0]]), np.array([[3.0, 4.0], [5.0, 0.0]]))
    result = acc.result()
    assert result["abs_rel"] == pytest.approx(0.25)  # pixel pooling would give 0.125
    assert result["a1"] == pytest.approx(0.5)
    assert result["count"] == 2 and acc.skipped == 0


def test_accumulator_takes_batches_and_skips_images_without_ground_truth() -> None:
    acc = DepthMetricAccumulator(min_depth=1.0, max_depth=80.0, crop="none")
    gt = torch.zeros(3, 1, 2, 2)
    gt[0] = 10.0
    gt[2] = 20.0
    pred = torch.full((3, 1, 2, 2), 10.0)
    assert acc.add(pred, gt) == 2
    assert acc.count == 2 and acc.skipped == 1
    assert acc.result()["abs_rel"] == pytest.approx(0.25)  # (0 + 0.5) / 2


def test_empty_accumulator_reports_nan_and_merge_adds_images() -> None:
    empty = DepthMetricAccumulator(crop="none").result()
    assert empty["count"] == 0 and all(math.isnan(empty[key]) for key in DEPTH_METRIC_KEYS)
    a = DepthMetricAccumulator(crop="none")
    b = DepthMetricAccumulator(crop="none")
    a.add(np.array([[15.0]]), np.array([[10.0]]))
    b.add(np.array([[10.0]]), np.array([[10.0]]))
    a.merge(b)
    assert a.result()["abs_rel"] == pytest.approx(0.25) and a.count == 2
    with pytest.raises(ConfigError, match="cannot merge"):
        a.merge(DepthMetricAccumulator(crop="garg"))


def test_semantic_iou_on_a_tiny_confusion() -> None:
    conf = SemanticConfusion(num_classes=3, ignore_index=255)
    conf.add(np.array([0, 1, 1, 1, 2]), np.array([0, 0, 1, 1, 255]))  # the ignored gt pixel predicted as 2
    np.testing.assert_array_equal(conf.matrix, [[1, 1, 0], [0, 2, 0], [0, 0, 0]])
    iou = conf.iou()
    assert iou[0] == pytest.approx(1 / 2) and iou[1] == pytest.approx(2 / 3) and math.isnan(iou[2])
    assert conf.miou() == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert conf.pixel_accuracy() == pytest.approx(3 / 4)


def test_semantic_class_only_predicted_has_zero_iou_and_torch_accumulates() -> None:
    conf = SemanticConfusion(num_classes=3)
    conf.add(torch.tensor([[2, 0]]), torch.tensor([[0, 0]]))
    conf.add(torch.tensor([[1]]), torch.tensor([[1]]))
    np.testing.assert_allclose(conf.iou(), [0.5, 1.0, 0.0])
    assert conf.miou() == pytest.approx(0.5)


def test_semantic_errors_and_empty_state() -> None:
    conf = SemanticConfusion(num_classes=19)
    assert math.isnan(conf.miou()) and math.isnan(conf.pixel_accuracy())
    with pytest.raises(InvalidInputError, match=r"gt_ids contains 19, outside 0..18"):
        conf.add(np.array([0]), np.array([19]))
    with pytest.raises(InvalidInputError, match=r"pred_ids contains -1, outside 0..18"):
        conf.add(np.array([-1]), np.array([3]))
    with pytest.raises(InvalidInputError, match="must hold integer class ids"):
        conf.add(np.array([0.5]), np.array([3]))
    with pytest.raises(ConfigError, match="ignore_index 3 collides"):
        SemanticConfusion(num_classes=19, ignore_index=3)

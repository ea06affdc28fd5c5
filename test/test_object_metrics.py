"""Per-class depth abs rel and iBims-1 depth-boundary errors on hand-built depth maps with known edges and classes."""

from __future__ import annotations

import numpy as np
import pytest

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.evaluation.object_metrics import (
    BoundaryAccumulator,
    ClassDepthAccumulator,
    boundary_errors_of_edges,
    depth_boundary_errors,
    depth_edges,
)
from semantic_depth_ros.labels import CITYSCAPES_TRAIN_ID_NAMES

CAR, ROAD = CITYSCAPES_TRAIN_ID_NAMES.index("car"), CITYSCAPES_TRAIN_ID_NAMES.index("road")
H, W = 60, 80
TOP, BOTTOM, LEFT, RIGHT = 20, 40, 30, 50  # the box: rows 20..39, columns 30..49


def scene(shift: int = 0) -> np.ndarray:
    """A wall at 20 m with a box at 5 m in front of it, moved ``shift`` pixels to the right."""
    depth = np.full((H, W), 20.0, dtype=np.float32)
    depth[TOP:BOTTOM, LEFT + shift:RIGHT + shift] = 5.0
    return depth


def test_edges_of_a_box_lie_on_its_outline_only():
    edges = depth_edges(scene())
    rows, cols = np.nonzero(edges)
    assert edges.any()
    # every edge pixel is within a pixel of the box's border, none on the flat wall or the flat box face
    near_border = ((np.abs(rows - (TOP - 0.5)) <= 1) | (np.abs(rows - (BOTTOM - 0.5)) <= 1)
                   | (np.abs(cols - (LEFT - 0.5)) <= 1) | (np.abs(cols - (RIGHT - 0.5)) <= 1))
    assert near_border.all()
    assert edges[TOP:BOTTOM, LEFT - 1:LEFT + 1].any(axis=1).all()  # the left side is closed, row by row
    assert not depth_edges(np.full((H, W), 7.0)).any()  # a flat wall has none
    ramp = np.tile(np.linspace(10.0, 10.5, W), (H, 1))  # a gentle slope (0.06 % per pixel) has none either
    assert not depth_edges(ramp).any()


def test_perfect_prediction_has_zero_boundary_errors_and_a_shifted_one_its_shift():
    exact = depth_boundary_errors(scene(), scene())
    assert exact["accuracy"] == 0.0 and exact["completeness"] == 0.0 and exact["gt_edge_pixels"] > 0
    shifted = depth_boundary_errors(scene(shift=3), scene())
    # the vertical sides move 3 px; the horizontal ones slide along themselves (distance 0 except at the ends)
    assert 0.5 < shifted["accuracy"] < 3.0 and 0.5 < shifted["completeness"] < 3.0
    further = depth_boundary_errors(scene(shift=6), scene())
    assert further["accuracy"] > shifted["accuracy"] and further["completeness"] > shifted["completeness"]


def test_a_blurred_box_without_edges_is_incomplete_by_the_truncation_distance():
    flat = np.full((H, W), 12.0)
    result = depth_boundary_errors(flat, scene(), max_distance=10.0)
    assert result["pred_edge_pixels"] == 0
    assert result["completeness"] == 10.0 and result["accuracy"] == 10.0


def test_boundary_errors_of_hand_placed_edges():
    gt = np.zeros((20, 20), dtype=bool)
    gt[:, 5] = True
    pred = np.zeros_like(gt)
    pred[:, 7] = True  # 2 px off
    pred[0, 19] = True  # 14 px off: beyond the truncation, not counted in accuracy
    result = boundary_errors_of_edges(pred, gt, max_distance=10.0)
    assert result["accuracy"] == pytest.approx(2.0)
    assert result["completeness"] == pytest.approx(2.0)
    with pytest.raises(InvalidInputError, match="no edge"):
        boundary_errors_of_edges(pred, np.zeros_like(gt))


def test_boundary_accumulator_averages_images_and_skips_those_without_true_edges():
    acc = BoundaryAccumulator()
    acc.add(scene(), scene())
    acc.add(np.full((H, W), 12.0), scene())
    acc.add(scene(), np.full((H, W), 9.0))  # no true edge: skipped
    result = acc.result()
    assert result["count"] == 2 and result["skipped"] == 1
    assert result["completeness"] == pytest.approx(5.0)


def test_class_abs_rel_pools_the_pixels_of_each_true_class():
    gt = scene()
    labels = np.full((H, W), ROAD, dtype=np.uint8)
    labels[TOP:BOTTOM, LEFT:RIGHT] = CAR
    pred = gt.copy()
    pred[labels == CAR] *= 1.1  # 10 % too far on the car only
    acc = ClassDepthAccumulator(("car", "road", "pole"))
    acc.add(pred, gt, labels)
    result = acc.result()
    assert result["car"]["abs_rel"] == pytest.approx(0.1, rel=1e-6)
    assert result["car"]["pixels"] == (BOTTOM - TOP) * (RIGHT - LEFT)
    assert result["road"]["abs_rel"] == 0.0 and np.isnan(result["pole"]["abs_rel"])
    pred[labels == ROAD] = np.nan  # no prediction: the bound farthest in log (1 m for 20 m: |1 - 20| / 20 = 0.95)
    acc.add(pred, gt, labels)
    assert acc.result()["road"]["abs_rel"] == pytest.approx(0.475)  # half its pixels at 0, half at 0.95


def test_class_abs_rel_rejects_unknown_classes_and_mismatched_shapes():
    with pytest.raises(ConfigError, match="'lamp post'"):
        ClassDepthAccumulator(("car", "lamp post"))
    with pytest.raises(InvalidInputError, match="one shape"):
        ClassDepthAccumulator().add(scene(), scene(), np.zeros((H, W + 1), dtype=np.uint8))

"""Depth metrics that show objects, not only averages: abs rel per true class, and depth-boundary errors.

* **Per-class abs rel** (:class:`ClassDepthAccumulator`): ``|pred - gt| / gt`` pooled over all pixels whose TRUE
  class is one of the named classes (a class is small in most frames, so a per-image mean would be noise), with
  the Eigen protocol's validity range and clipping (:mod:`.metrics`: ``min_depth < gt < max_depth``, predictions
  clipped, a NaN prediction scored as the farthest bound).
* **Depth-boundary errors** (:func:`depth_boundary_errors`), after the iBims-1 benchmark (Koch et al. 2018): edges
  of the true and of the predicted depth are found by one detector (:func:`depth_edges`: Canny on log depth, so
  a threshold is a depth *ratio* and means the same near and far); then, in pixels,
  **accuracy** = mean distance of the predicted edge pixels within ``max_distance`` of a true edge to the nearest
  true edge (are the edges where they should be?), and **completeness** = mean distance of the true edge pixels
  to the nearest predicted edge, truncated at ``max_distance`` (are all true edges there? a blurred object
  without edges scores ``max_distance``). Lower is better for both; 0 is perfect.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.evaluation.metrics import _as_image, _check_range, _to_numpy, clip_prediction
from semantic_depth_ros.labels import CITYSCAPES_TRAIN_ID_NAMES

OBJECT_CLASSES: tuple[str, ...] = ("car", "vegetation", "pole", "building", "road")
"""Classes whose depth abs rel the demo reports."""

EDGE_LOW, EDGE_HIGH = 0.04, 0.08
"""Canny hysteresis thresholds of :func:`depth_edges` on the Sobel gradient of ln(depth) normalised to a per-pixel
difference: an edge starts where ln(depth) jumps by about 0.08 (8 %) between neighbours and continues down to 0.04."""
BOUNDARY_MAX_DISTANCE = 10.0
"""Pixels: iBims-1's truncation distance of the boundary errors."""
_GRADIENT_SCALE = 1000.0  # ln-depth units -> int16 for cv2.Canny's derivative input


def depth_edges(depth: Any, *, min_depth: float = 1.0, max_depth: float = 80.0, low: float = EDGE_LOW,
                high: float = EDGE_HIGH) -> np.ndarray:
    """HxW bool: the depth edges of one depth image (metres, HxW; NaN, 0 or beyond ``max_depth`` = far, i.e.
    ``max_depth``, so the skyline is an edge), by Canny on ln(depth clipped to [min_depth, max_depth]) with
    hysteresis thresholds ``low`` < ``high`` in ln-depth per pixel (one-pixel-wide, non-maximum-suppressed)."""
    image = _as_image(depth, "depth")
    _check_range(min_depth, max_depth)
    if not 0.0 < low < high:
        raise ConfigError(f"edge thresholds must satisfy 0 < low < high, got low {low}, high {high}")
    with np.errstate(invalid="ignore"):
        filled = np.where(np.isfinite(image) & (image > 0), image, max_depth)
    log_depth = np.log(np.clip(filled, min_depth, max_depth)).astype(np.float32)
    # Sobel's 3x3 response to a one-pixel step is 4x the step: /4 makes a threshold a per-pixel ln-depth jump
    scale = _GRADIENT_SCALE / 4.0
    dx = np.round(cv2.Sobel(log_depth, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) * scale)
    dy = np.round(cv2.Sobel(log_depth, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) * scale)
    limit = np.iinfo(np.int16).max
    dx16 = np.clip(dx, -limit, limit).astype(np.int16)
    dy16 = np.clip(dy, -limit, limit).astype(np.int16)
    edges = cv2.Canny(dx16, dy16, low * _GRADIENT_SCALE, high * _GRADIENT_SCALE, L2gradient=True)
    return edges > 0


def _distance_to(edges: np.ndarray) -> np.ndarray:
    """HxW float32: Euclidean distance in pixels from every pixel to the nearest ``True`` of ``edges`` (inf if none)."""
    if not edges.any():
        return np.full(edges.shape, np.inf, dtype=np.float32)
    return cv2.distanceTransform((~edges).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def boundary_errors_of_edges(pred_edges: np.ndarray, gt_edges: np.ndarray, *,
                             max_distance: float = BOUNDARY_MAX_DISTANCE) -> dict[str, float]:
    """iBims-1 accuracy and completeness (pixels) of predicted edges against true edges (HxW bool each).

    ``accuracy``: mean over predicted edge pixels within ``max_distance`` of a true edge of that distance
    (``max_distance`` when there is none); ``completeness``: mean over true edge pixels of the distance to the
    nearest predicted edge, truncated at ``max_distance``. ``gt_edge_pixels`` and ``pred_edge_pixels`` are the counts.
    Raises InvalidInputError when the shapes differ or there is no true edge (nothing to be complete about).
    """
    if pred_edges.shape != gt_edges.shape:
        raise InvalidInputError(f"predicted edges shape {pred_edges.shape} differs from true edges {gt_edges.shape}")
    if not gt_edges.any():
        raise InvalidInputError("the true depth has no edge: boundary errors are undefined")
    to_gt = _distance_to(gt_edges)
    near = pred_edges & (to_gt < max_distance)
    accuracy = float(to_gt[near].mean()) if near.any() else float(max_distance)
    to_pred = np.minimum(_distance_to(pred_edges), max_distance)
    completeness = float(to_pred[gt_edges].mean())
    return {"accuracy": accuracy, "completeness": completeness, "gt_edge_pixels": int(gt_edges.sum()),
            "pred_edge_pixels": int(pred_edges.sum())}


def depth_boundary_errors(pred: Any, gt: Any, *, min_depth: float = 1.0, max_depth: float = 80.0,
                          max_distance: float = BOUNDARY_MAX_DISTANCE) -> dict[str, float]:
    """iBims-1 depth-boundary errors (pixels) of one predicted depth image against the true one (metres, HxW):
    both edge maps by :func:`depth_edges`, then :func:`boundary_errors_of_edges`."""
    pred_image, gt_image = _as_image(pred, "pred"), _as_image(gt, "gt")
    if pred_image.shape != gt_image.shape:
        raise InvalidInputError(f"pred shape {pred_image.shape} differs from gt shape {gt_image.shape}")
    edges = [depth_edges(image, min_depth=min_depth, max_depth=max_depth) for image in (pred_image, gt_image)]
    return boundary_errors_of_edges(*edges, max_distance=max_distance)


class BoundaryAccumulator:
    """Mean over images of :func:`depth_boundary_errors`; images whose true depth has no edge are skipped."""

    def __init__(self, *, min_depth: float = 1.0, max_depth: float = 80.0,
                 max_distance: float = BOUNDARY_MAX_DISTANCE) -> None:
        _check_range(min_depth, max_depth)
        self.options = {"min_depth": min_depth, "max_depth": max_depth, "max_distance": max_distance}
        self.values: list[dict[str, float]] = []
        self.skipped = 0

    def add(self, pred: Any, gt: Any) -> None:
        try:
            self.values.append(depth_boundary_errors(pred, gt, **self.options))
        except InvalidInputError as exc:
            if "no edge" not in str(exc):
                raise
            self.skipped += 1

    def result(self) -> dict[str, float]:
        """``{accuracy, completeness}`` (pixels, NaN without images), ``count`` and ``skipped`` images."""
        mean = {key: float(np.mean([v[key] for v in self.values])) if self.values else float("nan")
                for key in ("accuracy", "completeness")}
        return {**mean, "max_distance": float(self.options["max_distance"]), "count": len(self.values),
                "skipped": self.skipped}


class ClassDepthAccumulator:
    """Depth abs rel pooled over the pixels of each named TRUE class, over any number of images."""

    def __init__(self, classes: Sequence[str] = OBJECT_CLASSES, *, min_depth: float = 1.0,
                 max_depth: float = 80.0) -> None:
        _check_range(min_depth, max_depth)
        unknown = [name for name in classes if name not in CITYSCAPES_TRAIN_ID_NAMES]
        if unknown:
            raise ConfigError(f"unknown class {unknown[0]!r} (expected Cityscapes train id names)")
        self.ids = {name: CITYSCAPES_TRAIN_ID_NAMES.index(name) for name in classes}
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self.sums = dict.fromkeys(self.ids, 0.0)
        self.pixels = dict.fromkeys(self.ids, 0)

    def add(self, pred: Any, gt: Any, labels: Any) -> None:
        """One image: predicted and true depth (metres, HxW) and the TRUE train ids (HxW integers)."""
        pred_image, gt_image = _as_image(pred, "pred"), _as_image(gt, "gt")
        label_image = _to_numpy(labels, "labels")
        if not pred_image.shape == gt_image.shape == label_image.shape:
            raise InvalidInputError(f"pred {pred_image.shape}, gt {gt_image.shape} and labels "
                                    f"{label_image.shape} must have one shape")
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(gt_image) & (gt_image > self.min_depth) & (gt_image < self.max_depth)
        for name, class_id in self.ids.items():
            mask = valid & (label_image == class_id)
            target = gt_image[mask]
            estimate = clip_prediction(pred_image[mask], target, self.min_depth, self.max_depth)
            self.sums[name] += float((np.abs(estimate - target) / target).sum())
            self.pixels[name] += int(mask.sum())

    def result(self) -> dict[str, dict[str, float]]:
        """``{class: {abs_rel (NaN without pixels), pixels}}``."""
        return {name: {"abs_rel": self.sums[name] / self.pixels[name] if self.pixels[name] else float("nan"),
                       "pixels": self.pixels[name]} for name in self.ids}

"""The one implementation of the evaluation metrics (KITTI Eigen depth protocol, semantic IoU).

Training-time validation and ``semantic-depth evaluate`` both call this module, so their numbers agree.

Depth protocol for ONE image (``compute_depth_metrics``), as in Eigen et al. 2014 and monodepth2:

* valid pixels: ``gt`` finite and ``min_depth < gt < max_depth``, inside the crop (``garg``, ``eigen`` or ``none``);
* predictions are clipped to ``[min_depth, max_depth]`` (``+inf`` becomes ``max_depth``, ``-inf`` and values
  below ``min_depth`` become ``min_depth``);
* a NaN prediction on a valid pixel (the estimator's "no depth here") is scored as the clip bound farthest from
  ``gt`` in log space, the worst answer the clipped range allows. Leaving such pixels out would reward a model
  for refusing the hard pixels; with ``max_depth / min_depth > 1.25**6`` the pixel always fails ``a1..a3``;
* an image without any valid pixel has no metrics: ``compute_depth_metrics`` raises ``NoValidPixelsError`` (an
  ``InvalidInputError``), and
  ``DepthMetricAccumulator.add`` skips it and counts it in ``skipped``.

A dataset's metrics are the mean over images of the per-image metrics (the published protocol).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semantic_depth_ros.errors import ConfigError, InvalidInputError

DEPTH_METRIC_KEYS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "a1", "a2", "a3")
"""Keys of the dict returned by ``compute_depth_metrics``, in the order of the paper's tables."""

DELTA_THRESHOLD = 1.25
"""Base of the accuracy thresholds: a1, a2, a3 count pixels with max(pred/gt, gt/pred) < 1.25, 1.25**2, 1.25**3."""

CROP_FRACTIONS: dict[str, tuple[float, float, float, float]] = {
    "garg": (0.40810811, 0.99189189, 0.03594771, 0.96405229),
    "eigen": (0.3324324, 0.91351351, 0.0359477, 0.96405229),
}
"""(top, bottom, left, right) as fractions of the image height/width; bounds are ``int()`` of the products."""

CROPS: tuple[str, ...] = ("garg", "eigen", "none")


class NoValidPixelsError(InvalidInputError):
    """An image has no ground-truth pixel inside the crop and the depth range, so it has no metrics."""


def _to_numpy(array: Any, name: str) -> np.ndarray:
    """Return ``array`` (numpy array, torch tensor or nested sequence) as a numpy array on the CPU."""
    if hasattr(array, "detach") and hasattr(array, "cpu"):  # torch.Tensor, without importing torch here
        array = array.detach().cpu()
        if array.is_floating_point():  # bfloat16/float16 from autocast: numpy has no bfloat16
            array = array.double()
        array = array.numpy()
    try:
        return np.asarray(array)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} cannot be read as an array: {exc}") from exc


def _as_image(array: Any, name: str) -> np.ndarray:
    """Return a single depth image as float64 HxW; leading singleton axes (1xHxW, 1x1xHxW) are dropped."""
    image = _to_numpy(array, name)
    while image.ndim > 2 and image.shape[0] == 1:
        image = image[0]
    if image.ndim != 2 or image.size == 0:
        raise InvalidInputError(f"{name} must be one HxW depth image, got shape {tuple(image.shape)}")
    if not np.issubdtype(image.dtype, np.number) or np.iscomplexobj(image):
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {image.dtype}")
    return image.astype(np.float64, copy=False)


def crop_mask(height: int, width: int, crop: str) -> np.ndarray:
    """Boolean HxW mask of the evaluation crop: ``garg``, ``eigen`` (KITTI fractions, ``int()`` bounds) or ``none``."""
    if height <= 0 or width <= 0:
        raise InvalidInputError(f"crop size must be positive, got {height}x{width}")
    _check_crop(crop)
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
        return mask
    top, bottom, left, right = CROP_FRACTIONS[crop]
    bounds = np.array([top * height, bottom * height, left * width, right * width]).astype(np.int32)
    mask[bounds[0] : bounds[1], bounds[2] : bounds[3]] = True
    return mask


def _check_crop(crop: str) -> None:
    """Reject crop names other than ``CROPS`` (ConfigError naming the value)."""
    if crop not in CROPS:
        raise ConfigError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")


def _check_range(min_depth: float, max_depth: float) -> None:
    """Reject depth ranges that cannot define valid pixels (ConfigError naming the values)."""
    if not (np.isfinite(min_depth) and np.isfinite(max_depth) and 0.0 < min_depth < max_depth):
        raise ConfigError(f"depth range must satisfy 0 < min_depth < max_depth, got [{min_depth}, {max_depth}]")


def compute_depth_metrics(
    pred: Any,
    gt: Any,
    *,
    min_depth: float = 1e-3,
    max_depth: float = 80.0,
    crop: str = "garg",
) -> dict[str, float]:
    """Eigen depth metrics of one image.

    Args:
        pred: predicted depth, metres, HxW (numpy or torch; leading singleton axes allowed); NaN = no prediction.
        gt: ground-truth depth, metres, same shape; 0, NaN or out-of-range values are not evaluated.
        min_depth, max_depth: metres; valid pixels have ``min_depth < gt < max_depth``; ``pred`` is clipped to them.
        crop: ``garg``, ``eigen`` or ``none``.

    Returns:
        ``{abs_rel, sq_rel, rmse (m), rmse_log, log10, a1, a2, a3}`` as Python floats.

    Raises:
        InvalidInputError: shapes differ; NoValidPixelsError (an InvalidInputError): no pixel is valid.
        ConfigError: unknown crop or a depth range without 0 < min_depth < max_depth.
    """
    pred_image = _as_image(pred, "pred")
    gt_image = _as_image(gt, "gt")
    if pred_image.shape != gt_image.shape:
        raise InvalidInputError(f"pred shape {pred_image.shape} differs from gt shape {gt_image.shape}")
    _check_range(min_depth, max_depth)
    region = crop_mask(gt_image.shape[0], gt_image.shape[1], crop)
    with np.errstate(invalid="ignore"):
        valid = region & np.isfinite(gt_image) & (gt_image > min_depth) & (gt_image < max_depth)
    if not valid.any():
        raise NoValidPixelsError(
            f"no valid ground-truth pixel in the {crop!r} crop of a {gt_image.shape[0]}x{gt_image.shape[1]} image "
            f"with {min_depth} < gt < {max_depth}"
        )
    target = gt_image[valid]
    return _metrics_of_valid(clip_prediction(pred_image[valid], target, min_depth, max_depth), target)


def clip_prediction(pred: np.ndarray, gt: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """Predictions (1-D, metres) of valid ground-truth pixels ``gt`` as the protocol scores them: clipped to
    ``[min_depth, max_depth]``, a NaN replaced by the bound farthest from ``gt`` in log space."""
    estimate = np.clip(pred, min_depth, max_depth)
    missing = np.isnan(estimate)
    if missing.any():
        worst_is_max = np.log(max_depth / gt[missing]) >= np.log(gt[missing] / min_depth)
        estimate[missing] = np.where(worst_is_max, max_depth, min_depth)
    return estimate


def _metrics_of_valid(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Metrics of 1-D arrays of clipped predictions and valid ground truth (metres, all > 0)."""
    ratio = np.maximum(gt / pred, pred / gt)
    diff = gt - pred
    log_diff = np.log(gt) - np.log(pred)
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean(log_diff**2))),
        "log10": float(np.mean(np.abs(np.log10(gt) - np.log10(pred)))),
        "a1": float(np.mean(ratio < DELTA_THRESHOLD)),
        "a2": float(np.mean(ratio < DELTA_THRESHOLD**2)),
        "a3": float(np.mean(ratio < DELTA_THRESHOLD**3)),
    }


class DepthMetricAccumulator:
    """Mean of per-image depth metrics over a dataset (the published protocol: every image weighs the same).

    ``add`` takes one image (HxW, 1xHxW) or a batch (BxHxW, Bx1xHxW); images without a valid pixel are
    skipped and counted in ``skipped``. ``result()`` returns the eight metric means plus ``count`` (images used).
    """

    def __init__(self, *, min_depth: float = 1e-3, max_depth: float = 80.0, crop: str = "garg") -> None:
        _check_range(min_depth, max_depth)
        _check_crop(crop)
        self.min_depth = float(min_depth)
        self.max_depth = float(max_depth)
        self.crop = crop
        self._sums = np.zeros(len(DEPTH_METRIC_KEYS), dtype=np.float64)
        self.count = 0
        self.skipped = 0

    def add(self, pred: Any, gt: Any) -> int:
        """Add one image or a batch of images (metres); returns how many images were used (not skipped)."""
        pred_array = _to_numpy(pred, "pred")
        gt_array = _to_numpy(gt, "gt")
        if pred_array.shape != gt_array.shape:
            raise InvalidInputError(f"pred shape {pred_array.shape} differs from gt shape {gt_array.shape}")
        if gt_array.ndim == 4 and gt_array.shape[1] == 1:
            pred_array, gt_array = pred_array[:, 0], gt_array[:, 0]
        if gt_array.ndim == 2:
            pred_array, gt_array = pred_array[None], gt_array[None]
        if gt_array.ndim != 3:
            raise InvalidInputError(f"depth must be HxW, BxHxW or Bx1xHxW, got shape {tuple(gt_array.shape)}")
        used = 0
        for pred_image, gt_image in zip(pred_array, gt_array):
            try:
                metrics = compute_depth_metrics(
                    pred_image, gt_image, min_depth=self.min_depth, max_depth=self.max_depth, crop=self.crop
                )
            except NoValidPixelsError:
                self.skipped += 1
                continue
            self._sums += np.array([metrics[key] for key in DEPTH_METRIC_KEYS])
            self.count += 1
            used += 1
        return used

    def merge(self, other: DepthMetricAccumulator) -> None:
        """Add another accumulator's images (e.g. gathered from other ranks) with the same protocol."""
        if (other.min_depth, other.max_depth, other.crop) != (self.min_depth, self.max_depth, self.crop):
            raise ConfigError(
                f"cannot merge depth metrics of protocol ({other.min_depth}, {other.max_depth}, {other.crop!r}) "
                f"into ({self.min_depth}, {self.max_depth}, {self.crop!r})"
            )
        self._sums += other._sums
        self.count += other.count
        self.skipped += other.skipped

    def result(self) -> dict[str, float]:
        """Per-image means of ``DEPTH_METRIC_KEYS`` plus ``count``; metrics are NaN when no image was used."""
        means = self._sums / self.count if self.count else np.full(len(DEPTH_METRIC_KEYS), np.nan)
        result: dict[str, float] = {key: float(value) for key, value in zip(DEPTH_METRIC_KEYS, means)}
        result["count"] = self.count
        return result


class SemanticConfusion:
    """Confusion matrix of semantic labels (rows: ground truth, columns: prediction), with IoU and accuracy.

    Ground-truth pixels equal to ``ignore_index`` are not counted. Any other label outside ``0..num_classes-1``
    in either input raises ``InvalidInputError``.
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = 255) -> None:
        if num_classes <= 0:
            raise ConfigError(f"num_classes must be positive, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ConfigError(f"ignore_index {ignore_index} collides with a class id (num_classes={num_classes})")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def add(self, pred_ids: Any, gt_ids: Any) -> None:
        """Count predicted vs ground-truth train ids of any equal shape (HxW, BxHxW; numpy or torch integers)."""
        pred = _to_numpy(pred_ids, "pred_ids")
        gt = _to_numpy(gt_ids, "gt_ids")
        if pred.shape != gt.shape:
            raise InvalidInputError(f"pred_ids shape {pred.shape} differs from gt_ids shape {gt.shape}")
        for name, ids in (("pred_ids", pred), ("gt_ids", gt)):
            if not np.issubdtype(ids.dtype, np.integer):
                raise InvalidInputError(f"{name} must hold integer class ids, got dtype {ids.dtype}")
        keep = gt != self.ignore_index
        gt_kept = gt[keep].astype(np.int64)
        pred_kept = pred[keep].astype(np.int64)
        for name, ids in (("gt_ids", gt_kept), ("pred_ids", pred_kept)):
            if ids.size and (ids.min() < 0 or ids.max() >= self.num_classes):
                bad = ids[(ids < 0) | (ids >= self.num_classes)][0]
                raise InvalidInputError(f"{name} contains {bad}, outside 0..{self.num_classes - 1}")
        counts = np.bincount(gt_kept * self.num_classes + pred_kept, minlength=self.num_classes**2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)

    def merge(self, other: SemanticConfusion) -> None:
        """Add another confusion matrix of the same number of classes (e.g. from other ranks)."""
        if other.matrix.shape != self.matrix.shape:
            raise ConfigError(f"cannot merge a {other.num_classes}-class confusion into a {self.num_classes}-class one")
        self.matrix += other.matrix

    def iou(self) -> np.ndarray:
        """Per-class IoU, float64 (num_classes,); NaN for classes absent from both ground truth and prediction."""
        true_positive = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - true_positive
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, true_positive / union, np.nan)

    def miou(self) -> float:
        """Mean IoU over the classes that occur (NaN entries ignored); NaN when nothing was counted."""
        values = self.iou()
        present = values[~np.isnan(values)]
        return float(present.mean()) if present.size else float("nan")

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels whose prediction equals the ground truth; NaN when nothing was counted."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else float("nan")

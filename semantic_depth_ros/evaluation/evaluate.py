"""Dataset evaluation of a depth estimator: KITTI Eigen protocol depth metrics and semantic mIoU.

Every number comes from :mod:`semantic_depth_ros.evaluation.metrics` (the one metrics module, shared with
training-time validation):

* depth: for each cap, one :class:`DepthMetricAccumulator` with ``min_depth < gt < cap`` inside the crop; the
  dataset's metrics are the mean of the per-image metrics (the published protocol). Predictions are used as
  metric depth, **without median scaling**: our model predicts metres (canonical-camera rule), so each image is
  run with its own camera's intrinsics and the result is compared to the ground truth as is;
* semantic: one :class:`SemanticConfusion` over all pixels of all images (255 = ignore), giving per-class IoU,
  mIoU and pixel accuracy.

The estimator sees exactly what a camera would give it: the sample's image converted back to uint8 HxWx3 RGB at
its stored resolution, with the sample's ``fx`` (outputs at input resolution).
"""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from semantic_depth_ros.data.cityscapes import CityscapesDataset
from semantic_depth_ros.data.extracted import ExtractedDepthDataset
from semantic_depth_ros.data.kitti import KittiDepthDataset
from semantic_depth_ros.data.kitti_split import resolve_split_file
from semantic_depth_ros.data.synthetic import SyntheticDataset, domain_intrinsics
from semantic_depth_ros.errors import ConfigError, DatasetError, InvalidInputError
from semantic_depth_ros.evaluation.metrics import CROPS, DepthMetricAccumulator, SemanticConfusion
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.labels import CITYSCAPES_TRAIN_ID_NAMES
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.roadscale import RoadScale

DEFAULT_CAPS: tuple[float, ...] = (50.0, 80.0)
"""Caps of the paper's Table I, metres: evaluated ranges are [min_depth, cap]."""

DEFAULT_SYNTHETIC_COUNT = 20
SYNTHETIC_DOMAINS: dict[str, str] = {"depth": "kitti_like", "semantic": "cityscapes_like"}
"""Default generated domain per task: the paper's setting, depth labels from KITTI, semantics from Cityscapes."""

DEPTH_DATASET_KINDS: tuple[str, ...] = ("kitti", "extracted", "synthetic")
SEMANTIC_DATASET_KINDS: tuple[str, ...] = ("cityscapes", "synthetic")
DATASET_KINDS: tuple[str, ...] = ("kitti", "extracted", "synthetic", "cityscapes")

EVAL_MIN_DEPTH = 1e-3
EVAL_MAX_DEPTH = 1e4
"""Metres: validity range given to the estimator by :func:`load_eval_estimator`, wide enough that it never turns a
prediction into NaN; the metrics then clip predictions to ``[min_depth, cap]`` as the protocol says."""


class EstimatorLike(Protocol):
    """What the evaluation needs of an estimator (``inference.estimator.DepthEstimator`` or a test stub)."""

    def estimate(
        self,
        image: np.ndarray,
        *,
        intrinsics: Intrinsics | None = None,
        output_resolution: str = "input",
        outputs: Collection[str] = ("depth", "semantic", "confidence"),
    ) -> Any: ...


def load_eval_estimator(
    checkpoint: str | os.PathLike[str], *, device: str = "auto", precision: str = "fp32"
) -> DepthEstimator:
    """A ``DepthEstimator`` for evaluation: no sky masking and a validity range (``EVAL_MIN_DEPTH``..
    ``EVAL_MAX_DEPTH`` m) that keeps every finite prediction, so the protocol's clipping, not the estimator's
    NaN, decides how an out-of-range prediction is scored. Raises CheckpointError / ConfigError."""
    return DepthEstimator(
        Path(checkpoint),
        device=device,
        precision=precision,
        mask_sky=False,
        min_depth=EVAL_MIN_DEPTH,
        max_depth=EVAL_MAX_DEPTH,
    )


def sample_image_to_uint8(image: Any) -> np.ndarray:
    """A sample's image (float 3xHxW in [0, 1], torch or numpy) as uint8 HxWx3 RGB (round to nearest)."""
    tensor = torch.as_tensor(image).detach().cpu()
    if tensor.ndim != 3 or tensor.shape[0] != 3 or tensor.shape[1] < 1 or tensor.shape[2] < 1:
        raise InvalidInputError(f"sample image must be 3xHxW, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise InvalidInputError(f"sample image must be float in [0, 1], got dtype {tensor.dtype}")
    scaled = tensor.float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(1, 2, 0).numpy())


def sample_intrinsics(sample: Mapping[str, Any], width: int, height: int) -> Intrinsics:
    """The sample's camera at ``width`` x ``height`` px: its ``fx``; ``fy``, ``cx``, ``cy`` when it has them, else
    ``fy = fx`` and the principal point at the image centre ((w - 1) / 2, (h - 1) / 2). Only ``fx`` changes the
    predicted depth (canonical-camera rule)."""
    if "fx" not in sample:
        raise DatasetError("sample has no 'fx' (focal length in pixels); every dataset sample must carry one")
    fx = float(sample["fx"])
    return Intrinsics(
        fx=fx,
        fy=float(sample.get("fy", fx)),
        cx=float(sample.get("cx", (width - 1) / 2.0)),
        cy=float(sample.get("cy", (height - 1) / 2.0)),
        width=width,
        height=height,
    )


def _output(outputs: Any, name: str) -> np.ndarray:
    """Output ``name`` of an ``EstimatorOutputs`` as a numpy array on the CPU (InvalidInputError if missing)."""
    value = getattr(outputs, name, None)
    if value is None:
        raise InvalidInputError(f"estimator returned no {name!r} output")
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        value = value.float() if value.is_floating_point() else value
        return value.numpy()
    return np.asarray(value)


def _run(estimator: EstimatorLike, sample: Mapping[str, Any], output: str,
         also: tuple[str, ...] = ()) -> tuple[np.ndarray, Any]:
    """Run the estimator on one sample at input resolution (``output`` and the outputs ``also`` needed);
    returns (``output`` as an HxW numpy prediction, the output object)."""
    if "image" not in sample:
        raise DatasetError("sample has no 'image'")
    image = sample_image_to_uint8(sample["image"])
    height, width = image.shape[:2]
    outputs = estimator.estimate(
        image, camera=sample_intrinsics(sample, width, height), output_resolution="input",
        outputs=(output, *also),
    )
    prediction = _output(outputs, output)
    if prediction.shape != (height, width):
        raise InvalidInputError(
            f"estimator {output} output is {tuple(prediction.shape)}, expected the input size {(height, width)}"
        )
    return prediction, outputs


def _label_image(value: Any, shape: tuple[int, ...], name: str) -> torch.Tensor:
    """A sample's ground truth (HxW or 1xHxW) as an HxW CPU tensor of the image's ``shape`` (DatasetError if not)."""
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.ndim == 3 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tuple(tensor.shape) != tuple(shape):
        raise DatasetError(f"{name} has shape {tuple(tensor.shape)}, expected the image size {tuple(shape)}")
    return tensor


def _sample_count(dataset: Dataset, limit: int | None) -> int:
    """Number of samples to evaluate: ``len(dataset)``, at most ``limit`` (a positive integer)."""
    total = len(dataset)  # type: ignore[arg-type]
    if total == 0:
        raise DatasetError("evaluation dataset has no samples")
    if limit is None:
        return total
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"limit must be a positive integer, got {limit!r}")
    return min(total, limit)


def check_caps(caps: Iterable[float], min_depth: float) -> list[float]:
    """Caps as distinct floats, each above ``min_depth`` (ConfigError naming the offending value)."""
    values = [float(cap) for cap in caps]
    if not values:
        raise ConfigError("at least one depth cap is needed")
    if not (math.isfinite(min_depth) and min_depth > 0):
        raise ConfigError(f"min_depth must be a positive number of metres, got {min_depth}")
    for cap in values:
        if not (math.isfinite(cap) and cap > min_depth):
            raise ConfigError(f"depth cap {cap:g} must be finite and larger than min_depth {min_depth:g}")
    if len(set(values)) != len(values):
        raise ConfigError(f"depth caps must be distinct, got {values}")
    return values


def evaluate_depth(
    estimator: EstimatorLike,
    dataset: Dataset,
    *,
    caps: Sequence[float] = DEFAULT_CAPS,
    min_depth: float = 1.0,
    crop: str = "garg",
    limit: int | None = None,
    progress: bool = True,
    road_scale: RoadScale | None = None,
) -> dict[float, dict[str, float]]:
    """Eigen depth metrics of ``estimator`` on a depth dataset, one result per cap.

    Each sample (``image`` 3xHxW in [0, 1], ``depth`` 1xHxW metres with 0 = invalid, ``fx`` px) is run at its own
    resolution with its own camera; the prediction (metres, NaN = no depth) is scored as is, with no median
    scaling, since the model is metric. For each cap, pixels with ``min_depth < gt < cap`` inside ``crop`` count
    and predictions are clipped to ``[min_depth, cap]``; images without such a pixel are skipped.
    With ``road_scale`` each prediction is first multiplied by the scale ``road_scale.update`` returns for it
    (scale from the road, from the sample's depth, semantic output and intrinsics; the samples in dataset order
    are its stream, so its ``scale_window`` decides whether frames are smoothed together); its counts are read
    from the object afterwards.

    Returns:
        ``{cap (m): {abs_rel, sq_rel, rmse, rmse_log, log10, a1, a2, a3, count, skipped}}``: per-image means,
        ``count`` images used and ``skipped`` images without a valid pixel at that cap.
    """
    cap_values = check_caps(caps, min_depth)
    accumulators = {cap: DepthMetricAccumulator(min_depth=min_depth, max_depth=cap, crop=crop) for cap in cap_values}
    count = _sample_count(dataset, limit)
    for index in tqdm(range(count), desc="depth", unit="img", disable=not progress):
        sample = dataset[index]
        if "depth" not in sample:
            raise DatasetError(f"sample {index} has no 'depth': a depth dataset is needed for depth evaluation")
        if road_scale is None:
            prediction, _ = _run(estimator, sample, "depth")
        else:
            prediction, outputs = _run(estimator, sample, "depth", also=("semantic",))
            semantic = torch.as_tensor(_output(outputs, "semantic"))
            prediction = prediction * road_scale.update(torch.from_numpy(prediction), semantic, outputs.intrinsics)
        gt = _label_image(sample["depth"], prediction.shape, f"sample {index} depth").float().numpy()
        for accumulator in accumulators.values():
            accumulator.add(prediction, gt)
    results: dict[float, dict[str, float]] = {}
    for cap, accumulator in accumulators.items():
        results[cap] = accumulator.result()
        results[cap]["skipped"] = accumulator.skipped
    return results


def evaluate_semantic(
    estimator: EstimatorLike,
    dataset: Dataset,
    *,
    limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Semantic segmentation quality of ``estimator`` on a dataset with ``semantic`` labels (HxW train ids,
    255 = ignore), over the 19 Cityscapes train ids.

    Returns:
        ``{"miou": float, "pixel_accuracy": float, "iou": {class name: IoU or NaN if absent}, "count": images}``.
    """
    confusion = SemanticConfusion(num_classes=len(CITYSCAPES_TRAIN_ID_NAMES))
    count = _sample_count(dataset, limit)
    for index in tqdm(range(count), desc="semantic", unit="img", disable=not progress):
        sample = dataset[index]
        if "semantic" not in sample:
            raise DatasetError(f"sample {index} has no 'semantic': a semantic dataset is needed for mIoU")
        prediction, _ = _run(estimator, sample, "semantic")
        labels = _label_image(sample["semantic"], prediction.shape, f"sample {index} semantic")
        confusion.add(prediction, labels.numpy())
    iou = confusion.iou()
    return {
        "miou": confusion.miou(),
        "pixel_accuracy": confusion.pixel_accuracy(),
        "iou": {name: float(value) for name, value in zip(CITYSCAPES_TRAIN_ID_NAMES, iou)},
        "count": count,
    }


_DATASET_OPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (required options, optional options)
    "kitti": (("root", "split_file"), ("gt", "projection", "gt_file", "annotated_root")),
    "extracted": (("root",), ()),
    "synthetic": (("domain",), ("task", "count", "seed", "height", "width")),
    "cityscapes": (("root",), ("split",)),
}


def _check_options(kind: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without None values, after checking the kind, missing and unknown names (ConfigError)."""
    if kind not in _DATASET_OPTIONS:
        raise ConfigError(f"unknown evaluation dataset {kind!r}; expected one of {', '.join(DATASET_KINDS)}")
    required, optional = _DATASET_OPTIONS[kind]
    given = {key: value for key, value in options.items() if value is not None}
    unknown = sorted(set(given) - set(required) - set(optional))
    if unknown:
        raise ConfigError(f"{kind} dataset does not take option(s) {', '.join(unknown)}")
    missing = [key for key in required if key not in given]
    if missing:
        raise ConfigError(f"{kind} dataset needs option(s) {', '.join(missing)}")
    return given


def _existing(path: Any, what: str, *, folder: bool) -> Path:
    """``path`` as a Path that exists (a folder or a file); DatasetError naming it otherwise."""
    result = Path(path)
    if not (result.is_dir() if folder else result.is_file()):
        raise DatasetError(f"{what} {'folder' if folder else 'file'} not found: {result}")
    return result


def build_eval_dataset(kind: str, **options: Any) -> Dataset:
    """The evaluation dataset ``kind`` built from its options (None values are ignored).

    * ``kitti``: ``root`` (KITTI raw), ``split_file`` (a path or an installed split's name, e.g. ``eigen_test``),
      ``gt`` ``velodyne`` (default) or ``annotated``, ``projection`` of the Velodyne points ``reference`` (default:
      the published Eigen-split procedure, so numbers compare with the literature) or ``geometric`` (our
      training targets), ``gt_file`` (the maps written by ``semantic-depth export-gt``, instead of projecting),
      ``annotated_root`` (depth-completion maps; default ``root``);
    * ``extracted``: ``root`` (a folder written by ``semantic-depth extract``);
    * ``synthetic``: ``domain`` (``kitti_like``, ``cityscapes_like``), ``task`` ``depth`` (default) or
      ``semantic``, ``count`` (default 20), ``seed`` (default 0), ``height``, ``width`` (px; the domain's native
      size when both are omitted, its aspect ratio when one is);
    * ``cityscapes``: ``root``, ``split`` (default ``val``).

    Raises ConfigError (unknown kind or option, missing option) or DatasetError (missing path, bad files).
    """
    given = _check_options(kind, options)
    if kind == "kitti":
        root = _existing(given["root"], "KITTI root", folder=True)
        split_file = resolve_split_file(given["split_file"])
        annotated_root = given.get("annotated_root")
        if annotated_root is not None:
            annotated_root = _existing(annotated_root, "KITTI annotated depth", folder=True)
        gt_file = given.get("gt_file")
        if gt_file is not None:
            gt_file = _existing(gt_file, "ground-truth", folder=False)
        return KittiDepthDataset(root, split_file, gt=given.get("gt", "velodyne"),
                                 projection=given.get("projection", "reference"), gt_file=gt_file,
                                 annotated_root=annotated_root)
    if kind == "extracted":
        return ExtractedDepthDataset(_existing(given["root"], "extracted dataset", folder=True))
    if kind == "cityscapes":
        return CityscapesDataset(_existing(given["root"], "Cityscapes root", folder=True), given.get("split", "val"))
    count = given.get("count", DEFAULT_SYNTHETIC_COUNT)
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ConfigError(f"synthetic dataset count must be a positive integer, got {count!r}")
    camera = domain_intrinsics(given["domain"], given.get("height"), given.get("width"))
    return SyntheticDataset(given["domain"], given.get("task", "depth"), count, seed=given.get("seed", 0),
                            height=camera.height, width=camera.width)


def describe_eval_dataset(kind: str, **options: Any) -> str:
    """One line naming an evaluation dataset and its options, e.g. ``kitti (root=/data/kitti, gt=velodyne)``."""
    given = _check_options(kind, options)
    details = ", ".join(f"{key}={os.fspath(value) if isinstance(value, os.PathLike) else value}"
                        for key, value in given.items())
    return f"{kind} ({details})"


def method_name(checkpoint: str | os.PathLike[str], label: str | None = None, *, trained: bool = True) -> str:
    """Name of our row in the tables: ``label`` if given, else the checkpoint's file stem; ``(untrained)`` is
    appended for an untrained checkpoint so its meaningless numbers are never mistaken for results."""
    name = label if label else Path(checkpoint).stem
    return name if trained else f"{name} (untrained)"


def evaluation_results(
    *,
    method: str,
    checkpoint: str | os.PathLike[str],
    trained: bool,
    depth: Mapping[float, Mapping[str, float]] | None = None,
    semantic: Mapping[str, Any] | None = None,
    depth_dataset: str | None = None,
    semantic_dataset: str | None = None,
    min_depth: float | None = None,
    crop: str | None = None,
    road_scale: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report dict of :func:`semantic_depth_ros.evaluation.report.write_report`.

    ``depth`` is :func:`evaluate_depth`'s result (one row per cap, ascending) and ``semantic`` is
    :func:`evaluate_semantic`'s; metadata: ``method``, ``checkpoint`` (path), ``trained``, ``depth_dataset``,
    ``semantic_dataset``, ``caps`` (m), ``min_depth`` (m), ``crop``, ``scaling`` ("none (metric)", or scale from
    the road when ``road_scale``, ``RoadScale.summary()`` of the run, is given; it is kept as ``road_scale``), then
    ``extra``.
    """
    if crop is not None and crop not in CROPS:
        raise ConfigError(f"unknown crop {crop!r}; expected one of {', '.join(CROPS)}")
    results: dict[str, Any] = {
        "method": method,
        "checkpoint": os.fspath(checkpoint),
        "trained": bool(trained),
    }
    if depth is not None:
        caps = sorted(float(cap) for cap in depth)
        results["depth"] = [{"method": method, "cap": cap, "metrics": dict(depth[cap])} for cap in caps]
        results |= {"depth_dataset": depth_dataset, "caps": caps, "min_depth": min_depth, "crop": crop}
        results["scaling"] = "none (metric predictions, no median scaling)"
        if road_scale is not None:
            results["scaling"] = (f"scale from the road (camera_height {road_scale['camera_height']:g} m, "
                                  f"{road_scale['accepted']} of {road_scale['frames']} frames accepted; no median "
                                  "scaling)")
            results["road_scale"] = dict(road_scale)
    if semantic is not None:
        results["semantic"] = [{"method": method, **dict(semantic)}]
        results["semantic_dataset"] = semantic_dataset
    results |= dict(extra or {})
    return results

"""The training configuration: dataclasses read from YAML, validated, and saved with every run and checkpoint.

Unknown keys anywhere are rejected with their dotted path (``optimizer.lrr``), as are values of the wrong type
(the strict rules of ``config_io``, shared with the model config; ``model.overrides`` follows ModelConfig's types).
Relative paths in a config (datasets, ``init_from``, ``out_dir``) are relative to the working directory.
See ``config/train_*.yaml`` for annotated examples.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config_io import build_dataclass, convert_fields
from ..devices import FIXED_PRECISIONS
from ..errors import ConfigError
from ..model.config import ModelConfig

PHASES = (1, 2)
TASKS = ("depth", "semantic")
DATASET_TYPES = ("synthetic", "kitti", "cityscapes", "extracted")
PRECISIONS = FIXED_PRECISIONS
DECAYS = ("cosine", "poly", "constant")
PARAM_GROUPS = ("trunk", "dc", "sc", "drn")
CROPS = ("garg", "eigen", "none")
LOWER_IS_BETTER = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "loss")
HIGHER_IS_BETTER = ("a1", "a2", "a3", "miou", "pixel_accuracy")
# Fields that may differ between a run and its resumption (they do not change the maths of training).
RESUME_MUTABLE = ("out_dir", "resume", "num_workers", "logging", "device")
_TASKS_OF_TYPE = {"synthetic": TASKS, "kitti": ("depth",), "cityscapes": ("semantic",), "extracted": ("depth",)}


@dataclass
class DatasetConfig:
    """One dataset: ``type`` synthetic|kitti|cityscapes|extracted and the ``task`` whose labels it provides.

    ``path``: dataset root folder (kitti, cityscapes, extracted). ``split``: KITTI split file (Eigen list) or
    Cityscapes split name (train, val). ``options``: further keyword arguments of the reader (e.g. kitti
    ``gt``/``densify``; synthetic ``domain``/``length``/``seed``/``height``/``width``). ``crop``: the training
    size (height, width px) of this dataset's samples, default the network input: a camera with a longer focal
    length than the vehicle's (Cityscapes' fx 2262 px at 2048 wide against KITTI's 721 at 1242) shows objects at
    the vehicle's size when its frames are scaled down and cropped smaller (the network is convolutional).
    Every training dataset of one task shares one crop (they share batches). ``augmentation``: fields of the
    run's ``augmentation`` that differ for this dataset (e.g. a stronger colour jitter and hue for a semantic-only
    domain whose palette and light are not the vehicle's).
    """

    type: str = "synthetic"
    task: str = "depth"
    path: str | None = None
    split: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    crop: tuple[int, int] | None = None
    augmentation: dict[str, Any] = field(default_factory=dict)

    def augmentation_of(self, run: "AugmentationConfig") -> "AugmentationConfig":
        """The run's augmentation with this dataset's fields applied."""
        return dataclasses.replace(run, **self.augmentation)

    def label(self, index: int) -> str:
        """A short name for logs: ``name`` or ``<type>_<task>_<index>``."""
        return self.name or f"{self.type}_{self.task}_{index}"


@dataclass
class ModelSection:
    """``preset``: model preset name or YAML path (must be omitted with ``init_from``, whose config is used);
    ``overrides``: ModelConfig fields to change, e.g. ``input_height``/``input_width`` (the training image size,
    pixels), ``focal_px`` (the canonical camera's fx at that size), ``decoder_channels``."""

    preset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class FlowConfig:
    """Conditional flow: in every cycle of ``depth + semantic`` steps, ``depth`` depth batches and ``semantic``
    semantic batches, spread evenly (or in a seeded random order per cycle with ``shuffle``)."""

    depth: int = 1
    semantic: int = 1
    shuffle: bool = False


@dataclass
class AugmentationConfig:
    """Random scale (factor of the covering scale) and crop to the training size, flip, colour jitter (``hue``: the
    largest rotation of the colours about the grey axis, in turns, 0 to 0.5)."""

    scale_min: float = 1.0
    scale_max: float = 1.5
    hflip: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.0


@dataclass
class OptimizerConfig:
    """AdamW (it skips parameters without a gradient: an unused head is never decayed or moved)."""

    lr: float = 2.0e-4
    weight_decay: float = 1.0e-4
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0


@dataclass
class ScheduleConfig:
    """Linear warm-up over ``warmup_steps`` then ``decay`` (cosine|poly|constant) down to ``min_lr_ratio * lr``."""

    warmup_steps: int = 500
    decay: str = "cosine"
    min_lr_ratio: float = 0.01
    power: float = 0.9


@dataclass
class LossConfig:
    """Loss weights. Phase 1: ``depth_ce`` (DC, bins) and ``semantic_ce`` (SC). Phase 2: ``depth_l1`` (DRN,
    metres of canonical depth) plus ``phase2_depth_ce`` times the DC cross-entropy, and ``semantic_ce``.
    ``depth_label_sigma``: 0 = hard bin targets; > 0 = Gaussian soft targets of that width in bins.
    ``depth_gradient`` (phase 2): weight of the log-depth gradient-matching term on the DRN depth (sharper
    edges). ``depth_relative`` (phase 2): weight of the mean relative error |pred - depth| / depth on the DRN depth
    (near objects weigh as much as far ones, as in abs rel). ``depth_ce_at_stride``: the DC cross-entropy on the
    logits at the decoder's stride, against depth sampled there (instead of logits up-sampled to the input size:
    about half the step time on a CPU).
    ``semantic_balance``: exponent p of the SC cross-entropy's class weights, each class's share of the batch's
    labelled pixels to the power -p (0 = plain cross-entropy; 0.5 lifts thin classes such as poles)."""

    depth_ce: float = 1.0
    semantic_ce: float = 1.0
    depth_l1: float = 1.0
    phase2_depth_ce: float = 0.0
    depth_label_sigma: float = 0.0
    depth_gradient: float = 0.0
    depth_relative: float = 0.0
    depth_ce_at_stride: bool = False
    semantic_balance: float = 0.0


@dataclass
class ValidationConfig:
    """Validation every ``every`` steps (0 = only at the end) on ``datasets`` (centre scale-crop to the training
    size). Depth: Eigen metrics in [min_depth, max_depth] (max_depth null = the model's) within ``crop``;
    semantic: mIoU. ``max_samples`` caps each dataset (0 = all)."""

    every: int = 1000
    batch_size: int = 4
    max_samples: int = 0
    crop: str = "garg"
    min_depth: float = 1.0
    max_depth: float | None = None
    datasets: list[DatasetConfig] = field(default_factory=list)


@dataclass
class CheckpointConfig:
    """Run-state checkpoints every ``every`` steps (and at the end), keeping the last ``keep_last``; the best
    model by validation metric ``best_metric`` is kept as a model checkpoint (``best.pt``)."""

    every: int = 1000
    keep_last: int = 3
    best_metric: str = "abs_rel"


@dataclass
class LoggingConfig:
    """Scalars every ``every`` steps (tqdm + TensorBoard); ``num_images`` validation images every validation."""

    every: int = 20
    tensorboard: bool = True
    num_images: int = 2


@dataclass
class TrainConfig:
    """A whole training run (one phase). ``steps``: total optimiser steps (the LR schedule's length).
    ``batch_size``: per process and per batch. ``freeze``: parameter groups (trunk, dc, sc, drn) not trained.
    ``init_from``: model checkpoint (or run folder holding ``model.pt``) to start from, e.g. phase 1 for phase 2.
    ``precision``: fp32|bf16|fp16 (autocast on CUDA; fp16 adds a GradScaler)."""

    name: str = "train"
    phase: int = 1
    seed: int = 0
    steps: int = 1000
    batch_size: int = 8
    num_workers: int = 2
    precision: str = "fp32"
    device: str = "auto"
    out_dir: str | None = None
    resume: bool = False
    init_from: str | None = None
    freeze: list[str] = field(default_factory=list)
    model: ModelSection = field(default_factory=ModelSection)
    datasets: list[DatasetConfig] = field(default_factory=list)
    flow: FlowConfig = field(default_factory=FlowConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def tasks(self) -> tuple[str, ...]:
        """Tasks that have training datasets, in ``TASKS`` order."""
        present = {d.task for d in self.datasets}
        return tuple(t for t in TASKS if t in present)

    def run_dir(self) -> Path:
        """The run folder: ``out_dir`` or ``runs/<name>``."""
        return Path(self.out_dir) if self.out_dir else Path("runs") / self.name

    def to_dict(self) -> dict[str, Any]:
        """Plain Python (YAML and ``torch.load(weights_only=True)`` safe)."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with top-level fields changed (nested sections as dicts or dataclasses)."""
        data = self.to_dict()
        for key, value in changes.items():
            data[key] = _plain(dataclasses.asdict(value)) if dataclasses.is_dataclass(value) else _plain(value)
        return config_from_dict(data)


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively, so the dict is plain YAML."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_from_dict(data: Any, *, source: str = "train config") -> TrainConfig:
    """Build and validate a TrainConfig; errors name the offending dotted key."""
    config = build_dataclass(TrainConfig, data, source=source)
    # the overrides are ModelConfig fields: the same strict types, checked now rather than when the run starts
    config.model.overrides = convert_fields(ModelConfig, config.model.overrides, source=source,
                                            prefix="model.overrides.")
    for prefix, entries in (("datasets", config.datasets), ("validation.datasets", config.validation.datasets)):
        for index, entry in enumerate(entries):  # likewise a dataset's augmentation fields
            entry.augmentation = convert_fields(AugmentationConfig, entry.augmentation, source=source,
                                                prefix=f"{prefix}[{index}].augmentation.")
    validate_config(config, source=source)
    return config


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"train config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"train config {path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    return config_from_dict(data if data is not None else {}, source=f"train config {path}")


def config_to_yaml(config: TrainConfig) -> str:
    """The resolved config as YAML text (what is printed at start and saved in the run folder)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None, width=120)


def _check(condition: bool, source: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{source}: {message}")


def validate_config(config: TrainConfig, *, source: str = "train config") -> None:
    """Cross-field checks (values, task/ratio consistency); raise ConfigError naming the field."""
    c = config
    _check(c.phase in PHASES, source, f"phase = {c.phase} must be 1 or 2")
    _check(c.steps >= 1, source, f"steps = {c.steps} must be at least 1")
    _check(c.batch_size >= 1, source, f"batch_size = {c.batch_size} must be at least 1")
    _check(c.num_workers >= 0, source, f"num_workers = {c.num_workers} must be >= 0")
    _check(c.seed >= 0, source, f"seed = {c.seed} must be >= 0")
    _check(c.precision in PRECISIONS, source, f"precision = {c.precision!r} must be one of {', '.join(PRECISIONS)}")
    bad = [g for g in c.freeze if g not in PARAM_GROUPS]
    _check(not bad, source, f"freeze lists unknown group {bad[0] if bad else ''!r} (groups: {', '.join(PARAM_GROUPS)})")
    _check(not (c.init_from and c.model.preset), source,
           "set either model.preset or init_from (whose checkpoint config is used), not both")
    use_drn = c.model.overrides.get("use_drn", c.phase == 2)
    _check(use_drn == (c.phase == 2), source,
           f"model.overrides.use_drn = {use_drn!r} contradicts phase {c.phase} (phase 2 alone has the DRN head)")
    _check(bool(c.datasets), source, "datasets is empty: list at least one training dataset")
    for prefix, entries in (("datasets", c.datasets), ("validation.datasets", c.validation.datasets)):
        for index, entry in enumerate(entries):
            _validate_dataset(entry, f"{prefix}[{index}]", source)
    tasks = c.tasks()
    for task in tasks:
        crops = {entry.crop for entry in c.datasets if entry.task == task}
        _check(len(crops) == 1, source, f"the {task} datasets have crops {sorted(map(str, crops))}: every training "
                                        f"dataset of one task shares one crop (they share batches)")
    _check("depth" in tasks or c.phase == 1, source, "phase 2 needs at least one depth dataset")
    for task in TASKS:
        ratio = getattr(c.flow, task)
        _check(ratio >= 0, source, f"flow.{task} = {ratio} must be >= 0")
        if task in tasks:
            _check(ratio > 0, source, f"flow.{task} is 0 but datasets has a {task} dataset: remove it or set a ratio")
        else:
            _check(ratio == 0, source, f"flow.{task} = {ratio} but no training dataset has task {task}: set it to 0")
    _validate_augmentation(c.augmentation, "augmentation", source)
    for prefix, entries in (("datasets", c.datasets), ("validation.datasets", c.validation.datasets)):
        for index, entry in enumerate(entries):
            _validate_augmentation(entry.augmentation_of(c.augmentation), f"{prefix}[{index}].augmentation", source)
    o = c.optimizer
    _check(o.lr > 0, source, f"optimizer.lr = {o.lr} must be positive")
    _check(o.weight_decay >= 0, source, f"optimizer.weight_decay = {o.weight_decay} must be >= 0")
    _check(all(0 <= b < 1 for b in o.betas), source, f"optimizer.betas = {list(o.betas)} must be in [0, 1)")
    _check(o.grad_clip >= 0, source, f"optimizer.grad_clip = {o.grad_clip} must be >= 0 (0 disables clipping)")
    s = c.schedule
    _check(s.warmup_steps >= 0, source, f"schedule.warmup_steps = {s.warmup_steps} must be >= 0")
    _check(s.decay in DECAYS, source, f"schedule.decay = {s.decay!r} must be one of {', '.join(DECAYS)}")
    _check(0 <= s.min_lr_ratio <= 1, source, f"schedule.min_lr_ratio = {s.min_lr_ratio} must be in [0, 1]")
    _check(s.power > 0, source, f"schedule.power = {s.power} must be positive")
    for name in ("depth_ce", "semantic_ce", "depth_l1", "phase2_depth_ce", "depth_label_sigma", "depth_gradient",
                 "depth_relative", "semantic_balance"):
        _check(getattr(c.loss, name) >= 0, source, f"loss.{name} = {getattr(c.loss, name)} must be >= 0")
    _check(c.phase == 1 or c.loss.depth_l1 + c.loss.depth_relative + c.loss.phase2_depth_ce > 0, source,
           "phase 2 needs loss.depth_l1, loss.depth_relative or loss.phase2_depth_ce above 0")
    v = c.validation
    _check(v.every >= 0, source, f"validation.every = {v.every} must be >= 0")
    _check(v.batch_size >= 1, source, f"validation.batch_size = {v.batch_size} must be at least 1")
    _check(v.max_samples >= 0, source, f"validation.max_samples = {v.max_samples} must be >= 0")
    _check(v.crop in CROPS, source, f"validation.crop = {v.crop!r} must be one of {', '.join(CROPS)}")
    _check(v.min_depth > 0 and (v.max_depth is None or v.max_depth > v.min_depth), source,
           f"validation.min_depth/max_depth = {v.min_depth}/{v.max_depth} must satisfy 0 < min < max")
    k = c.checkpoint
    _check(k.every >= 0, source, f"checkpoint.every = {k.every} must be >= 0")
    _check(k.keep_last >= 1, source, f"checkpoint.keep_last = {k.keep_last} must be at least 1")
    metrics = LOWER_IS_BETTER + HIGHER_IS_BETTER
    _check(k.best_metric in metrics, source,
           f"checkpoint.best_metric = {k.best_metric!r} must be one of {', '.join(metrics)}")
    _check(c.logging.every >= 1, source, f"logging.every = {c.logging.every} must be at least 1")
    _check(c.logging.num_images >= 0, source, f"logging.num_images = {c.logging.num_images} must be >= 0")


def _validate_augmentation(a: AugmentationConfig, where: str, source: str) -> None:
    _check(1.0 <= a.scale_min <= a.scale_max, source,
           f"{where}.scale_min/scale_max = {a.scale_min}/{a.scale_max} must satisfy 1 <= min <= max")
    _check(0.0 <= a.hflip <= 1.0, source, f"{where}.hflip = {a.hflip} must be in [0, 1]")
    for name in ("brightness", "contrast", "saturation"):
        _check(getattr(a, name) >= 0, source, f"{where}.{name} = {getattr(a, name)} must be >= 0")
    _check(0.0 <= a.hue <= 0.5, source, f"{where}.hue = {a.hue} must be in [0, 0.5] (turns)")


def _validate_dataset(entry: DatasetConfig, where: str, source: str) -> None:
    _check(entry.type in DATASET_TYPES, source,
           f"{where}.type = {entry.type!r} must be one of {', '.join(DATASET_TYPES)}")
    allowed = _TASKS_OF_TYPE[entry.type]
    _check(entry.task in allowed, source, f"{where}.task = {entry.task!r}: a {entry.type} dataset provides "
                                          f"{' or '.join(allowed)}")
    if entry.crop is not None:
        _check(all(size >= 8 for size in entry.crop), source,
               f"{where}.crop = {list(entry.crop)} must be two sizes of at least 8 px (height, width)")
    if entry.type == "synthetic":
        _check(entry.path is None and entry.split is None, source,
               f"{where}: a synthetic dataset takes no path/split (use options)")
    else:
        _check(bool(entry.path), source, f"{where}.path is required for a {entry.type} dataset")
    if entry.type in ("kitti", "cityscapes"):
        _check(bool(entry.split), source, f"{where}.split is required for a {entry.type} dataset")
    if entry.type == "extracted":
        _check(entry.split is None, source, f"{where}.split is not used by an extracted dataset")


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """Dotted key of the first difference between two plain config dicts, or None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{prefix}{key}"
            found = first_difference(a[key], b[key], f"{prefix}{key}.")
            if found is not None:
                return found
        return None
    return None if a == b else prefix.rstrip(".") or "top level"

"""Training and validation datasets built from config entries, with seeded augmentation per sample.

A training stream is the concatenation of one task's datasets, each sample scaled and cropped to the network
input size, flipped and colour-jittered, its depth turned into canonical depth for the model's ``focal_px``
(PLAN: target = depth * focal_px / fx of the sample after scaling). Validation samples are scaled to cover the
input size and centre-cropped, keeping metric depth (the prediction is converted back, as at inference).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from ..data.transforms import (CanonicalDepth, ColorJitter, Compose, RandomHorizontalFlip, RandomScaleCrop,
                               Transform, crop_sample, make_generator, resize_sample)
from ..errors import ConfigError, DatasetError
from ..model.config import ModelConfig
from .config import AugmentationConfig, DatasetConfig, TrainConfig

# type -> (module, class, {DatasetConfig field: reader keyword}); other keywords come from ``options``
READERS: dict[str, tuple[str, str, dict[str, str]]] = {
    "synthetic": ("semantic_depth_ros.data.synthetic", "SyntheticDataset", {"task": "task"}),
    "kitti": ("semantic_depth_ros.data.kitti", "KittiDepthDataset", {"path": "root", "split": "split_file"}),
    "cityscapes": ("semantic_depth_ros.data.cityscapes", "CityscapesDataset", {"path": "root", "split": "split"}),
    "extracted": ("semantic_depth_ros.data.extracted", "ExtractedDepthDataset", {"path": "root"}),
}
LABEL_KEY = {"depth": "depth", "semantic": "semantic"}


def build_reader(entry: DatasetConfig, where: str) -> Dataset:
    """The raw dataset of one config entry (no transform); ConfigError naming an unknown option."""
    module_name, class_name, from_fields = READERS[entry.type]
    reader = getattr(importlib.import_module(module_name), class_name)
    taken = set(from_fields.values()) | {"transform"}
    accepted = [p for p in inspect.signature(reader).parameters if p not in taken]
    unknown = [k for k in entry.options if k not in accepted]
    if unknown:
        raise ConfigError(f"{where}.options: unknown key '{unknown[0]}' for a {entry.type} dataset "
                          f"(accepted: {', '.join(accepted)})")
    kwargs = {keyword: getattr(entry, name) for name, keyword in from_fields.items()}
    try:
        return reader(**kwargs, **entry.options)
    except TypeError as exc:
        raise ConfigError(f"{where}.options: {exc}") from None


class TaskSamples(Dataset):
    """One dataset's samples for one task: ``{"image" 3xHxW, <task label>, "fx" float}``, transformed.

    Keys are dataset indices, or ``(index, augmentation key)`` pairs from ``StreamBatchSampler``; the transform's
    generator is seeded from ``(seed, stream, augmentation key)``, so augmentation never depends on worker state.
    """

    def __init__(self, reader: Dataset, task: str, transform: Transform, *, name: str, seed: int = 0,
                 stream: int = 0) -> None:
        self.reader = reader
        self.task = task
        self.transform = transform
        self.name = name
        self.seed = int(seed)
        self.stream = int(stream)

    def __len__(self) -> int:
        return len(self.reader)  # type: ignore[arg-type]

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, aug_key = key if isinstance(key, tuple) else (key, int(key))
        sample = self.reader[index]
        label = LABEL_KEY[self.task]
        if not isinstance(sample, dict) or sample.get(label) is None or sample.get("image") is None:
            raise DatasetError(f"dataset {self.name}: sample {index} has no '{label}' (task {self.task})")
        if "fx" not in sample:
            raise DatasetError(f"dataset {self.name}: sample {index} has no 'fx'")
        kept = {"image": sample["image"], label: sample[label], "fx": float(sample["fx"])}
        out = self.transform(kept, make_generator(self.seed, self.stream, aug_key))
        return {"image": out["image"], label: out[label], "fx": float(out["fx"])}


class CenterScaleCrop:
    """Deterministic validation transform: scale to cover out_height x out_width px, then crop the centre."""

    def __init__(self, out_height: int, out_width: int) -> None:
        self.out_height = int(out_height)
        self.out_width = int(out_width)

    def __call__(self, sample: dict[str, Any], generator: Any = None) -> dict[str, Any]:
        height, width = sample["image"].shape[-2:]
        scale = max(self.out_height / height, self.out_width / width)
        new_h = max(self.out_height, round(height * scale))
        new_w = max(self.out_width, round(width * scale))
        resized = resize_sample(sample, new_h, new_w)
        top, left = (new_h - self.out_height) // 2, (new_w - self.out_width) // 2
        return crop_sample(resized, top, left, self.out_height, self.out_width)


def crop_size(crop: tuple[int, int] | None, model_config: ModelConfig) -> tuple[int, int]:
    """The training size (height, width px) of a dataset's samples: its ``crop``, else the network input."""
    return crop if crop is not None else (model_config.input_height, model_config.input_width)


def train_transform(augmentation: AugmentationConfig, model_config: ModelConfig,
                    crop: tuple[int, int] | None = None) -> Compose:
    """Scale-crop to ``crop`` (default the input size), flip, colour jitter, canonical depth (in that order)."""
    height, width = crop_size(crop, model_config)
    return Compose([
        RandomScaleCrop(height, width, (augmentation.scale_min, augmentation.scale_max)),
        RandomHorizontalFlip(augmentation.hflip),
        ColorJitter(augmentation.brightness, augmentation.contrast, augmentation.saturation, augmentation.hue),
        CanonicalDepth(model_config.focal_px),
    ])


def build_train_streams(config: TrainConfig, model_config: ModelConfig) -> dict[str, TaskSamples | ConcatDataset]:
    """One stream per task present in ``config.datasets`` (stream number = index in ``TASKS`` order)."""
    streams: dict[str, TaskSamples | ConcatDataset] = {}
    for stream, task in enumerate(config.tasks()):
        parts = []
        for index, entry in enumerate(config.datasets):
            if entry.task == task:
                transform = train_transform(entry.augmentation_of(config.augmentation), model_config, entry.crop)
                where = f"datasets[{index}]"
                parts.append(TaskSamples(build_reader(entry, where), task, transform, name=entry.label(index),
                                         seed=config.seed, stream=stream))
        streams[task] = parts[0] if len(parts) == 1 else _ConcatTaskSamples(parts)
    return streams


class _ConcatTaskSamples(ConcatDataset):
    """ConcatDataset that forwards ``(index, augmentation key)`` keys to the right part."""

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, aug_key = key if isinstance(key, tuple) else (key, int(key))
        part = next(i for i, end in enumerate(self.cumulative_sizes) if index < end)
        start = self.cumulative_sizes[part - 1] if part else 0
        return self.datasets[part][(index - start, aug_key)]


def readers_of(datasets: Iterable[Dataset]) -> list[Dataset]:
    """The raw readers under training streams and validation datasets (through concatenations and subsets)."""
    readers: list[Dataset] = []
    for dataset in datasets:
        if isinstance(dataset, TaskSamples):
            readers.append(dataset.reader)
        elif isinstance(dataset, ConcatDataset):
            readers += readers_of(dataset.datasets)
        elif isinstance(dataset, Subset):
            readers += readers_of([dataset.dataset])
    return readers


@dataclass
class ValidationSet:
    """A validation dataset: its name (for logs), task and samples (centre scale-crop, metric depth)."""

    name: str
    task: str
    dataset: Dataset


def build_validation_sets(config: TrainConfig, model_config: ModelConfig) -> list[ValidationSet]:
    """The validation datasets, each capped to ``validation.max_samples`` (evenly spaced) when set."""
    sets = []
    for index, entry in enumerate(config.validation.datasets):
        where = f"validation.datasets[{index}]"
        transform = CenterScaleCrop(*crop_size(entry.crop, model_config))
        samples: Dataset = TaskSamples(build_reader(entry, where), entry.task, transform, name=entry.label(index))
        cap = config.validation.max_samples
        if cap and len(samples) > cap:  # type: ignore[arg-type]
            samples = Subset(samples, torch.linspace(0, len(samples) - 1, cap).round().long().tolist())
        sets.append(ValidationSet(entry.label(index), entry.task, samples))
    return sets

"""Cityscapes (fine annotations) as a semantic dataset.

Layout read::

    root/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png   (used when present)
    root/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png        (else, mapped to train ids)
    root/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json                (optional: "intrinsic": {"fx": ...})

Labels are the 19 Cityscapes train ids (0..18), 255 = ignore, with the official labelId -> trainId table of
cityscapesScripts (``helpers/labels.py``). The focal length is the camera file's ``fx`` when present, else
2262.52 px (the Cityscapes camera at 2048x1024); either is scaled by ``image width / 2048`` for
images stored at another resolution.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from semantic_depth_ros.data.fileio import image_to_tensor, read_label_png, read_rgb
from semantic_depth_ros.errors import DatasetError

CITYSCAPES_FX = 2262.52
"""Default focal length (pixels) of the Cityscapes camera at the full 2048 px width."""

CITYSCAPES_WIDTH = 2048
IGNORE_LABEL = 255
NUM_TRAIN_IDS = 19

# labelId -> trainId, cityscapesScripts helpers/labels.py (ids 0..33; every other value is ignored).
_LABEL_TO_TRAIN = {
    7: 0,  # road
    8: 1,  # sidewalk
    11: 2,  # building
    12: 3,  # wall
    13: 4,  # fence
    17: 5,  # pole
    19: 6,  # traffic light
    20: 7,  # traffic sign
    21: 8,  # vegetation
    22: 9,  # terrain
    23: 10,  # sky
    24: 11,  # person
    25: 12,  # rider
    26: 13,  # car
    27: 14,  # truck
    28: 15,  # bus
    31: 16,  # train
    32: 17,  # motorcycle
    33: 18,  # bicycle
}

LABEL_ID_TO_TRAIN_ID = np.full(256, IGNORE_LABEL, dtype=np.uint8)
"""Lookup table, uint8[256]: ``LABEL_ID_TO_TRAIN_ID[label_id] -> train id`` (255 = ignore)."""
LABEL_ID_TO_TRAIN_ID[list(_LABEL_TO_TRAIN)] = list(_LABEL_TO_TRAIN.values())


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """Map an HxW uint8 Cityscapes labelIds image to train ids (uint8, 255 = ignore)."""
    return LABEL_ID_TO_TRAIN_ID[np.asarray(label_ids, dtype=np.uint8)]


def read_camera_fx(path: str | os.PathLike[str]) -> float:
    """Read ``intrinsic.fx`` (pixels, at 2048x1024) from a Cityscapes camera JSON file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        fx = float(data["intrinsic"]["fx"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read intrinsic.fx from camera file {path}: {err}") from None
    if not np.isfinite(fx) or fx <= 0:
        raise DatasetError(f"camera file {path} has invalid fx {fx}")
    return fx


class CityscapesItem(NamedTuple):
    """Files of one Cityscapes frame."""

    image: Path
    label: Path
    label_is_train_ids: bool
    camera: Path | None


def _find_items(root: Path, split: str) -> list[CityscapesItem]:
    image_dir = root / "leftImg8bit" / split
    if not image_dir.is_dir():
        raise DatasetError(f"missing Cityscapes image folder: {image_dir}")
    items: list[CityscapesItem] = []
    for image in sorted(image_dir.glob("*/*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        city = image.parent.name
        label_dir = root / "gtFine" / split / city
        train_ids = label_dir / f"{stem}_gtFine_labelTrainIds.png"
        label_ids = label_dir / f"{stem}_gtFine_labelIds.png"
        if train_ids.is_file():
            label, is_train = train_ids, True
        elif label_ids.is_file():
            label, is_train = label_ids, False
        else:
            raise DatasetError(f"missing Cityscapes label: {label_ids}")
        camera = root / "camera" / split / city / f"{stem}_camera.json"
        items.append(CityscapesItem(image, label, is_train, camera if camera.is_file() else None))
    if not items:
        raise DatasetError(f"no *_leftImg8bit.png images under {image_dir}")
    return items


class CityscapesDataset(Dataset):
    """Cityscapes images with fine labels as semantic samples.

    ``__getitem__`` returns ``{"image": float32 3xHxW in [0, 1], "semantic": int64 HxW train ids (255 = ignore),
    "fx": float pixels at this HxW}``, passed through ``transform`` when given.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.split = split
        self.transform = transform
        self.items = _find_items(self.root, split)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.items[index]
        rgb = read_rgb(item.image)
        label = read_label_png(item.label)
        if label.shape != rgb.shape[:2]:
            raise DatasetError(
                f"label is {label.shape[1]}x{label.shape[0]}, image {rgb.shape[1]}x{rgb.shape[0]}: {item.label}"
            )
        if item.label_is_train_ids:
            label = np.where(label < NUM_TRAIN_IDS, label, np.uint8(IGNORE_LABEL))
        else:
            label = label_ids_to_train_ids(label)
        fx = read_camera_fx(item.camera) if item.camera is not None else CITYSCAPES_FX
        sample: dict[str, Any] = {
            "image": image_to_tensor(rgb),
            "semantic": torch.from_numpy(label.astype(np.int64)),
            "fx": fx * rgb.shape[1] / CITYSCAPES_WIDTH,
        }
        return self.transform(sample) if self.transform is not None else sample

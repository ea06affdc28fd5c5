"""Cityscapes reader on a tiny fake tree."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from semantic_depth_ros.data.cityscapes import (
    CITYSCAPES_FX,
    LABEL_ID_TO_TRAIN_ID,
    CityscapesDataset,
    label_ids_to_train_ids,
)
from semantic_depth_ros.errors import DatasetError

WIDTH, HEIGHT = 64, 32
# (labelId, trainId) pairs of the official table, including ignored classes.
OFFICIAL = [(0, 255), (1, 255), (6, 255), (7, 0), (8, 1), (9, 255), (11, 2), (12, 3), (13, 4), (14, 255),
            (17, 5), (18, 255), (19, 6), (20, 7), (21, 8), (22, 9), (23, 10), (24, 11), (25, 12), (26, 13),
            (27, 14), (28, 15), (29, 255), (30, 255), (31, 16), (32, 17), (33, 18), (34, 255), (255, 255)]


def make_tree(root: Path, city: str, stem: str, label_ids: np.ndarray, *, train_ids: np.ndarray | None = None,
              camera_fx: float | None = None) -> None:
    image_dir = root / "leftImg8bit" / "val" / city
    label_dir = root / "gtFine" / "val" / city
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    cv2.imwrite(str(image_dir / f"{stem}_leftImg8bit.png"), image)
    cv2.imwrite(str(label_dir / f"{stem}_gtFine_labelIds.png"), label_ids)
    if train_ids is not None:
        cv2.imwrite(str(label_dir / f"{stem}_gtFine_labelTrainIds.png"), train_ids)
    if camera_fx is not None:
        camera_dir = root / "camera" / "val" / city
        camera_dir.mkdir(parents=True, exist_ok=True)
        (camera_dir / f"{stem}_camera.json").write_text(json.dumps(
            {"baseline": 0.209313, "intrinsic": {"fx": camera_fx, "fy": camera_fx, "u0": 1000.0, "v0": 500.0}}))


def official_label_image() -> np.ndarray:
    ids = np.array([pair[0] for pair in OFFICIAL], dtype=np.uint8)
    return np.resize(ids, (HEIGHT, WIDTH))


def test_official_label_table():
    for label_id, train_id in OFFICIAL:
        assert LABEL_ID_TO_TRAIN_ID[label_id] == train_id, label_id
    assert sorted(set(LABEL_ID_TO_TRAIN_ID.tolist()) - {255}) == list(range(19))
    np.testing.assert_array_equal(label_ids_to_train_ids(np.array([[7, 23], [26, 3]], dtype=np.uint8)),
                                  [[0, 10], [13, 255]])


def test_label_ids_are_mapped_and_default_fx_scales_with_width(tmp_path: Path):
    labels = official_label_image()
    make_tree(tmp_path, "lindau", "lindau_000000_000019", labels)
    dataset = CityscapesDataset(tmp_path, "val")
    assert len(dataset) == 1
    sample = dataset[0]
    assert set(sample) == {"image", "semantic", "fx"}
    assert sample["image"].shape == (3, HEIGHT, WIDTH) and sample["image"].dtype == torch.float32
    assert sample["semantic"].dtype == torch.int64 and sample["semantic"].shape == (HEIGHT, WIDTH)
    expected = np.resize(np.array([pair[1] for pair in OFFICIAL]), (HEIGHT, WIDTH))
    np.testing.assert_array_equal(sample["semantic"].numpy(), expected)
    assert sample["fx"] == pytest.approx(CITYSCAPES_FX * WIDTH / 2048)


def test_train_id_images_win_and_camera_json_gives_fx(tmp_path: Path):
    train_ids = np.full((HEIGHT, WIDTH), 13, dtype=np.uint8)
    train_ids[0, :3] = [18, 19, 255]  # 19 is out of range -> ignore
    make_tree(tmp_path, "munster", "munster_000001_000019", official_label_image(), train_ids=train_ids,
              camera_fx=2300.0)
    sample = CityscapesDataset(tmp_path, "val", transform=lambda s: {**s, "seen": True})[0]
    assert sample["seen"] is True
    semantic = sample["semantic"].numpy()
    assert semantic[0, :3].tolist() == [18, 255, 255]
    assert np.all(semantic[1:] == 13)
    assert sample["fx"] == pytest.approx(2300.0 * WIDTH / 2048)


def test_missing_folders_and_labels_name_the_path(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"missing Cityscapes image folder: .*leftImg8bit/val"):
        CityscapesDataset(tmp_path, "val")
    make_tree(tmp_path, "lindau", "lindau_000000_000019", official_label_image())
    (tmp_path / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png").unlink()
    with pytest.raises(DatasetError, match=r"missing Cityscapes label: .*lindau_000000_000019_gtFine_labelIds\.png"):
        CityscapesDataset(tmp_path, "val")


def test_label_size_mismatch_and_bad_camera_file_are_reported(tmp_path: Path):
    make_tree(tmp_path, "lindau", "lindau_000000_000019", np.zeros((HEIGHT // 2, WIDTH), dtype=np.uint8),
              camera_fx=2000.0)
    with pytest.raises(DatasetError, match=r"label is 64x16, image 64x32"):
        CityscapesDataset(tmp_path, "val")[0]
    make_tree(tmp_path, "lindau", "lindau_000000_000019", official_label_image())
    (tmp_path / "camera" / "val" / "lindau" / "lindau_000000_000019_camera.json").write_text('{"intrinsic": {}}')
    with pytest.raises(DatasetError, match=r"cannot read intrinsic.fx from camera file .*_camera\.json"):
        CityscapesDataset(tmp_path, "val")[0]

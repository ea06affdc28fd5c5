"""Reading an extracted rosbag folder back as a depth dataset."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from semantic_depth_ros.data.extracted import ExtractedDepthDataset
from semantic_depth_ros.data.fileio import depth_to_uint16, encode_png, read_depth_png
from semantic_depth_ros.files import write_atomic
from semantic_depth_ros.errors import DatasetError

WIDTH, HEIGHT = 40, 16


def make_folder(root: Path, stamps=(100, 200)) -> None:
    (root / "rgb").mkdir(parents=True)
    (root / "depth").mkdir()
    (root / "intrinsics.json").write_text(json.dumps(
        {"fx": 33.5, "fy": 33.0, "cx": 19.5, "cy": 7.5, "width": WIDTH, "height": HEIGHT}))
    lines = []
    for i, stamp in enumerate(stamps):
        rgb = np.full((HEIGHT, WIDTH, 3), (10 * i, 20, 30), dtype=np.uint8)
        depth = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
        depth[3, 4] = 256 * (i + 2)
        depth[5, 6] = 1
        cv2.imwrite(str(root / "rgb" / f"{stamp}.png"), rgb[..., ::-1])
        cv2.imwrite(str(root / "depth" / f"{stamp}.png"), depth)
        lines.append(json.dumps({"stamp_ns": stamp, "rgb": f"rgb/{stamp}.png", "depth": f"depth/{stamp}.png"}))
    (root / "manifest.jsonl").write_text("\n".join(lines) + "\n")


def test_samples_hold_image_depth_over_256_and_fx(tmp_path: Path):
    make_folder(tmp_path)
    dataset = ExtractedDepthDataset(tmp_path)
    assert len(dataset) == 2
    sample = dataset[1]
    assert set(sample) == {"image", "depth", "fx"}
    assert sample["fx"] == 33.5
    assert sample["image"].shape == (3, HEIGHT, WIDTH) and sample["image"].dtype == torch.float32
    assert sample["image"][:, 0, 0].tolist() == pytest.approx([10 / 255, 20 / 255, 30 / 255])
    depth = sample["depth"]
    assert depth.shape == (1, HEIGHT, WIDTH) and depth.dtype == torch.float32
    assert depth[0, 3, 4].item() == 3.0 and depth[0, 5, 6].item() == 1 / 256
    assert torch.count_nonzero(depth).item() == 2


def test_missing_or_broken_files_name_the_path(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"missing intrinsics file: .*intrinsics\.json"):
        ExtractedDepthDataset(tmp_path)
    make_folder(tmp_path)
    (tmp_path / "manifest.jsonl").rename(tmp_path / "old.jsonl")
    with pytest.raises(DatasetError, match=r"missing manifest: .*manifest\.jsonl"):
        ExtractedDepthDataset(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"rgb": "../../etc/passwd", "depth": "depth/100.png"}\n')
    with pytest.raises(DatasetError, match=r"manifest\.jsonl:1: file path must be relative to the folder"):
        ExtractedDepthDataset(tmp_path)
    (tmp_path / "manifest.jsonl").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")  # a binary file copied over it
    with pytest.raises(DatasetError, match=r"^manifest .*manifest\.jsonl is not a text file$"):
        ExtractedDepthDataset(tmp_path)
    (tmp_path / "manifest.jsonl").write_text('{"rgb": "rgb/100.png", "depth": "depth/999.png"}\n')
    with pytest.raises(DatasetError, match=r"missing file: .*depth/999\.png"):
        ExtractedDepthDataset(tmp_path)[0]
    (tmp_path / "intrinsics.json").write_text('{"fx": 1}')
    with pytest.raises(DatasetError, match=r"cannot read fx, fy, cx, cy, width, height from .*intrinsics\.json"):
        ExtractedDepthDataset(tmp_path)


def test_depth_png_round_trip_and_clipping(tmp_path: Path):
    depth = np.array([[0.0, 1.0 / 256, 12.3456], [300.0, np.nan, -2.0]], dtype=np.float32)
    raw = depth_to_uint16(depth)
    assert raw.tolist() == [[0, 1, 3160], [65535, 0, 0]]
    write_atomic(tmp_path / "d.png", encode_png(raw))
    back = read_depth_png(tmp_path / "d.png")
    np.testing.assert_allclose(back, [[0, 1 / 256, 3160 / 256], [65535 / 256, 0, 0]])
    assert [p.name for p in tmp_path.iterdir()] == ["d.png"]  # no temporary file left behind

"""A folder written by ``semantic-depth extract`` (:mod:`semantic_depth_ros.data.rosbag_extract`) as a depth dataset.

Reads ``intrinsics.json`` (fx at the stored image size) and ``manifest.jsonl`` (one frame per line with
``rgb`` and ``depth`` paths relative to the folder); depth PNGs are uint16 metres * 256, 0 = no return.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any, Callable

from torch.utils.data import Dataset

from semantic_depth_ros.data.fileio import depth_to_tensor, image_to_tensor, read_depth_png, read_rgb
from semantic_depth_ros.errors import DatasetError

MANIFEST_NAME = "manifest.jsonl"
INTRINSICS_NAME = "intrinsics.json"


def _relative_file(root: Path, value: Any, manifest: Path, number: int) -> Path:
    """``root / value`` for a relative path that stays inside ``root``."""
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{manifest}:{number}: file path must be a non-empty string, got {value!r}")
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise DatasetError(f"{manifest}:{number}: file path must be relative to the folder, got {value!r}")
    return root / relative


def read_intrinsics(path: Path) -> dict[str, float]:
    """fx, fy, cx, cy, width, height of an intrinsics.json (DatasetError naming the path if unusable)."""
    if not path.is_file():
        raise DatasetError(f"missing intrinsics file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        values = {key: float(data[key]) for key in ("fx", "fy", "cx", "cy", "width", "height")}
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read fx, fy, cx, cy, width, height from {path}: {err}") from None
    if values["fx"] <= 0 or values["fy"] <= 0 or values["width"] <= 0 or values["height"] <= 0:
        raise DatasetError(f"intrinsics in {path} must have positive fx, fy, width and height, got {values}")
    return values


class ExtractedDepthDataset(Dataset):
    """Frames of an extracted rosbag folder as depth samples.

    ``__getitem__`` returns ``{"image": float32 3xHxW in [0, 1], "depth": float32 1xHxW metres (0 = invalid),
    "fx": float pixels}``, passed through ``transform`` when given.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root = Path(root)
        self.transform = transform
        self.intrinsics = read_intrinsics(self.root / INTRINSICS_NAME)
        manifest = self.root / MANIFEST_NAME
        if not manifest.is_file():
            raise DatasetError(f"missing manifest: {manifest}")
        self.frames: list[tuple[Path, Path]] = []
        for number, line in enumerate(manifest.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise DatasetError(f"{manifest}:{number}: not JSON: {line[:80]!r}") from None
            if not isinstance(entry, dict):
                raise DatasetError(f"{manifest}:{number}: expected a JSON object, got {line[:80]!r}")
            rgb = _relative_file(self.root, entry.get("rgb"), manifest, number)
            depth = _relative_file(self.root, entry.get("depth"), manifest, number)
            self.frames.append((rgb, depth))
        if not self.frames:
            raise DatasetError(f"manifest lists no frames: {manifest}")

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb_path, depth_path = self.frames[index]
        rgb = read_rgb(rgb_path)
        depth = read_depth_png(depth_path)
        height, width = rgb.shape[:2]
        if depth.shape != (height, width):
            raise DatasetError(f"depth is {depth.shape[1]}x{depth.shape[0]}, image {width}x{height}: {depth_path}")
        if (width, height) != (self.intrinsics["width"], self.intrinsics["height"]):
            raise DatasetError(
                f"image is {width}x{height} but {self.root / INTRINSICS_NAME} says "
                f"{self.intrinsics['width']:.0f}x{self.intrinsics['height']:.0f}: {rgb_path}"
            )
        sample: dict[str, Any] = {
            "image": image_to_tensor(rgb),
            "depth": depth_to_tensor(depth),
            "fx": self.intrinsics["fx"],
        }
        return self.transform(sample) if self.transform is not None else sample

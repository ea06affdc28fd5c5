"""The extracted-folder format of ``semantic-depth extract``: its writer and its reader (a depth dataset).

Layout (one camera per folder)::

    root/rgb/<stamp_ns>.png      the image, 8-bit RGB PNG, named by the image header stamp (ns)
    root/depth/<stamp_ns>.png    uint16 PNG, metres * 256, 0 = no LiDAR return (KITTI depth-completion
                                 convention; depths beyond 255.996 m are clipped to 65535)
    root/intrinsics.json         {"fx", "fy", "cx", "cy", "width", "height", "frame_id", "depth_scale"}
    root/manifest.jsonl          one JSON object per frame, sorted by stamp: stamp_ns, scan_stamp_ns, dt_s,
                                 camera_frame, lidar_frame, rgb, depth (paths relative to root),
                                 lidar_points (finite points in the scan), depth_pixels (pixels with depth)

The writer writes every file atomically (temporary file + ``os.replace``) and rewrites the manifest every
``MANIFEST_FLUSH_FRAMES`` frames and at the end; only frames listed in it count as done, so a re-run skips them
and redoes frames whose files exist but are not listed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any, Callable

import numpy as np
from torch.utils.data import Dataset

from semantic_depth_ros.data.fileio import (
    DEPTH_PNG_SCALE,
    depth_to_tensor,
    dumps_json,
    image_to_tensor,
    read_depth_png,
    read_rgb,
    write_json,
)
from semantic_depth_ros.errors import DatasetError, ExtractionError, InvalidInputError
from semantic_depth_ros.files import write_atomic
from semantic_depth_ros.geometry.intrinsics import Intrinsics

MANIFEST_NAME = "manifest.jsonl"
INTRINSICS_NAME = "intrinsics.json"
MANIFEST_FLUSH_FRAMES = 25
_INTRINSICS_KEYS = ("fx", "fy", "cx", "cy", "width", "height")


def _relative_file(root: Path, value: Any, manifest: Path, number: int) -> Path:
    """``root / value`` for a relative path that stays inside ``root``."""
    if not isinstance(value, str) or not value:
        raise DatasetError(f"{manifest}:{number}: file path must be a non-empty string, got {value!r}")
    relative = PurePosixPath(value)
    if relative.is_absolute() or ".." in relative.parts:
        raise DatasetError(f"{manifest}:{number}: file path must be relative to the folder, got {value!r}")
    return root / relative


def intrinsics_json(intrinsics: Intrinsics, frame_id: str) -> dict[str, Any]:
    """The content of intrinsics.json for a camera (``frame_id``: its optical frame)."""
    return {
        "fx": intrinsics.fx, "fy": intrinsics.fy, "cx": intrinsics.cx, "cy": intrinsics.cy,
        "width": intrinsics.width, "height": intrinsics.height, "frame_id": frame_id, "depth_scale": DEPTH_PNG_SCALE,
    }


def read_intrinsics(path: Path) -> Intrinsics:
    """The camera of an intrinsics.json (DatasetError naming the path if unusable)."""
    if not path.is_file():
        raise DatasetError(f"missing intrinsics file: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        values = {key: data[key] for key in _INTRINSICS_KEYS}
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"cannot read fx, fy, cx, cy, width, height from {path}: {err}") from None
    try:
        return Intrinsics(**values)
    except InvalidInputError as err:
        raise DatasetError(f"intrinsics in {path} are unusable: {err}") from None


class ExtractedFolderWriter:
    """Writes frames into an extracted folder, resuming from its manifest (module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest_path = root / MANIFEST_NAME
        self.intrinsics_path = root / INTRINSICS_NAME
        self.entries: dict[int, dict[str, Any]] = {}
        self.intrinsics: dict[str, Any] | None = None
        self.unflushed = 0
        if self.manifest_path.is_file():
            for number, line in enumerate(self.manifest_path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    stamp = int(entry["stamp_ns"])
                    if not isinstance(entry["rgb"], str) or not isinstance(entry["depth"], str):
                        raise TypeError("rgb and depth must be paths")
                except (ValueError, KeyError, TypeError):
                    message = f"{self.manifest_path}:{number}: not a manifest entry: {line[:80]!r}"
                    raise ExtractionError(message) from None
                self.entries[stamp] = entry
        if self.intrinsics_path.is_file():
            try:
                self.intrinsics = json.loads(self.intrinsics_path.read_text(encoding="utf-8"))
            except ValueError:
                raise ExtractionError(f"{self.intrinsics_path} is not valid JSON") from None

    def is_done(self, stamp: int) -> bool:
        """Whether the frame of image stamp ``stamp`` (ns) is in the manifest and its files exist."""
        entry = self.entries.get(stamp)
        return entry is not None and (self.root / entry["rgb"]).is_file() and (self.root / entry["depth"]).is_file()

    def matches(self, intrinsics: Intrinsics, frame_id: str) -> bool:
        """Whether ``intrinsics`` are the folder's camera (writes intrinsics.json on the first frame)."""
        current = intrinsics_json(intrinsics, frame_id)
        if self.intrinsics is None:
            write_json(self.intrinsics_path, current)
            self.intrinsics = current
            return True
        if not all(isinstance(self.intrinsics.get(key), (int, float)) for key in _INTRINSICS_KEYS):
            raise ExtractionError(f"{self.intrinsics_path} lacks one of {', '.join(_INTRINSICS_KEYS)}")
        return all(np.isclose(float(self.intrinsics[k]), float(current[k]), rtol=1e-6, atol=1e-9)
                   for k in _INTRINSICS_KEYS)

    def add(self, entry: dict[str, Any], rgb_png: bytes, depth_png: bytes) -> None:
        """Write one frame's PNGs (paths in ``entry``) and list it (manifest flushed every few frames)."""
        write_atomic(self.root / entry["rgb"], rgb_png)
        write_atomic(self.root / entry["depth"], depth_png)
        self.entries[int(entry["stamp_ns"])] = entry
        self.unflushed += 1
        if self.unflushed >= MANIFEST_FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        """Rewrite the manifest (sorted by stamp) if frames were added since the last flush."""
        if self.unflushed == 0:
            return
        lines = [dumps_json(dict(sorted(self.entries[stamp].items())), indent=None) for stamp in sorted(self.entries)]
        write_atomic(self.manifest_path, ("\n".join(lines) + "\n" if lines else "").encode())
        self.unflushed = 0


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
        try:
            text = manifest.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DatasetError(f"manifest {manifest} is not a text file") from None
        for number, line in enumerate(text.splitlines(), start=1):
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
        if (width, height) != (self.intrinsics.width, self.intrinsics.height):
            raise DatasetError(
                f"image is {width}x{height} but {self.root / INTRINSICS_NAME} says "
                f"{self.intrinsics.width}x{self.intrinsics.height}: {rgb_path}"
            )
        sample: dict[str, Any] = {
            "image": image_to_tensor(rgb),
            "depth": depth_to_tensor(depth),
            "fx": self.intrinsics.fx,
        }
        return self.transform(sample) if self.transform is not None else sample

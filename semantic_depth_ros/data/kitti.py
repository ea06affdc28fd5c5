"""KITTI raw (Eigen split) as a depth dataset.

Layout read (the raw "sync" download)::

    root/2011_09_26/calib_cam_to_cam.txt          P_rect_02/03, R_rect_00, S_rect_02/03
    root/2011_09_26/calib_velo_to_cam.txt         R, T (Velodyne -> unrectified camera 0)
    root/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
    root/2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin   float32 x y z reflectance

Split files list one frame per line, ``2011_09_26/2011_09_26_drive_0002_sync 0000000069 l`` (``l`` = camera 2,
``r`` = camera 3; the frame number may be zero-padded or not).

Ground truth, ``gt="velodyne"``: the Velodyne points with x > 0 (in front of the car) are taken to the
rectified camera frame with ``P_rect @ R_rect_00 @ velo_to_cam`` and projected with
:func:`semantic_depth_ros.data.projection.project_points_to_depth` (nearest point wins) at the image size;
optionally densified with :func:`semantic_depth_ros.data.densify.densify_depth`. ``gt="annotated"``: the
KITTI depth-completion maps (uint16 PNG / 256, 0 = invalid) from the ``data_depth_annotated`` layout
``<annotated_root>/{train,val}/<drive>/proj_depth/groundtruth/image_02/<frame>.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
from torch.utils.data import Dataset

from semantic_depth_ros.data.densify import densify_depth
from semantic_depth_ros.data.fileio import depth_to_tensor, image_to_tensor, read_depth_png, read_rgb
from semantic_depth_ros.data.projection import project_points_to_depth, transform_points
from semantic_depth_ros.errors import DatasetError

GT_SOURCES = ("velodyne", "annotated")
_SIDE_TO_CAMERA = {"l": 2, "r": 3}


class KittiCalibration(NamedTuple):
    """Calibration of one KITTI colour camera of one recording date."""

    K: np.ndarray
    """3x3 pinhole matrix of the rectified image (pixels)."""
    velo_to_cam: np.ndarray
    """4x4, p_cam = velo_to_cam @ p_velo, camera = the rectified frame of this camera (baseline included)."""
    image_size: tuple[int, int]
    """(width, height) of the rectified image, pixels (S_rect)."""


class KittiFrame(NamedTuple):
    """One line of a split file."""

    drive: str
    """``<date>/<drive>`` folder relative to the root."""
    frame: int
    camera: int
    """2 (left colour) or 3 (right colour)."""


def parse_calib_file(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a KITTI ``key: numbers`` calibration file; non-numeric entries (calib_time) are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing KITTI calibration file: {path}")
    values: dict[str, np.ndarray] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        try:
            values[key.strip()] = np.array([float(token) for token in rest.split()], dtype=np.float64)
        except ValueError:
            continue
    return values


def _entry(values: dict[str, np.ndarray], key: str, size: int, path: Path) -> np.ndarray:
    if key not in values:
        raise DatasetError(f"calibration entry {key!r} missing in {path}")
    if values[key].size != size:
        raise DatasetError(f"calibration entry {key!r} has {values[key].size} numbers, expected {size}: {path}")
    return values[key]


def load_kitti_calibration(date_dir: str | os.PathLike[str], camera: int = 2) -> KittiCalibration:
    """Load the calibration of colour camera ``camera`` (2 or 3) from a KITTI date folder."""
    if camera not in (2, 3):
        raise DatasetError(f"KITTI colour camera must be 2 or 3, got {camera}")
    date_dir = Path(date_dir)
    cam_path = date_dir / "calib_cam_to_cam.txt"
    velo_path = date_dir / "calib_velo_to_cam.txt"
    cam = parse_calib_file(cam_path)
    velo = parse_calib_file(velo_path)

    projection = _entry(cam, f"P_rect_0{camera}", 12, cam_path).reshape(3, 4)
    rect = np.eye(4)
    rect[:3, :3] = _entry(cam, "R_rect_00", 9, cam_path).reshape(3, 3)
    size = _entry(cam, f"S_rect_0{camera}", 2, cam_path)
    velo_to_cam0 = np.eye(4)
    velo_to_cam0[:3, :3] = _entry(velo, "R", 9, velo_path).reshape(3, 3)
    velo_to_cam0[:3, 3] = _entry(velo, "T", 3, velo_path)

    K = projection[:, :3].copy()
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] == 0:
        raise DatasetError(f"P_rect_0{camera} has no valid focal length in {cam_path}")
    # P_rect = K [I | t]: t is this camera's offset from rectified camera 0 (the stereo baseline).
    offset = np.eye(4)
    offset[:3, 3] = np.linalg.solve(K, projection[:, 3])
    return KittiCalibration(K=K, velo_to_cam=offset @ rect @ velo_to_cam0, image_size=(int(size[0]), int(size[1])))


def read_velodyne_bin(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a KITTI Velodyne scan as Nx4 float32 (x, y, z metres, reflectance)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing Velodyne scan: {path}")
    size = path.stat().st_size
    if size % 16 != 0:
        raise DatasetError(f"Velodyne scan size {size} bytes is not a multiple of 16: {path}")
    return np.fromfile(path, dtype="<f4").reshape(-1, 4)


def velodyne_depth(points: np.ndarray, calibration: KittiCalibration, width: int, height: int) -> np.ndarray:
    """HxW float32 depth (metres, 0 = none) of the Velodyne points with x > 0, nearest point wins."""
    forward = points[points[:, 0] > 0, :3]
    return project_points_to_depth(transform_points(calibration.velo_to_cam, forward), calibration.K, width, height)


def read_split_file(path: str | os.PathLike[str]) -> list[KittiFrame]:
    """Parse a split file (``<date>/<drive> <frame> [l|r]`` per line; blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"missing split file: {path}")
    frames: list[KittiFrame] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        side = tokens[2] if len(tokens) == 3 else "l"
        if len(tokens) not in (2, 3) or not tokens[1].isdigit() or side not in _SIDE_TO_CAMERA:
            raise DatasetError(f"{path}:{number}: expected '<date>/<drive> <frame> <l|r>', got {line.strip()!r}")
        drive = tokens[0].strip("/")
        if len(Path(drive).parts) != 2 or ".." in Path(drive).parts:
            raise DatasetError(f"{path}:{number}: drive must be '<date>/<drive>', got {tokens[0]!r}")
        frames.append(KittiFrame(drive=drive, frame=int(tokens[1]), camera=_SIDE_TO_CAMERA[side]))
    if not frames:
        raise DatasetError(f"split file lists no frames: {path}")
    return frames


class KittiDepthDataset(Dataset):
    """KITTI raw frames of a split file as depth samples.

    ``__getitem__`` returns ``{"image": float32 3xHxW in [0, 1], "depth": float32 1xHxW metres (0 = invalid),
    "fx": float pixels}``, passed through ``transform`` when given.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split_file: str | os.PathLike[str],
        *,
        gt: str = "velodyne",
        densify: bool = False,
        annotated_root: str | os.PathLike[str] | None = None,
        densify_window: int = 11,
        densify_band: float = 0.2,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if gt not in GT_SOURCES:
            raise DatasetError(f"gt must be one of {GT_SOURCES}, got {gt!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"missing KITTI root folder: {self.root}")
        self.gt = gt
        self.densify = densify
        self.densify_window = densify_window
        self.densify_band = densify_band
        self.annotated_root = Path(annotated_root) if annotated_root is not None else self.root
        self.transform = transform
        self.frames = read_split_file(split_file)
        self.calibrations: dict[tuple[str, int], KittiCalibration] = {}
        for item in self.frames:
            key = (Path(item.drive).parts[0], item.camera)
            if key not in self.calibrations:
                self.calibrations[key] = load_kitti_calibration(self.root / key[0], item.camera)

    def __len__(self) -> int:
        return len(self.frames)

    def image_path(self, index: int) -> Path:
        """Path of the colour image of sample ``index`` (PNG, or JPEG when only that exists)."""
        item = self.frames[index]
        png = self.root / item.drive / f"image_0{item.camera}" / "data" / f"{item.frame:010d}.png"
        jpg = png.with_suffix(".jpg")
        return jpg if not png.is_file() and jpg.is_file() else png

    def annotated_path(self, index: int) -> Path:
        """Path of the depth-completion ground truth of sample ``index`` (first existing candidate)."""
        item = self.frames[index]
        date, drive = Path(item.drive).parts
        tail = Path(drive) / "proj_depth" / "groundtruth" / f"image_0{item.camera}" / f"{item.frame:010d}.png"
        candidates = [
            self.annotated_root / "train" / tail,
            self.annotated_root / "val" / tail,
            self.annotated_root / tail,
            self.annotated_root / date / tail,
        ]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise DatasetError(f"missing annotated depth: {candidates[0]} (also looked in val/ and {candidates[2]})")

    def load_depth(self, index: int, width: int, height: int) -> np.ndarray:
        """HxW float32 ground-truth depth (metres, 0 = invalid) of sample ``index``."""
        item = self.frames[index]
        if self.gt == "annotated":
            path = self.annotated_path(index)
            depth = read_depth_png(path)
            if depth.shape != (height, width):
                raise DatasetError(
                    f"annotated depth is {depth.shape[1]}x{depth.shape[0]}, image {width}x{height}: {path}"
                )
        else:
            scan = read_velodyne_bin(self.root / item.drive / "velodyne_points" / "data" / f"{item.frame:010d}.bin")
            calibration = self.calibrations[(Path(item.drive).parts[0], item.camera)]
            depth = velodyne_depth(scan, calibration, width, height)
        if self.densify:
            depth = densify_depth(depth, window=self.densify_window, band=self.densify_band)
        return depth

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.frames[index]
        rgb = read_rgb(self.image_path(index))
        height, width = rgb.shape[:2]
        depth = self.load_depth(index, width, height)
        calibration = self.calibrations[(Path(item.drive).parts[0], item.camera)]
        sample: dict[str, Any] = {
            "image": image_to_tensor(rgb),
            "depth": depth_to_tensor(depth),
            "fx": float(calibration.K[0, 0]),
        }
        return self.transform(sample) if self.transform is not None else sample

"""KITTI raw (Eigen split) as a depth dataset.

Layout read (the raw "sync" download)::

    root/2011_09_26/calib_cam_to_cam.txt          P_rect_02/03, R_rect_00, S_rect_02/03
    root/2011_09_26/calib_velo_to_cam.txt         R, T (Velodyne -> unrectified camera 0)
    root/2011_09_26/2011_09_26_drive_0002_sync/image_02/data/0000000069.png
    root/2011_09_26/2011_09_26_drive_0002_sync/velodyne_points/data/0000000069.bin   float32 x y z reflectance

Split files (:mod:`semantic_depth_ros.data.kitti_split`): monodepth or monodepth2 lines, a path or the name of
an installed split (``eigen_train``, ``eigen_val``, ``eigen_test``).

Ground truth, ``gt="velodyne"``: the Velodyne points projected with the calibration, by one of two procedures:

- ``projection="geometric"`` (default, training): points with x > 0 taken to the rectified camera frame with
  ``P_rect @ R_rect_00 @ velo_to_cam`` and projected with
  :func:`semantic_depth_ros.data.projection.project_points_to_depth` (pixel ``floor(u + 0.5)``, camera z,
  nearest point wins) at the image size; optionally densified with
  :func:`semantic_depth_ros.data.densify.densify_depth`;
- ``projection="reference"`` (evaluation): the published Eigen-split procedure
  (:mod:`semantic_depth_ros.data.kitti_reference_gt`: devkit pixel ``round(u) - 1``, Velodyne-x depth) at the
  calibration's ``S_rect`` size, so numbers compare with the literature.

``gt="annotated"``: the KITTI depth-completion maps (uint16 PNG / 256, 0 = invalid) from the
``data_depth_annotated`` layout ``<annotated_root>/{train,val}/<drive>/proj_depth/groundtruth/image_02/<frame>.png``.
``gt_file``: the maps of every frame precomputed by ``semantic-depth export-gt``
(:class:`semantic_depth_ros.data.depth_archive.DepthArchive`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np
from torch.utils.data import Dataset

from semantic_depth_ros.data.densify import densify_depth
from semantic_depth_ros.data.depth_archive import DepthArchive
from semantic_depth_ros.data.fileio import depth_to_tensor, image_to_tensor, read_depth_png, read_rgb
from semantic_depth_ros.data.kitti_reference_gt import reference_velodyne_depth
from semantic_depth_ros.data.kitti_split import KittiFrame, read_split_file
from semantic_depth_ros.data.projection import project_points_to_depth, transform_points
from semantic_depth_ros.errors import DatasetError

GT_SOURCES = ("velodyne", "annotated")
PROJECTIONS = ("geometric", "reference")
"""How Velodyne ground truth is projected: ours (training) or the published Eigen-split procedure (evaluation)."""

__all__ = ["GT_SOURCES", "PROJECTIONS", "KittiCalibration", "KittiDepthDataset", "KittiFrame", "load_kitti_calibration",
           "parse_calib_file", "read_split_file", "read_velodyne_bin", "velodyne_depth"]


class KittiCalibration(NamedTuple):
    """Calibration of one KITTI colour camera of one recording date."""

    K: np.ndarray
    """3x3 pinhole matrix of the rectified image (pixels)."""
    velo_to_cam: np.ndarray
    """4x4, p_cam = velo_to_cam @ p_velo, camera = the rectified frame of this camera (baseline included)."""
    image_size: tuple[int, int]
    """(width, height) of the rectified image, pixels (S_rect)."""
    velo_to_image: np.ndarray
    """3x4 ``P_rect_0c @ R_rect_00 @ velo_to_cam0``, multiplied in the reference procedure's order."""


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
    return KittiCalibration(K=K, velo_to_cam=offset @ rect @ velo_to_cam0, image_size=(int(size[0]), int(size[1])),
                            velo_to_image=np.dot(np.dot(projection, rect), velo_to_cam0))


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
        projection: str = "geometric",
        gt_file: str | os.PathLike[str] | None = None,
        densify: bool = False,
        annotated_root: str | os.PathLike[str] | None = None,
        densify_window: int = 11,
        densify_band: float = 0.2,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        if gt not in GT_SOURCES:
            raise DatasetError(f"gt must be one of {GT_SOURCES}, got {gt!r}")
        if projection not in PROJECTIONS:
            raise DatasetError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
        if gt_file is not None and gt != "velodyne":
            raise DatasetError(f"gt_file holds projected Velodyne depth; it cannot be combined with gt={gt!r}")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"missing KITTI root folder: {self.root}")
        self.gt = gt
        self.projection = projection
        self.densify = densify
        self.densify_window = densify_window
        self.densify_band = densify_band
        self.annotated_root = Path(annotated_root) if annotated_root is not None else self.root
        self.transform = transform
        self.frames = read_split_file(split_file)
        self.gt_archive = DepthArchive(gt_file, len(self.frames)) if gt_file is not None else None
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

    def calibration(self, index: int) -> KittiCalibration:
        """Calibration of the camera of sample ``index``."""
        item = self.frames[index]
        return self.calibrations[(Path(item.drive).parts[0], item.camera)]

    def _velodyne(self, index: int, width: int, height: int) -> np.ndarray:
        """HxW depth of sample ``index`` from its Velodyne scan, by ``self.projection``."""
        item = self.frames[index]
        scan = read_velodyne_bin(self.root / item.drive / "velodyne_points" / "data" / f"{item.frame:010d}.bin")
        calibration = self.calibration(index)
        if self.projection == "geometric":
            return velodyne_depth(scan, calibration, width, height)
        if (width, height) != calibration.image_size:
            raise DatasetError(f"image of {item.drive} frame {item.frame} is {width}x{height}, calibration S_rect "
                               f"is {calibration.image_size[0]}x{calibration.image_size[1]}: reference ground "
                               "truth is defined at the S_rect size")
        return reference_velodyne_depth(scan, calibration.velo_to_image, width, height)

    def load_depth(self, index: int, width: int, height: int) -> np.ndarray:
        """HxW float32 ground-truth depth (metres, 0 = invalid) of sample ``index`` for an image ``width`` x
        ``height`` (DatasetError when a stored map has another size)."""
        if self.gt_archive is not None:
            depth = self.gt_archive[index]
            if depth.shape != (height, width):
                raise DatasetError(f"gt file {self.gt_archive.path} frame {index:05d} is {depth.shape[1]}x"
                                   f"{depth.shape[0]}, the image is {width}x{height}")
        elif self.gt == "annotated":
            path = self.annotated_path(index)
            depth = read_depth_png(path)
            if depth.shape != (height, width):
                raise DatasetError(
                    f"annotated depth is {depth.shape[1]}x{depth.shape[0]}, image {width}x{height}: {path}"
                )
        else:
            depth = self._velodyne(index, width, height)
        if self.densify:
            depth = densify_depth(depth, window=self.densify_window, band=self.densify_band)
        return depth

    def __getitem__(self, index: int) -> dict[str, Any]:
        rgb = read_rgb(self.image_path(index))
        height, width = rgb.shape[:2]
        depth = self.load_depth(index, width, height)
        calibration = self.calibration(index)
        sample: dict[str, Any] = {
            "image": image_to_tensor(rgb),
            "depth": depth_to_tensor(depth),
            "fx": float(calibration.K[0, 0]),
        }
        return self.transform(sample) if self.transform is not None else sample

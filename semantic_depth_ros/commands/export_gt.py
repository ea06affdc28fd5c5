"""`semantic-depth export-gt`: the ground truth of every frame of a KITTI split in one compressed npz.

By default the published reference procedure (:mod:`semantic_depth_ros.data.kitti_reference_gt`), so that
``semantic-depth evaluate --gt-file`` scores against the same maps as monodepth, monodepth2, BTS and the paper,
without projecting LiDAR again on every run. Layout: :mod:`semantic_depth_ros.data.depth_archive`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..data.depth_archive import write_depth_archive
from ..files import ensure_writable_folder
from ..data.kitti import PROJECTIONS, KittiDepthDataset
from ..errors import ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", required=True, help="KITTI raw root (<date>/calib_*.txt, drives)")
    parser.add_argument("--split-file", "--split", dest="split_file", default="eigen_test",
                        help="split file, or an installed split's name: eigen_test (default), eigen_val, eigen_train")
    parser.add_argument("--out", required=True, help="output .npz (keys 00000, 00001, ... in split order)")
    parser.add_argument("--projection", choices=PROJECTIONS, default="reference",
                        help="reference (published Eigen procedure, default) or geometric (our training targets)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def split_ground_truth(dataset: KittiDepthDataset, *, progress: bool = True) -> Iterator[np.ndarray]:
    """HxW float32 depth (metres, 0 = none) of every frame of ``dataset`` in order, at its calibration's size."""
    for index in tqdm(range(len(dataset)), desc="ground truth", unit="frame", disable=not progress):
        width, height = dataset.calibration(index).image_size
        yield dataset.load_depth(index, width, height)


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ConfigError(f"--out must name a .npz file, got {out}")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as gt_depths.npz")
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists; pass --overwrite to replace it")
    ensure_writable_folder(out.parent, f"--out {out}: folder {out.parent}")  # before projecting every scan
    root = Path(args.root)
    dataset = KittiDepthDataset(root, args.split_file, gt="velodyne", projection=args.projection)
    count = write_depth_archive(out, split_ground_truth(dataset, progress=not args.no_progress))
    print(f"wrote {count} frames ({args.projection} projection) to {out}")
    return 0

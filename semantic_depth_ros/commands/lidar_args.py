"""The options that `extract` and `infer-bag` share: LiDAR pairing (--lidar-frame, --extrinsic, --max-dt) and
--input-rectified."""

from __future__ import annotations

import argparse

import numpy as np

from ..data.tf_chain import parse_extrinsic
from ..geometry.intrinsics import INPUT_RECTIFIED_CHOICES


def add_lidar_pairing_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --lidar-frame, --extrinsic and --max-dt (how clouds are placed in the camera frame and paired)."""
    parser.add_argument("--lidar-frame", default=None, help="frame id of the clouds (overrides their header frame_id)")
    parser.add_argument("--extrinsic", nargs="+", type=float, default=None, metavar="N",
                        help="LiDAR->camera optical frame transform instead of /tf_static: 16 numbers (row-major "
                             "4x4, p_camera = T p_lidar) or 7 (x y z qx qy qz qw)")
    parser.add_argument("--max-dt", type=float, default=0.05,
                        help="largest image-to-scan stamp difference to pair them, seconds (default 0.05)")


def add_input_rectified_argument(parser: argparse.ArgumentParser) -> None:
    """Add --input-rectified, the node's ``input_rectified`` parameter (``geometry.intrinsics.input_is_rectified``)."""
    parser.add_argument("--input-rectified", default="auto", choices=INPUT_RECTIFIED_CHOICES,
                        help="true: the images are already rectified (camera from camera_info P, no undistortion); "
                             "false: raw (K and D, undistorted); auto (default): true when --image-topic ends in "
                             "image_rect or image_rect_color")


def extrinsic_from_args(args: argparse.Namespace) -> np.ndarray | None:
    """The 4x4 LiDAR->camera transform of --extrinsic (``tf_chain.parse_extrinsic``), None when not given."""
    return parse_extrinsic(args.extrinsic) if args.extrinsic is not None else None

"""`semantic-depth extract`: images + projected LiDAR depth from a rosbag into a depth dataset folder."""

from __future__ import annotations

import argparse

from semantic_depth_ros.data.rosbag_extract import extract_bag
from semantic_depth_ros.data.tf_chain import parse_extrinsic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``semantic-depth extract``."""
    parser.add_argument("bag", help="ROS 1 .bag file or ROS 2 bag folder (sqlite3 or mcap)")
    parser.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--camera-info-topic", required=True, help="sensor_msgs/CameraInfo topic of the image")
    parser.add_argument("--lidar-topic", required=True, help="sensor_msgs/PointCloud2 topic (fields x, y, z)")
    parser.add_argument("--out", required=True, help="output folder (rgb/, depth/, intrinsics.json, manifest.jsonl)")
    parser.add_argument("--lidar-frame", default=None, help="frame id of the clouds (overrides their header frame_id)")
    parser.add_argument("--extrinsic", nargs="+", type=float, default=None, metavar="N",
                        help="LiDAR->camera optical frame transform instead of /tf_static: 16 numbers (row-major 4x4, "
                             "p_camera = T p_lidar) or 7 (x y z qx qy qz qw)")
    parser.add_argument("--max-dt", type=float, default=0.05,
                        help="largest image-to-scan stamp difference to pair them, seconds (default 0.05)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run the extraction and print its summary; errors raise ExtractionError."""
    extrinsic = parse_extrinsic(args.extrinsic) if args.extrinsic is not None else None
    summary = extract_bag(
        args.bag,
        image_topic=args.image_topic,
        camera_info_topic=args.camera_info_topic,
        lidar_topic=args.lidar_topic,
        out_dir=args.out,
        lidar_frame=args.lidar_frame,
        extrinsic=extrinsic,
        max_dt=args.max_dt,
        progress=not args.no_progress,
    )
    print(summary.line())
    return 0

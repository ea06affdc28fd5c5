"""`semantic-depth extract`: images + projected LiDAR depth from a rosbag into a depth dataset folder."""

from __future__ import annotations

import argparse

from semantic_depth_ros.data.rosbag_extract import extract_bag

from .lidar_args import add_input_rectified_argument, add_lidar_pairing_arguments, extrinsic_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``semantic-depth extract``."""
    parser.add_argument("bag", help="ROS 1 .bag file or ROS 2 bag folder (sqlite3 or mcap)")
    parser.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--camera-info-topic", required=True, help="sensor_msgs/CameraInfo topic of the image")
    parser.add_argument("--lidar-topic", required=True, help="sensor_msgs/PointCloud2 topic (fields x, y, z)")
    parser.add_argument("--out", required=True, help="output folder (rgb/, depth/, intrinsics.json, manifest.jsonl)")
    add_lidar_pairing_arguments(parser)
    add_input_rectified_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run the extraction and print its summary; errors raise ExtractionError."""
    extrinsic = extrinsic_from_args(args)
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
        input_rectified=args.input_rectified,
    )
    print(summary.line())
    return 0

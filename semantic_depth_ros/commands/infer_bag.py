"""`semantic-depth infer-bag`: run a model over a recorded drive offline and write the node's outputs into a new
ROS 2 bag (optionally scored against the drive's LiDAR)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..devices import PRECISIONS
from ..errors import ConfigError, InvalidInputError
from ..geometry.pointcloud import DEFAULT_POINT_FIELDS, POINT_LAYOUTS, check_drop_labels
from ..inference.runners import BACKENDS
from ..labels import NUM_CLASSES
from ..messages import OUTPUT_TOPICS
from ..pipeline import CloudLayout
from ..replay.bag_writer import STORAGES, check_destination
from ..replay.frames import Selection
from ..replay.pipeline import ReplayOptions
from ..replay.run import BagRun, ModelSpec, run_bag
from ..temporal import parse_camera_extrinsic
from ..replay.topics import DEFAULT_OUTPUTS, default_camera_info_topic, parse_outputs
from .lidar_args import add_input_rectified_argument, add_lidar_pairing_arguments, extrinsic_from_args
from .road_scale_args import add_road_scale_arguments, road_scale_settings_from_args
from .temporal_args import add_temporal_arguments, temporal_settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``semantic-depth infer-bag``."""
    parser.add_argument("bag", help="ROS 1 .bag file or ROS 2 bag folder (sqlite3 or mcap)")
    parser.add_argument("--out", required=True, help="output ROS 2 bag folder (must not exist unless --overwrite)")
    add_replay_arguments(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--benchmark", action="store_true",
                        help="also time the bare estimator on the same frames (held in memory) and print the ratio")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of one replay (model, topics, outputs, selection, scoring, stages): infer-bag's and fleet's."""
    parser.add_argument("--image-topic", required=True, help="sensor_msgs/Image or CompressedImage topic")
    parser.add_argument("--camera-info-topic", default=None,
                        help="sensor_msgs/CameraInfo topic (default: camera_info beside the image topic)")
    parser.add_argument("--checkpoint", required=True, help="model: a .pt checkpoint (or an exported .onnx)")
    parser.add_argument("--outputs", default=",".join(DEFAULT_OUTPUTS),
                        help=f"comma-separated subset of {','.join(k for k in OUTPUT_TOPICS if k != 'depth_info')} "
                             f"(default {','.join(DEFAULT_OUTPUTS)}; depth/camera_info is always written beside "
                             "depth and points)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS, help="network precision (default auto)")
    parser.add_argument("--backend", default="auto", choices=BACKENDS, help="network backend (default auto)")
    parser.add_argument("--num-threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--batch", type=int, default=8, help="frames per network batch (default 8)")
    parser.add_argument("--point-stride", type=int, default=1,
                        help="keep every N-th row and column in points (default 1)")
    parser.add_argument("--point-fields", default=DEFAULT_POINT_FIELDS, choices=tuple(POINT_LAYOUTS),
                        help=f"layout of points, as the node's point_fields parameter (default {DEFAULT_POINT_FIELDS}; "
                             "xyzrgbl adds "
                             "each point's Cityscapes train id, xyzrgblc also its confidence)")
    parser.add_argument("--drop-labels", default="",
                        help="comma-separated Cityscapes train ids whose points are NaN, as the node's "
                             "points_drop_labels (e.g. 10 drops the sky)")
    parser.add_argument("--copy-input", action="store_true",
                        help="also copy the image and camera_info topics and /tf, /tf_static into the output")
    parser.add_argument("--storage", default="mcap", choices=tuple(STORAGES), help="output storage (default mcap)")
    parser.add_argument("--every", type=int, default=1, help="process every N-th image (default 1: all)")
    parser.add_argument("--start", type=float, default=None, help="first image time, seconds from the bag start")
    parser.add_argument("--end", type=float, default=None, help="last image time, seconds from the bag start")
    parser.add_argument("--lidar-topic", default=None,
                        help="sensor_msgs/PointCloud2 topic: score depth against it (metrics.json, metrics.csv, "
                             "report.md in --out)")
    add_lidar_pairing_arguments(parser)
    add_input_rectified_argument(parser)
    add_road_scale_arguments(parser, switch=True,
                             window_help="accepted frames the scale is the median of (default: the node's)")
    add_temporal_arguments(parser, switch=True)


def parse_drop_labels(text: str) -> tuple[int, ...]:
    """``--drop-labels`` ("10" or "0,1,10") as sorted unique train ids; ConfigError naming a bad item."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        ids = check_drop_labels([int(item) for item in items])
    except (ValueError, InvalidInputError):
        raise ConfigError(f"--drop-labels {text!r} must be comma-separated Cityscapes train ids (integers in "
                          f"0..{NUM_CLASSES - 1})") from None
    return tuple(sorted(set(ids)))


def options_from(args: argparse.Namespace) -> ReplayOptions:
    """Checked replay options of the parsed arguments (ConfigError naming a bad value)."""
    if args.batch < 1:
        raise ConfigError(f"--batch {args.batch} must be at least 1")
    if args.point_stride < 1:
        raise ConfigError(f"--point-stride {args.point_stride} must be at least 1")
    if args.lidar_topic is None and (args.lidar_frame is not None or args.extrinsic is not None):
        raise ConfigError("--lidar-frame and --extrinsic need --lidar-topic")
    extrinsic = extrinsic_from_args(args)
    if args.odom_topic is None and args.camera_extrinsic is not None:
        raise ConfigError("--camera-extrinsic needs --odom-topic")
    if args.odom_topic is not None and args.temporal == "static":
        raise ConfigError("--odom-topic is unused with --temporal static (it ignores camera poses): leave one out")
    camera_extrinsic = None
    if args.camera_extrinsic is not None:
        camera_extrinsic = parse_camera_extrinsic(args.camera_extrinsic)
    return ReplayOptions(
        image_topic=args.image_topic,
        camera_info_topic=args.camera_info_topic or default_camera_info_topic(args.image_topic),
        outputs=parse_outputs(args.outputs), batch=args.batch, storage=args.storage, copy_input=args.copy_input,
        overwrite=getattr(args, "overwrite", False), selection=Selection(args.every, args.start, args.end),
        cloud=CloudLayout(args.point_fields, parse_drop_labels(args.drop_labels), args.point_stride),
        lidar_topic=args.lidar_topic, lidar_frame=args.lidar_frame,
        extrinsic=extrinsic, max_dt=args.max_dt, progress=not getattr(args, "no_progress", True),
        odom_topic=args.odom_topic, camera_extrinsic=camera_extrinsic, input_rectified=args.input_rectified)


def bag_run_from(args: argparse.Namespace) -> BagRun:
    """The checked run of the parsed arguments (ConfigError naming a bad value)."""
    options = options_from(args)
    run = BagRun(ModelSpec(args.checkpoint, device=args.device, precision=args.precision, backend=args.backend,
                           num_threads=args.num_threads),
                 options, road_scale=road_scale_settings_from_args(args),
                 temporal=temporal_settings_from_args(args, args.temporal), benchmark=getattr(args, "benchmark", False))
    if run.benchmark and (run.road_scale is not None or run.temporal is not None):
        raise ConfigError("--benchmark times the network and the message path alone: leave out --scale-from-road "
                          "and --temporal")
    return run


def main(args: argparse.Namespace) -> int:
    """Replay the bag, print the summary line (and the benchmark line with ``--benchmark``)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    run = bag_run_from(args)
    out = Path(args.out)
    check_destination(out, run.options.overwrite)
    for line in run_bag(args.bag, out, run).lines:
        print(line)
    return 0

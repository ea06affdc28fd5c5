"""`semantic-depth node`: the depth node from the package's command line (options become ROS arguments)."""

from __future__ import annotations

import argparse

from ..ros.params import SPECS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``semantic-depth node``; everything after ``--ros-args`` goes to ROS unchanged."""
    parser.add_argument("--model-path", help="checkpoint (.pt) or ONNX model (.onnx) (sets the model_path parameter)")
    parser.add_argument("--params-file", help="parameters YAML (e.g. the installed config/depth_node.yaml)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (sets the device parameter)")
    parser.add_argument("--precision", choices=SPECS["precision"].choices, help="sets the precision parameter")
    parser.add_argument("--backend", choices=SPECS["backend"].choices, help="sets the backend parameter")
    parser.add_argument("--ros-args", dest="ros_args", nargs=argparse.REMAINDER, default=[],
                        help="ROS arguments, e.g. --ros-args -r image:=/camera/image_raw -p point_stride:=2")


def ros_argv(args: argparse.Namespace) -> list[str]:
    """The rclpy argument vector for ``semantic-depth node`` options (options come before user --ros-args)."""
    ros: list[str] = []
    if args.params_file:
        ros += ["--params-file", args.params_file]
    for name, value in (("model_path", args.model_path), ("device", args.device), ("precision", args.precision),
                        ("backend", args.backend)):
        if value:
            ros += ["-p", f"{name}:={value}"]
    ros += list(args.ros_args)
    return ["semantic-depth-node", "--ros-args", *ros] if ros else ["semantic-depth-node"]


def main(args: argparse.Namespace) -> int:
    """``semantic-depth node``: spin the node until SIGINT; 1 with ``error: ...`` when it cannot start."""
    from ..ros.node import run  # rclpy only when the node runs

    return run(ros_argv(args))

"""`semantic-depth`: one command line with sub-commands; user mistakes print ``error: ...`` and exit 1.

Each sub-command lives in its own module (imported only when used, so ``semantic-depth train`` never
imports rclpy) exposing ``add_arguments(parser)`` and ``main(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .errors import SemanticDepthError

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("semantic_depth_ros.commands.demo",
             "train on generated scenes, evaluate, run the ROS 2 node, write a report"),
    "node": ("semantic_depth_ros.commands.node",
             "run the depth node (same as `ros2 run semantic_depth_ros depth_node`)"),
    "init-checkpoint": ("semantic_depth_ros.commands.init_checkpoint", "write an UNTRAINED checkpoint from a preset"),
    "bench": ("semantic_depth_ros.commands.bench", "measure model and end-to-end node latency on this machine"),
    "bench-decode": ("semantic_depth_ros.commands.bench_decode",
                     "measure input decoding (Bayer, YUV, rgb8) at real camera sizes beside the network's time"),
    "train": ("semantic_depth_ros.commands.train",
              "train (phase 1 conditional flow / phase 2 regression) from a YAML config"),
    "evaluate": ("semantic_depth_ros.commands.evaluate",
                 "KITTI Eigen / extracted / generated evaluation of a checkpoint"),
    "export-gt": ("semantic_depth_ros.commands.export_gt",
                  "KITTI ground truth of a split (published reference projection) as one compressed npz"),
    "extract": ("semantic_depth_ros.commands.extract", "extract images + LiDAR depth from a rosbag into a dataset"),
    "export": ("semantic_depth_ros.commands.export",
               "export a checkpoint to ONNX (with metadata) and check its parity with PyTorch"),
    "infer-bag": ("semantic_depth_ros.commands.infer_bag",
                  "run a model over a recorded drive offline: the node's outputs into a new bag, LiDAR scores"),
    "fleet": ("semantic_depth_ros.commands.fleet",
              "validate a model on many recorded drives on Ray: infer-bag per drive, one fleet report"),
    "scale-eval": ("semantic_depth_ros.commands.scale_eval",
                   "measure scale from the road on generated scenes: depth scaled by E, then corrected"),
    "ablate": ("semantic_depth_ros.commands.ablate", "train DRN, DC-DRN and DSC-DRN on generated scenes and compare"),
    "temporal-eval": ("semantic_depth_ros.commands.temporal_eval",
                      "flicker, accuracy and cost of the temporal depth filter on a generated drive"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the selected sub-command's module is imported to add its arguments."""
    parser = argparse.ArgumentParser(prog="semantic-depth", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == selected:
            importlib.import_module(module_name).add_arguments(sub)
    return parser


def run_command(name: str, argv: Sequence[str]) -> int:
    """Parse ``argv`` for sub-command ``name`` and run it, converting package errors to one line."""
    module = importlib.import_module(COMMANDS[name][0])
    parser = build_parser(name)
    args = parser.parse_args([name, *argv])
    try:
        return int(module.main(args) or 0)
    except SemanticDepthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``semantic-depth``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        parser = build_parser()
        if command is None:
            parser.parse_args(argv)  # handles --help / --version
            parser.print_help()
            return 2
        parser.error(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    index = argv.index(command)
    return run_command(command, argv[:index] + argv[index + 1:])


def train_main() -> int:
    """Entry point of ``ros2 run semantic_depth_ros train``."""
    return run_command("train", sys.argv[1:])


def extract_main() -> int:
    """Entry point of ``ros2 run semantic_depth_ros extract_rosbag``."""
    return run_command("extract", sys.argv[1:])


def export_main() -> int:
    """Entry point of ``ros2 run semantic_depth_ros export``."""
    return run_command("export", sys.argv[1:])


def infer_bag_main() -> int:
    """Entry point of ``ros2 run semantic_depth_ros infer_bag``."""
    return run_command("infer-bag", sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())

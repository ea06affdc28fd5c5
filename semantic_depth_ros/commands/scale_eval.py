"""`semantic-depth scale-eval`: how well scale from the road undoes a wrong depth scale, on generated scenes.

Renders consecutive held-out street frames (seed ``SCALE_EVAL_SEED``) with a known camera height, runs the model,
multiplies its depth by ``--scale-error`` (a stand-in for a new vehicle) and scores the depth unscaled, scaled
and scaled-then-corrected from the road against the rendered truth; reports the recovered scale (median and
spread over frames) and the fraction of frames accepted. Strict JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..data.fileio import write_json
from ..files import ensure_writable_folder
from ..errors import ConfigError
from ..evaluation.evaluate import load_eval_estimator
from ..evaluation.scale_eval import (DEFAULT_DOMAIN, DEFAULT_FRAMES, SCALE_EVAL_SEED, check_scale_error,
                                     format_scale_report, measure_road_scale, nominal_camera_height)
from ..roadscale import RoadScaleSettings
from .generated_scenes import CAMERA_SIZE
from .road_scale_args import add_road_scale_arguments, road_scale_settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) or ONNX model (.onnx)")
    parser.add_argument("--scale-error", type=float, required=True, metavar="E",
                        help="factor the model's depth is multiplied by before the correction (e.g. 0.75, 1.25)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES,
                        help=f"consecutive generated frames (default {DEFAULT_FRAMES})")
    parser.add_argument("--domain", default=DEFAULT_DOMAIN, help=f"generated domain (default {DEFAULT_DOMAIN})")
    parser.add_argument("--seed", type=int, default=SCALE_EVAL_SEED,
                        help=f"seed of the frames (default {SCALE_EVAL_SEED}, never used in training)")
    parser.add_argument("--height", type=int, default=CAMERA_SIZE[0], help=f"image height, px ({CAMERA_SIZE[0]})")
    parser.add_argument("--width", type=int, default=CAMERA_SIZE[1], help=f"image width, px ({CAMERA_SIZE[1]})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16, or fp16 on CUDA (default: fp32)")
    parser.add_argument("--json", default=None, help="also write the report (with every frame) to this JSON file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_road_scale_arguments(parser, switch=False,
                             height_help="camera height the correction is told, metres (default: the domain's "
                                         "nominal height, 1.65 for kitti_like)",
                             window_help="accepted frames in the median that smooths the scale (default "
                                         f"{RoadScaleSettings.scale_window}, the node's)")


def main(args: argparse.Namespace) -> int:
    check_scale_error(args.scale_error)
    if args.json:  # before the measurement, not after it
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json} is a folder; give a file name such as scale.json")
        ensure_writable_folder(Path(args.json).parent, f"--json {args.json}: folder {Path(args.json).parent}")
    settings = road_scale_settings_from_args(args, enabled=True,
                                             defaults={"camera_height": nominal_camera_height(args.domain)})
    estimator = load_eval_estimator(args.checkpoint, device=args.device, precision=args.precision)
    estimator.require_outputs(("depth", "semantic"))
    if not estimator.trained:
        print(f"WARNING: {args.checkpoint} is an UNTRAINED checkpoint: its road labels are noise.", file=sys.stderr)
    report = measure_road_scale(estimator, settings, scale_error=args.scale_error, frames=args.frames,
                                domain=args.domain, seed=args.seed, height=args.height, width=args.width,
                                progress=not args.no_progress)
    report = {"checkpoint": args.checkpoint, **report}
    print(format_scale_report(report), end="")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0

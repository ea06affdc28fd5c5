"""`semantic-depth temporal-eval`: the temporal filter's flicker, accuracy and cost on a generated drive.

Runs the checkpoint over a generated driving sequence (camera poses known, one independently moving car) and
compares the filter off, on with the true poses, and on without poses (``evaluation.temporal_eval``). Prints a
Markdown table; ``--json FILE`` writes every number as strict JSON.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..data.fileio import write_json
from ..files import ensure_writable_folder
from ..errors import ConfigError
from ..evaluation.temporal_eval import (DEFAULT_FRAMES, DEFAULT_SEED, DEFAULT_SIZE, evaluate_temporal,
                                        format_temporal_report)
from .temporal_args import add_temporal_arguments, temporal_settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) or ONNX model (.onnx)")
    parser.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help=f"frames (default: {DEFAULT_FRAMES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"sequence seed (default: {DEFAULT_SEED})")
    parser.add_argument("--height", type=int, default=DEFAULT_SIZE[0], help=f"px (default: {DEFAULT_SIZE[0]})")
    parser.add_argument("--width", type=int, default=DEFAULT_SIZE[1], help=f"px (default: {DEFAULT_SIZE[1]})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16, or fp16 on CUDA (default: fp32)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: torch's; 1 gives steadier times on a shared CPU)")
    parser.add_argument("--json", default=None, metavar="FILE", help="write the results as JSON to FILE")
    add_temporal_arguments(parser, switch=False)


def main(args: argparse.Namespace) -> int:
    settings = temporal_settings_from_args(args, "auto")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads {args.threads} must be at least 1")
        torch.set_num_threads(args.threads)
    if args.json is not None:  # before the work, not after it
        ensure_writable_folder(Path(args.json).resolve().parent, f"--json {args.json}")
    result = evaluate_temporal(args.checkpoint, frames=args.frames, seed=args.seed, height=args.height,
                               width=args.width, device=args.device, precision=args.precision, settings=settings)
    if not result["trained"]:
        print(f"WARNING: {args.checkpoint} is an UNTRAINED checkpoint: its numbers only test the plumbing.",
              file=sys.stderr)
    print(format_temporal_report(result))
    if args.json is not None:
        print(f"wrote {write_json(args.json, result)}")
    return 0

"""`semantic-depth evaluate`: Eigen depth metrics (caps 50/80 m) and semantic mIoU of a checkpoint.

Depth on KITTI (the Eigen split by name or any split file; Velodyne ground truth by the published reference
procedure unless ``--gt-projection geometric``, precomputed with ``--gt-file``, or annotated), on a folder written by
``semantic-depth extract``, or on generated scenes; semantics on Cityscapes or generated scenes. With
``--scale-from-road --camera-height H`` (KITTI: 1.65) each frame's depth is first corrected by scale from the road
(per frame, holding the last accepted scale). Prints the Markdown report (the paper's Table I rows beside ours)
and, with ``--out DIR``, writes ``DIR/evaluation.json`` and ``DIR/evaluation.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..files import ensure_writable_folder
from ..data.kitti import PROJECTIONS
from ..errors import ConfigError
from ..evaluation.evaluate import (
    DEFAULT_CAPS,
    DEFAULT_SYNTHETIC_COUNT,
    DEPTH_DATASET_KINDS,
    SEMANTIC_DATASET_KINDS,
    SYNTHETIC_DOMAINS,
    build_eval_dataset,
    check_caps,
    describe_eval_dataset,
    evaluate_depth,
    evaluate_semantic,
    evaluation_results,
    load_eval_estimator,
    method_name,
)
from ..evaluation.metrics import CROPS
from ..evaluation.report import format_report, write_report
from ..roadscale import RoadScale
from .road_scale_args import add_road_scale_arguments, road_scale_settings_from_args

REPORT_STEM = "evaluation"
EVAL_SCALE_WINDOW = 1
"""--scale-from-road: per-frame scale (with hold) unless --scale-window says otherwise."""
DEFAULT_SYNTHETIC_SEED = 2024
"""Seed of the generated test scenes: distinct from the training configs' seeds, so the frames are held out."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pt) or ONNX model (.onnx) to evaluate")
    parser.add_argument("--label", default=None, help="method name in the tables (default: checkpoint file name)")
    depth = parser.add_argument_group("depth dataset")
    depth.add_argument("--dataset", choices=(*DEPTH_DATASET_KINDS, "none"), default="synthetic",
                       help="depth dataset (default: synthetic)")
    depth.add_argument("--root", default=None, help="KITTI raw root, or the folder written by `semantic-depth extract`")
    depth.add_argument("--split-file", "--split", dest="split_file", default="eigen_test",
                       help="KITTI split file, or an installed split's name (default: eigen_test; eigen_val)")
    depth.add_argument("--gt", choices=("velodyne", "annotated"), default="velodyne",
                       help="KITTI ground truth: projected Velodyne scans or the depth-completion maps")
    depth.add_argument("--gt-projection", choices=PROJECTIONS, default="reference",
                       help="Velodyne projection: reference (published Eigen procedure, default) or geometric")
    depth.add_argument("--gt-file", default=None,
                       help="ground truth written by `semantic-depth export-gt` (npz), instead of projecting scans")
    depth.add_argument("--annotated-root", default=None, help="root of KITTI data_depth_annotated (default: --root)")
    depth.add_argument("--caps", type=float, nargs="+", default=list(DEFAULT_CAPS), metavar="M",
                       help="maximum evaluated depths in metres (default: 50 80)")
    depth.add_argument("--min-depth", type=float, default=1.0, help="minimum evaluated depth, metres (default: 1)")
    depth.add_argument("--crop", choices=CROPS, default=None,
                       help="evaluation crop (default: garg for kitti, none otherwise)")
    generated = parser.add_argument_group("generated scenes (--dataset synthetic / --semantic synthetic)")
    generated.add_argument("--domain", default=None, help="domain of the generated depth scenes "
                           f"(default: {SYNTHETIC_DOMAINS['depth']})")
    generated.add_argument("--semantic-domain", default=None, help="domain of the generated semantic "
                           f"scenes (default: {SYNTHETIC_DOMAINS['semantic']})")
    generated.add_argument("--count", type=int, default=DEFAULT_SYNTHETIC_COUNT, help="number of generated frames")
    generated.add_argument("--seed", type=int, default=DEFAULT_SYNTHETIC_SEED, help="seed of the generated frames")
    generated.add_argument("--height", type=int, default=None, help="generated image height, px (default: native)")
    generated.add_argument("--width", type=int, default=None, help="generated image width, px (default: native)")
    semantic = parser.add_argument_group("semantic dataset")
    semantic.add_argument("--semantic", choices=(*SEMANTIC_DATASET_KINDS, "none"), default="none",
                          help="semantic dataset for mIoU (default: none)")
    semantic.add_argument("--semantic-root", default=None, help="Cityscapes root (leftImg8bit/, gtFine/)")
    semantic.add_argument("--semantic-split", default="val", help="Cityscapes split (default: val)")
    add_road_scale_arguments(
        parser, switch=True,
        window_help=f"accepted frames in the median that smooths the scale (default {EVAL_SCALE_WINDOW}: each "
                    "frame is corrected by its own road, a test split being no continuous stream; a frame "
                    "without an accepted road holds the last accepted scale, 1 before the first)")
    run = parser.add_argument_group("run")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    run.add_argument("--precision", default="fp32", help="fp32, bf16, or fp16 on CUDA (default: fp32)")
    run.add_argument("--limit", type=int, default=None, help="evaluate at most N images of each dataset")
    run.add_argument("--out", default=None, help=f"folder for {REPORT_STEM}.json and {REPORT_STEM}.md")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")


def _synthetic_options(args: argparse.Namespace, domain: str | None, task: str) -> dict[str, Any]:
    """Options of a generated dataset from the command line (domain defaults to the task's own domain)."""
    return {
        "domain": domain if domain is not None else SYNTHETIC_DOMAINS[task],
        "task": task,
        "count": args.count,
        "seed": args.seed,
        "height": args.height,
        "width": args.width,
    }


def _depth_options(args: argparse.Namespace) -> dict[str, Any]:
    """``build_eval_dataset`` options of the depth dataset selected by ``--dataset``."""
    if args.dataset == "kitti":
        projection = args.gt_projection if args.gt == "velodyne" and args.gt_file is None else None
        return {"root": args.root, "split_file": args.split_file, "gt": args.gt, "projection": projection,
                "gt_file": args.gt_file, "annotated_root": args.annotated_root}
    if args.dataset == "extracted":
        return {"root": args.root}
    return _synthetic_options(args, args.domain, "depth")


def _semantic_options(args: argparse.Namespace) -> dict[str, Any]:
    """``build_eval_dataset`` options of the semantic dataset selected by ``--semantic``."""
    if args.semantic == "cityscapes":
        return {"root": args.semantic_root, "split": args.semantic_split}
    return _synthetic_options(args, args.semantic_domain, "semantic")


def main(args: argparse.Namespace) -> int:
    progress = not args.no_progress
    if args.out is not None:  # before the evaluation, not after it
        ensure_writable_folder(Path(args.out), f"--out {args.out}")
    if args.dataset != "none":
        check_caps(args.caps, args.min_depth)
    road_settings = road_scale_settings_from_args(args, defaults={"scale_window": EVAL_SCALE_WINDOW})
    if road_settings is not None and args.dataset == "none":
        raise ConfigError("--scale-from-road corrects depth, but --dataset none evaluates no depth")
    datasets: dict[str, tuple[Any, str]] = {}
    selected = (("depth", args.dataset, _depth_options), ("semantic", args.semantic, _semantic_options))
    for task, kind, options in selected:
        if kind != "none":
            given = options(args)
            datasets[task] = (build_eval_dataset(kind, **given), describe_eval_dataset(kind, **given))
    if not datasets:
        raise ConfigError("nothing to evaluate: --dataset none and --semantic none")

    estimator = load_eval_estimator(args.checkpoint, device=args.device, precision=args.precision)
    # the tasks are the outputs (an .onnx may lack a head); the road needs the semantic head
    estimator.require_outputs(tuple(datasets) + (("semantic",) if road_settings is not None else ()))
    if not estimator.trained:
        print(f"WARNING: {args.checkpoint} is an UNTRAINED checkpoint: its metrics are meaningless.", file=sys.stderr)
    method = method_name(args.checkpoint, args.label, trained=estimator.trained)
    road = RoadScale(road_settings) if road_settings is not None else None
    if road is not None:
        method += " + road scale"
    crop = args.crop if args.crop is not None else ("garg" if args.dataset == "kitti" else "none")

    depth = semantic = None
    if "depth" in datasets:
        depth = evaluate_depth(estimator, datasets["depth"][0], caps=args.caps, min_depth=args.min_depth,
                               crop=crop, limit=args.limit, progress=progress, road_scale=road)
    if "semantic" in datasets:
        semantic = evaluate_semantic(estimator, datasets["semantic"][0], limit=args.limit, progress=progress)
    results = evaluation_results(
        method=method,
        checkpoint=args.checkpoint,
        trained=estimator.trained,
        depth=depth,
        semantic=semantic,
        depth_dataset=datasets["depth"][1] if "depth" in datasets else None,
        semantic_dataset=datasets["semantic"][1] if "semantic" in datasets else None,
        min_depth=args.min_depth if depth is not None else None,
        crop=crop if depth is not None else None,
        road_scale=road.summary() if road is not None else None,
        extra={"model": estimator.model_name, "device": str(estimator.device), "precision": args.precision,
               "runtime": estimator.runner.description},
    )
    print(format_report(results), end="")
    if args.out is not None:
        json_path, md_path = write_report(Path(args.out) / REPORT_STEM, results)
        print(f"wrote {json_path} and {md_path}")
    return 0

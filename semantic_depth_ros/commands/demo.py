"""`semantic-depth demo`: the whole product on a fresh machine, from nothing, in a few minutes on a CPU.

1. trains DSC-DRN on generated street scenes: phase 1 (conditional flow: depth-only kitti_like batches and
   semantic-only cityscapes_like batches) then phase 2 (DRN regression layers, L1 and a log-depth gradient term);
   ``--size small`` (the default without CUDA) is minutes on 2 CPU cores, ``full`` (the default on CUDA) trains the
   network a vehicle runs;
2. evaluates the model on held-out generated frames (depth: Eigen metrics, cap 80 m; semantics: mIoU);
3. starts the real ROS 2 depth node in its own process and streams held-out camera frames through it over DDS;
   then a held-out drive with its odometry through a node with ``scale_from_road`` on, ``temporal_filter`` off and
   then on;
4. writes what a person wants to look at into the run folder: per frame the input, depth colours, semantic
   colours, confidence, an error map against the known depth and a PLY point cloud; ``metrics.json`` (of what the
   node published: Eigen depth metrics, depth abs rel per true class, depth-boundary errors, per-class IoU, the
   drive's flicker and road scale), ``report.md``/``report.json`` (the paper's table layout, and the same) and
   ``summary.png``, one page of all of it with the point cloud seen from behind and above the camera.

Re-running with the same ``--out`` reuses finished training phases (and resumes an interrupted one).
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.fileio import write_json
from ..data.synthetic import SyntheticFrame
from ..data.synthetic.prerender import prerender, render_frames
from ..devices import resolve_device, resolve_precision
from ..errors import ConfigError
from ..evaluation.cloud_view import ObliqueView, cloud_views
from ..evaluation.colorbar import with_depth_scale
from ..evaluation.evaluate import build_eval_dataset, evaluate_depth, evaluate_semantic, load_eval_estimator
from ..evaluation.metrics import DepthMetricAccumulator, SemanticConfusion
from ..evaluation.object_metrics import OBJECT_CLASSES, BoundaryAccumulator, ClassDepthAccumulator
from ..evaluation.report import write_report
from ..evaluation.scale_eval import nominal_camera_height
from ..evaluation.visualize import confidence_image, error_map, summary_sheet, write_ply, write_rgb_png
from ..labels import CITYSCAPES_TRAIN_ID_NAMES
from ..model.checkpoint import load_checkpoint
from ..training.config import TrainConfig
from ..training.run_folder import MODEL_FILE
from .demo_drive import drive_lines, run_drive_stage
from .generated_scenes import (
    CAMERA_SIZE,
    HELDOUT_SEED,
    MIN_DEPTH_M,
    SIZES,
    load_demo_config,
    train_or_reuse,
    with_steps,
)

CAP_M = 80.0
TARGET_ABS_REL = 0.15
SKY = CITYSCAPES_TRAIN_ID_NAMES.index("sky")


@dataclass
class DemoPaths:
    """Where the demo writes; everything lives under ``root``."""

    root: Path

    def phase(self, phase: int) -> Path:
        return self.root / f"phase{phase}"

    def frame(self, index: int) -> Path:
        return self.root / "frames" / f"{index:03d}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (default: runs/demo)")
    parser.add_argument("--frames", type=int, default=24,
                        help="held-out camera frames streamed through the node and scored (24: the per-class figures "
                             "rest on a few dozen cars and poles, not on one near object)")
    parser.add_argument("--saved-frames", type=int, default=8,
                        help="of those, how many are written to frames/NNN (pictures, depth.npy, points.ply)")
    parser.add_argument("--eval-count", type=int, default=40, help="held-out frames for the model evaluation")
    parser.add_argument("--drive-frames", type=int, default=10,
                        help="frames of the held-out drive streamed with temporal_filter off and on (0: none)")
    parser.add_argument("--size", choices=("auto", *SIZES), default="auto",
                        help="small: minutes on 2 CPU cores; full: the vehicle's network, minutes on a GPU "
                             "(auto: full on CUDA, else small)")
    parser.add_argument("--phase1-steps", type=int, default=None, help="override phase 1's step count")
    parser.add_argument("--phase2-steps", type=int, default=None, help="override phase 2's step count")
    parser.add_argument("--device", default="auto", help="training and node device: auto | cpu | cuda[:N]")
    parser.add_argument("--retrain", action="store_true", help="train again even if the run folder has models")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads of training and evaluation (default: one per core; 1 on a machine "
                             "busy with other work, where threads waiting for each other cost more than they give)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def demo_size(args: argparse.Namespace) -> str:
    """``--size``, with ``auto`` resolved: ``full`` on CUDA, ``small`` otherwise."""
    if args.size != "auto":
        return args.size
    return "full" if resolve_device(args.device).type == "cuda" else "small"


def phase_config(phase: int, paths: DemoPaths, args: argparse.Namespace) -> TrainConfig:
    """The demo config of ``phase`` and ``--size`` with the run folder, device, precision (``auto``: bf16 on a CPU
    with native bf16, fp16 on CUDA, else fp32) and step overrides applied."""
    config = load_demo_config(phase, demo_size(args))
    steps = args.phase1_steps if phase == 1 else args.phase2_steps
    if steps is not None:
        config = with_steps(config, steps)
    device = resolve_device(args.device)
    changes: dict[str, Any] = {"out_dir": str(paths.phase(phase)), "device": args.device,
                               "precision": resolve_precision("auto", device)}
    if phase == 2:
        changes["init_from"] = str(paths.phase(1) / MODEL_FILE)
    return config.replace(**changes)


def evaluate_model(checkpoint: Path, args: argparse.Namespace) -> tuple[dict[float, dict], dict[str, Any]]:
    """Depth metrics on held-out kitti_like frames and mIoU on held-out cityscapes_like frames."""
    estimator = load_eval_estimator(checkpoint, device=args.device)
    height, width = CAMERA_SIZE
    depth_set = build_eval_dataset("synthetic", domain="kitti_like", task="depth", count=args.eval_count,
                                   seed=HELDOUT_SEED, height=height, width=width)
    semantic_set = build_eval_dataset("synthetic", domain="cityscapes_like", task="semantic",
                                      count=args.eval_count, seed=HELDOUT_SEED, height=256, width=512)
    prerender([depth_set, semantic_set])
    progress = not args.no_progress
    depth = evaluate_depth(estimator, depth_set, caps=(50.0, CAP_M), min_depth=MIN_DEPTH_M, crop="none",
                           progress=progress)
    return depth, evaluate_semantic(estimator, semantic_set, progress=progress)


def heldout_frames(count: int) -> list[SyntheticFrame]:
    """Camera frames of the kitti_like domain never used in training or validation."""
    height, width = CAMERA_SIZE
    return render_frames("kitti_like", range(count), seed=HELDOUT_SEED + 1, height=height, width=width)


def save_frame(paths: DemoPaths, index: int, frame: SyntheticFrame, out: Any,
               depth_range: tuple[float, float]) -> dict[str, np.ndarray]:
    """Write one frame's pictures (the depth colours with their scale over ``depth_range`` metres) and point
    cloud; returns the tiles used on the summary sheet."""
    folder = paths.frame(index)
    tiles = {
        "input": frame.rgb,
        "depth (node)": out.depth_color,
        "semantics (node)": out.semantic_color,
        "confidence": confidence_image(out.confidence),
        "rel. error vs truth": error_map(out.depth, frame.depth),
    }
    for name, file_name in zip(tiles, ("input", "depth_color", "semantic_color", "confidence", "error_map")):
        image = with_depth_scale(tiles[name], *depth_range) if file_name == "depth_color" else tiles[name]
        write_rgb_png(folder / f"{file_name}.png", image)
    write_ply(folder / "points.ply", out.points)
    np.save(folder / "depth.npy", out.depth)
    return tiles


def node_depth_range(checkpoint: Path) -> tuple[float, float]:
    """Metres over which the node colours ``depth/color`` with its default parameters: the checkpoint's range."""
    config = load_checkpoint(checkpoint).config
    return config.min_depth, config.max_depth


def cloud_tiles(out: Any) -> list[tuple[str, np.ndarray]]:
    """The node's cloud of one frame from behind and above the camera, by class and by image colour (sky, which
    has no depth to show, left out)."""
    cloud = np.array(out.points, dtype=np.float32, copy=True)
    cloud[out.semantic == SKY, :3] = np.nan
    view = ObliqueView(width=800, height=400, ground_m=nominal_camera_height("kitti_like"))
    by_class, by_image = cloud_views(cloud, out.semantic_color, view)
    return [("node point cloud from behind and above, by class (grid: 10 m)", by_class),
            ("the same cloud in the image's colours", by_image)]


class NodeScores:
    """What the demo measures on the frames the node published: Eigen metrics, IoU, abs rel per true class and
    depth-boundary errors."""

    def __init__(self) -> None:
        self.depth = DepthMetricAccumulator(min_depth=MIN_DEPTH_M, max_depth=CAP_M, crop="none")
        self.confusion = SemanticConfusion()
        self.classes = ClassDepthAccumulator(OBJECT_CLASSES, min_depth=MIN_DEPTH_M, max_depth=CAP_M)
        self.boundary = BoundaryAccumulator(min_depth=MIN_DEPTH_M, max_depth=CAP_M)

    def add(self, frame: SyntheticFrame, out: Any) -> None:
        self.depth.add(out.depth, frame.depth)
        self.confusion.add(out.semantic, frame.semantic)
        self.classes.add(out.depth, frame.depth, frame.semantic)
        self.boundary.add(out.depth, frame.depth)

    def result(self) -> dict[str, Any]:
        return {"depth": self.depth.result(), "semantic_miou": self.confusion.miou(),
                "semantic_pixel_accuracy": self.confusion.pixel_accuracy(),
                "semantic_iou": {name: float(v) for name, v in zip(CITYSCAPES_TRAIN_ID_NAMES, self.confusion.iou())},
                "class_abs_rel": self.classes.result(), "boundary": self.boundary.result()}


def run_node_stage(paths: DemoPaths, checkpoint: Path, args: argparse.Namespace) -> tuple[dict[str, Any], list]:
    """Stream held-out frames through the real node; metrics of what it published, and summary tiles."""
    from ..ros.demo_client import stream_through_node  # rclpy is needed only here

    frames = heldout_frames(args.frames)
    scores = NodeScores()
    latencies, tile_rows, points = [], [], 0
    inputs = ((frame.rgb, frame.intrinsics) for frame in frames)
    depth_range = node_depth_range(checkpoint)
    views = []
    for index, (frame, out) in enumerate(zip(frames, stream_through_node(checkpoint, inputs, device=args.device))):
        scores.add(frame, out)
        latencies.append(out.latency_ms)
        points += int(np.isfinite(out.points[..., 2]).sum())
        if index < args.saved_frames:
            tiles = save_frame(paths, index, frame, out, depth_range)
            if index < 3:
                tile_rows.append(list(tiles.items()))
        if index == 0:
            views = cloud_tiles(out)
    result = {
        "frames": len(latencies),
        "saved_frames": min(len(latencies), args.saved_frames),
        "camera_size": list(CAMERA_SIZE),
        **scores.result(),
        "latency_ms": {"p50": float(np.percentile(latencies, 50)), "p95": float(np.percentile(latencies, 95))},
        "valid_points_per_frame": points / max(1, len(latencies)),
    }
    return result, tile_rows + [views]


def object_lines(node: dict[str, Any]) -> list[str]:
    """Summary lines: IoU and depth abs rel of the object classes, and the depth-boundary errors."""
    iou = node["semantic_iou"]
    classes = node["class_abs_rel"]
    boundary = node["boundary"]
    return [", ".join(f"{name} IoU {iou[name]:.2f} / abs rel {classes[name]['abs_rel']:.3f}"
                      for name in OBJECT_CLASSES),
            f"depth edges (iBims-1, px, lower is better): accuracy {boundary['accuracy']:.2f}, completeness "
            f"{boundary['completeness']:.2f} (of {boundary['max_distance']:g} at worst)"]


def main(args: argparse.Namespace) -> int:
    if args.frames < 1 or args.eval_count < 1 or args.drive_frames == 1 or args.drive_frames < 0:
        raise ConfigError(f"--frames {args.frames} and --eval-count {args.eval_count} must be at least 1, "
                          f"--drive-frames {args.drive_frames} 0 or at least 2")
    if args.saved_frames < 1:
        raise ConfigError(f"--saved-frames {args.saved_frames} must be at least 1 (the summary shows saved frames)")
    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads {args.threads} must be at least 1")
        torch.set_num_threads(args.threads)
    paths = DemoPaths(Path(args.out))
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    print(f"semantic-depth demo ({demo_size(args)}): writing to {paths.root}")
    progress = not args.no_progress
    _, training1 = train_or_reuse(phase_config(1, paths, args), retrain=args.retrain, progress=progress)
    phase2, training2 = train_or_reuse(phase_config(2, paths, args), retrain=args.retrain, progress=progress)
    print("evaluating on held-out generated frames")
    depth, semantic = evaluate_model(phase2, args)
    print(f"streaming {args.frames} held-out frames through the ROS 2 depth node")
    node, tile_rows = run_node_stage(paths, phase2, args)
    drive = None
    if args.drive_frames:
        print(f"streaming a held-out drive of {args.drive_frames} frames through the node, temporal_filter off, then on")
        drive = run_drive_stage(phase2, args.drive_frames, CAMERA_SIZE, args.device)
    metrics = {"depth": node["depth"], "node": node, "drive": drive,
               "evaluation": {"depth": {str(k): v for k, v in depth.items()}, "semantic": semantic},
               "training": {"phase1": training1, "phase2": training2}, "checkpoint": str(phase2),
               "size": demo_size(args), "seconds": round(time.perf_counter() - started, 1),
               "machine": {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                           "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}}
    write_json(paths.root / "metrics.json", metrics)
    report = {"depth": [{"method": f"DSC-DRN demo ({cap:g} m, {depth[cap]['count']} frames)", "cap": cap,
                         "metrics": depth[cap]} for cap in sorted(depth)]
              + [{"method": "DSC-DRN demo via the ROS node", "cap": CAP_M, "metrics": node["depth"]}],
              "objects": [{"method": f"DSC-DRN demo via the ROS node ({node['frames']} frames)",
                           "class_abs_rel": node["class_abs_rel"], "boundary": node["boundary"]}],
              "semantic": [{"method": "DSC-DRN demo (cityscapes_like held-out)", **semantic},
                           {"method": "DSC-DRN demo via the ROS node (kitti_like held-out)",
                            "miou": node["semantic_miou"], "pixel_accuracy": node["semantic_pixel_accuracy"],
                            "iou": node["semantic_iou"]}],
              "dataset": "generated street scenes (kitti_like depth, cityscapes_like semantics), held-out seeds",
              "checkpoint": str(phase2)}
    if drive is not None:
        report["drive"] = drive
    _, md_path = write_report(paths.root / "report", report)
    abs_rel = node["depth"]["abs_rel"]
    load = metrics["machine"]["load_average_1min"]
    lines = [f"semantic-depth demo: DSC-DRN trained on generated scenes ({paths.root}, {demo_size(args)}, "
             f"{metrics['seconds']:.0f} s on {os.cpu_count()} CPUs, load average {load[0]:.1f} -> {load[1]:.1f})",
             f"ROS node on {node['frames']} held-out frames {CAMERA_SIZE[1]}x{CAMERA_SIZE[0]}: abs rel {abs_rel:.3f}, "
             f"RMSE {node['depth']['rmse']:.2f} m, d<1.25 {node['depth']['a1']:.3f}, mIoU {node['semantic_miou']:.3f}",
             *object_lines(node),
             *(drive_lines(drive) if drive is not None else []),
             f"latency image -> all outputs p50 {node['latency_ms']['p50']:.1f} ms, "
             f"p95 {node['latency_ms']['p95']:.1f} ms"]
    sheet = summary_sheet(tile_rows, lines)
    write_rgb_png(paths.root / "summary.png", with_depth_scale(sheet, *node_depth_range(phase2)))
    print("\n".join(lines))
    print(f"wrote {paths.root / 'summary.png'}, {paths.root / 'metrics.json'}, {md_path}, frames in "
          f"{paths.root / 'frames'}")
    if not abs_rel < TARGET_ABS_REL:
        print(f"warning: abs rel {abs_rel:.3f} is above the demo's target {TARGET_ABS_REL} (too few steps?)")
    return 0

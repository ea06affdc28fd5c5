"""`semantic-depth train --config FILE`: one training phase from a YAML config (also `ros2 run ... train`).

Several GPUs: ``torchrun --nproc_per_node N -m semantic_depth_ros.cli train --config FILE``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..data.fileio import dumps_json
from ..resources import find_data_file
from ..training.config import PRECISIONS, load_config
from ..training.distributed import detect_context
from ..training.trainer import run_training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True,
                        help="training config YAML, or the name of an installed one (train_demo_phase1)")
    parser.add_argument("--out", default=None, help="run folder (default: the config's out_dir, else runs/<name>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the run folder from its last run-state checkpoint, exactly")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="total optimiser steps (overrides the config's steps; the LR schedule spans them)")
    parser.add_argument("--init-from", default=None, help="model checkpoint or run folder to start from")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (overrides the config)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None, help="overrides the config's precision")
    parser.add_argument("--batch-size", type=int, default=None, help="per-process batch size (overrides config)")
    parser.add_argument("--num-workers", type=int, default=None, help="data-loader workers (overrides config)")
    parser.add_argument("--seed", type=int, default=None, help="overrides the config's seed")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def config_path(name: str) -> Path:
    """``name`` as given when it exists, else the installed ``config/<name>[.yaml]`` when there is one."""
    path = Path(name)
    if path.exists() or len(path.parts) > 1:
        return path
    installed = find_data_file("config", name if path.suffix in (".yaml", ".yml") else f"{name}.yaml")
    return installed if installed is not None else path


def main(args: argparse.Namespace) -> int:
    config = load_config(config_path(args.config))
    overrides = {
        "steps": args.max_steps, "init_from": args.init_from, "device": args.device, "precision": args.precision,
        "batch_size": args.batch_size, "num_workers": args.num_workers, "seed": args.seed,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if args.init_from:  # the checkpoint's model config replaces the config's preset
        overrides["model"] = {"preset": None, "overrides": dict(config.model.overrides)}
    if overrides:
        config = config.replace(**overrides)
    result = run_training(config, out_dir=args.out, resume=args.resume, progress=not args.no_progress)
    if detect_context().is_main:
        summary = {
            "model_checkpoint": str(result.checkpoint_path),
            "best_checkpoint": str(result.best_checkpoint_path) if result.best_checkpoint_path else None,
            "steps": result.steps,
            "seconds": round(result.seconds, 1),
            "final_metrics": {k: v for k, v in result.final_metrics.items() if "/" not in k},
            "best_metrics": {k: v for k, v in result.best_metrics.items() if "/" not in k},
        }
        if result.metrics_before:
            summary["metrics_before"] = {k: v for k, v in result.metrics_before.items() if "/" not in k}
        print(dumps_json(summary, indent=1))
    return 0

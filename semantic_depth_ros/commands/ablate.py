"""`semantic-depth ablate`: the paper's Table I on generated scenes: DRN vs DC-DRN vs DSC-DRN.

Every variant gets the same depth budget (the same number of depth batches, seeds and data) and differs only in
what the paper varies:

- DRN: regression only, phase 2 from scratch for ``depth_steps + phase2_steps`` depth steps;
- DC-DRN: phase 1 depth classification on depth data alone (``depth_steps``), then phase 2 (``phase2_steps``);
- DSC-DRN: phase 1 conditional flow, ``depth_steps`` depth batches alternating with as many semantic batches
  of the other domain, then the same phase 2.

Phase 2 trains on depth alone with the semantic head frozen, identically for all variants. Metrics are
the Eigen depth metrics on held-out kitti_like frames, mean and standard deviation over seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from ..data.fileio import write_json
from ..errors import ConfigError
from ..evaluation.evaluate import build_eval_dataset, evaluate_depth, load_eval_estimator
from ..evaluation.metrics import DEPTH_METRIC_KEYS
from ..evaluation.report import format_report, write_report
from ..training.config import TrainConfig
from ..training.run_folder import MODEL_FILE
from .generated_scenes import CAMERA_SIZE, HELDOUT_SEED, MIN_DEPTH_M, load_demo_config, train_or_reuse, with_steps

VARIANTS = ("DRN", "DC-DRN", "DSC-DRN")
CAPS = (50.0, 80.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/ablate", help="run folder (default: runs/ablate)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--depth-steps", type=int, default=None,
                        help="phase-1 depth batches (default: those of the demo's phase 1)")
    parser.add_argument("--phase2-steps", type=int, default=None, help="phase-2 steps (default: the demo's)")
    parser.add_argument("--eval-count", type=int, default=40, help="held-out frames evaluated per model")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    parser.add_argument("--retrain", action="store_true", help="train again even if a variant's model exists")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _only_depth(config: TrainConfig) -> dict[str, Any]:
    """Changes that keep only the depth datasets of ``config`` (flow without semantic batches)."""
    depth = [dataclasses.asdict(d) for d in config.datasets if d.task == "depth"]
    return {"datasets": depth, "flow": {**dataclasses.asdict(config.flow), "semantic": 0}}


def variant_configs(variant: str, seed: int, run_dir: Path, *, depth_steps: int, phase2_steps: int,
                    device: str) -> list[TrainConfig]:
    """The training runs (in order) of one variant and seed; the last one's model is the result."""
    base1, base2 = load_demo_config(1), load_demo_config(2)
    common = {"seed": seed, "device": device}
    phase2 = with_steps(base2, phase2_steps).replace(**common, **_only_depth(base2), freeze=["sc"],
                                                     name=f"{variant}_seed{seed}_phase2",
                                                     out_dir=str(run_dir / "phase2"))
    if variant == "DRN":
        scratch = with_steps(phase2, depth_steps + phase2_steps).replace(
            init_from=None, model=dataclasses.asdict(base1.model), schedule=dataclasses.asdict(base1.schedule),
            optimizer=dataclasses.asdict(base1.optimizer), name=f"DRN_seed{seed}", out_dir=str(run_dir / "drn"))
        return [scratch]
    if variant == "DC-DRN":
        phase1 = with_steps(base1, depth_steps).replace(**common, **_only_depth(base1))
    else:  # DSC-DRN: as many semantic batches as depth batches, interleaved
        flow = {**dataclasses.asdict(base1.flow), "depth": 1, "semantic": 1}
        phase1 = with_steps(base1, 2 * depth_steps).replace(**common, flow=flow)
    phase1 = phase1.replace(name=f"{variant}_seed{seed}_phase1", out_dir=str(run_dir / "phase1"))
    return [phase1, phase2.replace(init_from=str(run_dir / "phase1" / MODEL_FILE))]


def summarise(per_seed: list[dict[float, dict[str, float]]]) -> dict[float, dict[str, Any]]:
    """Mean and standard deviation over seeds of every metric, per cap."""
    summary: dict[float, dict[str, Any]] = {}
    for cap in CAPS:
        values = {key: np.array([result[cap][key] for result in per_seed]) for key in DEPTH_METRIC_KEYS}
        summary[cap] = {key: float(v.mean()) for key, v in values.items()}
        summary[cap]["std"] = {key: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for key, v in values.items()}
        summary[cap]["seeds"] = len(per_seed)
    return summary


def main(args: argparse.Namespace) -> int:
    base1, base2 = load_demo_config(1), load_demo_config(2)
    depth_steps = args.depth_steps or max(1, base1.steps * base1.flow.depth // (base1.flow.depth + base1.flow.semantic))
    phase2_steps = args.phase2_steps or base2.steps
    if depth_steps < 1 or phase2_steps < 1 or args.eval_count < 1:
        raise ConfigError(f"--depth-steps {depth_steps}, --phase2-steps {phase2_steps} and --eval-count "
                          f"{args.eval_count} must be at least 1")
    root = Path(args.out)
    height, width = CAMERA_SIZE
    heldout = build_eval_dataset("synthetic", domain="kitti_like", task="depth", count=args.eval_count,
                                 seed=HELDOUT_SEED, height=height, width=width)
    results: dict[str, Any] = {}
    for variant in args.variants:
        per_seed = []
        for seed in args.seeds:
            run_dir = root / variant / f"seed{seed}"
            model = None
            for config in variant_configs(variant, seed, run_dir, depth_steps=depth_steps,
                                          phase2_steps=phase2_steps, device=args.device):
                model, _ = train_or_reuse(config, retrain=args.retrain, progress=not args.no_progress)
            estimator = load_eval_estimator(model, device=args.device)
            metrics = evaluate_depth(estimator, heldout, caps=CAPS, min_depth=MIN_DEPTH_M, crop="none",
                                     progress=False)
            print(f"{variant} seed {seed}: abs rel {metrics[80.0]['abs_rel']:.4f} (cap 80 m)")
            per_seed.append(metrics)
        results[variant] = {"per_seed": [{str(k): v for k, v in m.items()} for m in per_seed],
                            "summary": summarise(per_seed)}
    report = {"depth": [{"method": f"{variant} (ours, {len(args.seeds)} seeds, mean)", "cap": cap,
                         "metrics": results[variant]["summary"][cap]}
                        for variant in args.variants for cap in CAPS],
              "dataset": f"{args.eval_count} held-out generated kitti_like frames {width}x{height}",
              "budget": {"depth_steps": depth_steps, "phase2_steps": phase2_steps, "seeds": args.seeds}}
    write_json(root / "ablation.json", {"results": results, **report})
    _, md_path = write_report(root / "ablation_report", report)
    print(format_report(report))
    for cap in CAPS:
        print(f"abs rel at cap {cap:g} m, mean ± std over seeds {args.seeds}:")
        for variant in args.variants:
            s = results[variant]["summary"][cap]
            print(f"  {variant:8s} {s['abs_rel']:.4f} ± {s['std']['abs_rel']:.4f}   RMSE {s['rmse']:.3f} ± "
                  f"{s['std']['rmse']:.3f} m   d<1.25 {s['a1']:.4f} ± {s['std']['a1']:.4f}")
    print(f"wrote {root / 'ablation.json'} and {md_path}")
    return 0

"""A run's state and its files: building or restoring it (exact resume), announcing it, and saving what it
produces (run-state checkpoints, the best and final model checkpoints, ``metrics.json``); layout in ``run_folder``."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data.fileio import write_json
from ..data.synthetic.prerender import prerender
from ..files import write_atomic
from ..devices import autocast_factory
from ..errors import ConfigError
from ..model.bins import DepthBins
from ..model.checkpoint import save_checkpoint
from ..model.config import ModelConfig
from ..model.network import SemanticDepthNet
from .config import HIGHER_IS_BETTER, RESUME_MUTABLE, TrainConfig, config_to_yaml, first_difference
from .datasets import ValidationSet, build_train_streams, build_validation_sets, readers_of
from .distributed import DistContext, wrap_model
from .flow import FlowSchedule
from .logging import RunLogger
from .model_setup import build_model, build_optimizer, freeze_groups, resolve_model_config
from .run_folder import BEST_FILE, CONFIG_FILE, METRICS_FILE, MODEL_CONFIG_FILE, STATE_DIR
from .schedule import build_scheduler
from .state import build_payload, latest_run_state, load_run_state, restore_training_state, save_run_state
from .step import StepParts


@dataclass
class TrainResult:
    """What a run produced. ``checkpoint_path``: final model checkpoint (None if stopped before ``steps``)."""

    checkpoint_path: Path | None
    best_checkpoint_path: Path | None
    best_metrics: dict[str, float]
    final_metrics: dict[str, float]
    metrics_before: dict[str, float]
    steps: int
    run_dir: Path
    seconds: float



@dataclass
class Run:
    """State of a run in progress (built by ``prepare_run``)."""

    config: TrainConfig
    model_config: ModelConfig
    ctx: DistContext
    run_dir: Path
    parts: StepParts
    net: SemanticDepthNet
    schedule: FlowSchedule
    streams: dict[str, Any]
    val_sets: list[ValidationSet]
    logger: RunLogger
    step: int = 0
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    last_validation: dict[str, float] = field(default_factory=dict)
    last_saved_step: int = -1
    last_validated_step: int = -1


def find_resume_state(config: TrainConfig, run_dir: Path, resume: bool) -> dict[str, Any] | None:
    """The run state to continue from (``resume``), checked against ``config``; refuses to overwrite a run."""
    path = latest_run_state(run_dir / STATE_DIR)
    if path is None:
        return None
    if not resume:
        raise ConfigError(f"run folder {run_dir} already holds a run ({path.name}): pass --resume to continue "
                          "it or choose another --out")
    payload = load_run_state(path)
    ignore = set(RESUME_MUTABLE)
    saved = {k: v for k, v in payload["train_config"].items() if k not in ignore}
    current = {k: v for k, v in config.to_dict().items() if k not in ignore}
    difference = first_difference(saved, current)
    if difference is not None:
        raise ConfigError(f"cannot resume {path}: config key '{difference}' differs from the saved run "
                          "(an exact resume needs the same config)")
    return payload


def prepare_run(config: TrainConfig, run_dir: Path, resume: bool, progress: bool, ctx: DistContext,
                device: torch.device) -> Run:
    """Build (or restore) model, optimiser, scheduler, scaler, data streams and logger."""
    payload = find_resume_state(config, run_dir, resume)
    if payload is not None:
        model_config, init = ModelConfig.from_dict(payload["model_config"], source="run state model config"), None
    else:
        model_config, init = resolve_model_config(config)
    # channels-last, the layout the inference runners run (on a 2-core CPU in bf16 a demo step is as fast either
    # way, within the noise: 219 against 221 ms over three interleaved pairs)
    net = build_model(model_config, init, config.seed).to(device, memory_format=torch.channels_last)
    freeze_groups(net, config.freeze)
    optimizer = build_optimizer(net, config)
    scheduler = build_scheduler(optimizer, config.steps, config.schedule)
    scaler = torch.amp.GradScaler(device.type, enabled=config.precision == "fp16")
    if payload is not None:
        restore_training_state(payload, model=net, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                               source=str(run_dir))
    model = wrap_model(net, ctx, device)
    parts = StepParts(model=model, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                      bins=DepthBins(model_config.min_depth, model_config.max_depth, model_config.num_depth_bins),
                      phase=config.phase, loss=config.loss, grad_clip=config.optimizer.grad_clip, device=device,
                      autocast=autocast_factory(config.precision, device))
    start = int(payload["step"]) if payload is not None else 0
    streams = build_train_streams(config, model_config)
    val_sets = build_validation_sets(config, model_config)
    logger = RunLogger(run_dir, enabled=ctx.is_main, tensorboard=config.logging.tensorboard, progress=progress,
                       total=config.steps, initial=start)
    run = Run(config=config, model_config=model_config, ctx=ctx, run_dir=run_dir, parts=parts, net=net,
              schedule=FlowSchedule({"depth": config.flow.depth, "semantic": config.flow.semantic},
                                    seed=config.seed, shuffle=config.flow.shuffle),
              streams=streams, val_sets=val_sets, logger=logger, step=start)
    if payload is not None:
        run.best, run.history, run.extra = payload.get("best"), list(payload["history"]), dict(payload["extra"])
        run.last_saved_step = start
        run.last_validation = dict(run.history[-1]["metrics"]) if run.history else {}
        run.last_validated_step = int(run.history[-1]["step"]) if run.history else -1
    return run


def announce(run: Run, resumed: bool) -> None:
    """Print the resolved configs (rank 0) and save them in the run folder."""
    text = config_to_yaml(run.config)
    model_text = yaml.safe_dump(run.model_config.to_dict(), sort_keys=False, default_flow_style=None)
    run.logger.print(f"# resolved training config\n{text}# resolved model config\n{model_text}".rstrip())
    if run.ctx.is_main:
        write_atomic(run.run_dir / CONFIG_FILE, text.encode())
        write_atomic(run.run_dir / MODEL_CONFIG_FILE, model_text.encode())
    where = f"resuming at step {run.step}" if resumed else "starting"
    run.logger.print(f"{where}: phase {run.config.phase}, {run.config.steps} steps, tasks "
                     f"{'/'.join(run.schedule.tasks)}, {run.ctx.world_size} process(es), device "
                     f"{run.parts.device}, run folder {run.run_dir}")


def update_best(run: Run, metrics: dict[str, float]) -> None:
    """Keep ``best.pt`` when the configured metric improved."""
    name = run.config.checkpoint.best_metric
    value = metrics.get(name)
    if value is None or not math.isfinite(value):
        return
    better = run.best is None or (value > run.best["value"] if name in HIGHER_IS_BETTER else value < run.best["value"])
    if not better:
        return
    run.best = {"metric": name, "value": float(value), "step": run.step, "metrics": dict(metrics)}
    if run.ctx.is_main:
        save_checkpoint(run.run_dir / BEST_FILE, run.net, run.model_config, trained=True,
                        extra=model_extra(run, metrics))


def model_extra(run: Run, metrics: dict[str, float]) -> dict[str, Any]:
    """Metadata stored in model checkpoints: the training config, step, phase and metrics."""
    return {"train_config": run.config.to_dict(), "step": run.step, "phase": run.config.phase,
            "seed": run.config.seed, "metrics": dict(metrics),
            "metrics_before": dict(run.extra.get("metrics_before", {}))}


def write_metrics_file(run: Run) -> None:
    """``metrics.json``: validation history, best, and the metrics before training (rank 0, atomic)."""
    if not run.ctx.is_main:
        return
    document = {"history": run.history, "best": run.best, "metrics_before": run.extra.get("metrics_before", {})}
    write_json(run.run_dir / METRICS_FILE, document, indent=1)


def save_state(run: Run) -> None:
    """Write a run-state checkpoint for ``run.step`` (rank 0), keeping the last N."""
    run.last_saved_step = run.step
    if not run.ctx.is_main:
        return
    payload = build_payload(step=run.step, model=run.net, optimizer=run.parts.optimizer,
                            scheduler=run.parts.scheduler, scaler=run.parts.scaler,
                            train_config=run.config.to_dict(), model_config=run.model_config.to_dict(),
                            best=run.best, history=run.history, extra=run.extra)
    save_run_state(run.run_dir / STATE_DIR, payload, step=run.step, keep_last=run.config.checkpoint.keep_last)


def prerender_generated(run: Run) -> None:
    """Render the run's generated frames on a thread per core of this rank's share, before training renders them
    one by one on the thread that trains (the same frames: see ``data.synthetic.prerender``)."""
    started = time.perf_counter()
    workers = max(1, (os.cpu_count() or 1) // run.ctx.world_size)
    count = prerender(readers_of([*run.streams.values(), *(entry.dataset for entry in run.val_sets)]), workers)
    if count:
        run.logger.print(f"rendered {count} generated frames in {time.perf_counter() - started:.1f} s "
                         f"({workers} threads)")

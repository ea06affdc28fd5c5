"""The two-phase conditional-flow training loop, in small pieces, and its Python API ``run_training``.

Phase 1 (conditional flow): a depth batch runs the trunk and the DC head only (cross-entropy over depth bins on
valid pixels); a semantic batch runs the trunk and the SC head only (cross-entropy, ignore 255). The head that
did not run has no gradient (``zero_grad(set_to_none=True)``), and AdamW skips parameters without gradient, so
its weights, optimiser moments and batch-norm statistics stay bit-identical.
Phase 2: the DRN head is added (weights from ``init_from``, DRN new) and depth batches train it with L1 on valid
canonical depth (plus optionally the DC cross-entropy); semantic batches keep the SC head usable, or ``freeze``
keeps it fixed. The validation metrics before and after phase 2 are recorded.

Run folder: ``config.yaml`` and ``model_config.yaml`` (resolved configs), ``checkpoints/state_<step>.pt`` (run
state, last N), ``best.pt`` (best model by the validation metric), ``model.pt`` (final model checkpoint,
``trained=True``, loadable by ``DepthEstimator``), ``metrics.json`` (validation history), ``tensorboard/``.
"""

from __future__ import annotations

import contextlib
import functools
import math
import random
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from ..data.fileio import write_atomic, write_json
from ..errors import ConfigError
from ..model.bins import DepthBins
from ..model.checkpoint import Checkpoint, load_checkpoint, load_weights, save_checkpoint
from ..model.config import ModelConfig, load_preset
from ..model.network import SemanticDepthNet
from ..model.resnet import load_imagenet_weights
from .config import (HIGHER_IS_BETTER, RESUME_MUTABLE, LossConfig, TrainConfig, config_to_yaml,
                     first_difference)
from .datasets import ValidationSet, build_train_streams, build_validation_sets
from .distributed import (DistContext, barrier, destroy_process_group, detect_context, init_process_group,
                          select_device, sync_buffers, unwrap, wrap_model)
from .flow import FlowSchedule, StreamBatchSampler
from .logging import RunLogger
from .losses import depth_losses, semantic_losses
from .schedule import build_scheduler
from .state import build_payload, latest_run_state, load_run_state, restore_training_state, save_run_state
from .validation import preview, validate

MODEL_FILE = "model.pt"
BEST_FILE = "best.pt"
CONFIG_FILE = "config.yaml"
MODEL_CONFIG_FILE = "model_config.yaml"
METRICS_FILE = "metrics.json"
STATE_DIR = "checkpoints"
# parameter group -> modules of SemanticDepthNet (frozen groups also keep their batch-norm statistics)
GROUP_MODULES = {"trunk": ("encoder", "decoder"), "dc": ("dc_head",), "sc": ("sc_head",), "drn": ("drn_head",)}


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


# --------------------------------------------------------------------------------------------- model set-up

def heads_for(task: str, phase: int) -> tuple[str, ...]:
    """Heads a batch of ``task`` runs: semantic -> SC; depth -> DC (phase 1) or DRN (phase 2, implies DC)."""
    if task == "semantic":
        return ("sc",)
    return ("dc",) if phase == 1 else ("drn",)


def resolve_init_path(init_from: str) -> Path:
    """``init_from`` as a checkpoint file (a run folder means its ``model.pt``)."""
    path = Path(init_from)
    return path / MODEL_FILE if path.is_dir() else path


def resolve_model_config(config: TrainConfig) -> tuple[ModelConfig, Checkpoint | None]:
    """The model config (preset or ``init_from``'s config, plus overrides, DRN iff phase 2) and the init checkpoint."""
    init = load_checkpoint(resolve_init_path(config.init_from)) if config.init_from else None
    base = init.config if init is not None else load_preset(config.model.preset or "resnet18")
    overrides = {**config.model.overrides, "use_drn": config.phase == 2}
    try:
        return base.replace(**overrides), init
    except ConfigError as exc:
        raise ConfigError(f"model.overrides: {exc}") from None


def build_model(model_config: ModelConfig, init: Checkpoint | None, seed: int) -> SemanticDepthNet:
    """A seeded network, initialised from ``init`` (new DRN layers allowed) or ImageNet weights when configured."""
    seed_everything(seed)
    model = SemanticDepthNet(model_config)
    if init is not None:
        load_weights(model, init.state_dict, source=f"init_from {init.path}", allow_missing_prefixes=("drn_head.",))
    elif model_config.imagenet_weights:
        load_imagenet_weights(model.encoder, model_config.imagenet_weights)
    return model


def seed_everything(seed: int) -> None:
    """Seed torch, numpy and Python's generators."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def freeze_groups(model: SemanticDepthNet, groups: list[str]) -> None:
    """Stop gradients of the listed parameter groups (trunk, dc, sc, drn)."""
    parts = model.param_groups()
    for group in groups:
        for parameter in parts[group]:
            parameter.requires_grad_(False)


def set_train_mode(model: nn.Module, frozen: list[str]) -> None:
    """Train mode, except frozen groups' modules (their batch-norm statistics stay fixed)."""
    model.train()
    net = unwrap(model)
    for group in frozen:
        for name in GROUP_MODULES[group]:
            module = getattr(net, name, None)
            if module is not None:
                module.eval()


def build_optimizer(model: SemanticDepthNet, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters (it skips parameters whose gradient is None)."""
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise ConfigError(f"freeze = {config.freeze} leaves no parameter to train")
    o = config.optimizer
    return torch.optim.AdamW(parameters, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def autocast_for(precision: str, device: torch.device) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of autocast contexts for ``precision`` (fp32: no autocast; fp16 needs CUDA)."""
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision fp16 needs a CUDA device, got {device.type}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return functools.partial(torch.autocast, device_type=device.type, dtype=dtype)


# ------------------------------------------------------------------------------------------------- one step

@dataclass
class StepParts:
    """Everything one optimiser step needs."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    bins: DepthBins
    phase: int
    loss: LossConfig
    grad_clip: float
    device: torch.device
    autocast: Callable[[], AbstractContextManager[Any]]


def train_step(parts: StepParts, batch: dict[str, torch.Tensor], task: str) -> dict[str, torch.Tensor]:
    """One update on one batch of ``task``: only that task's head runs and gets gradients.

    Returns detached scalar tensors: ``loss``, its terms, ``lr`` and ``grad_norm`` (before clipping).
    """
    parts.optimizer.zero_grad(set_to_none=True)
    images = batch["image"].to(parts.device, non_blocking=True)
    with parts.autocast():
        outputs = parts.model(images, heads=heads_for(task, parts.phase))
    if task == "depth":
        losses = depth_losses(outputs, batch["depth"].to(parts.device, non_blocking=True), parts.bins, parts.phase,
                              parts.loss)
    else:
        losses = semantic_losses(outputs, batch["semantic"].to(parts.device, non_blocking=True), parts.loss)
    parts.scaler.scale(losses["loss"]).backward()
    parts.scaler.unscale_(parts.optimizer)
    trainable = [p for p in parts.model.parameters() if p.grad is not None]
    max_norm = parts.grad_clip if parts.grad_clip > 0 else math.inf
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, max_norm)
    lr = parts.optimizer.param_groups[0]["lr"]
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    with warnings.catch_warnings():  # fp16: a step the scaler skipped (inf/NaN gradients) still advances the LR
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        parts.scheduler.step()
    stats = {k: v.detach() for k, v in losses.items()}
    stats.update(lr=torch.tensor(lr), grad_norm=grad_norm.detach())
    return stats


# ---------------------------------------------------------------------------------------------- the run

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
    net = build_model(model_config, init, config.seed).to(device)
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
                      autocast=autocast_for(config.precision, device))
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


def make_iterators(run: Run) -> dict[str, Iterator[dict[str, torch.Tensor]]]:
    """One endless batch iterator per task, positioned at the batch ``run.step`` needs."""
    iterators = {}
    for stream, (task, dataset) in enumerate(run.streams.items()):
        sampler = StreamBatchSampler(len(dataset), run.config.batch_size, seed=run.config.seed, stream=stream,
                                     rank=run.ctx.rank, world_size=run.ctx.world_size,
                                     start_batch=run.schedule.count_before(task, run.step))
        loader = DataLoader(dataset, batch_sampler=sampler, num_workers=run.config.num_workers,
                            pin_memory=run.parts.device.type == "cuda",
                            persistent_workers=run.config.num_workers > 0)
        iterators[task] = iter(loader)
    return iterators


def evaluate_now(run: Run) -> dict[str, float]:
    """The validation metrics of the current weights (every rank takes part; rank 0's BN statistics)."""
    validation = run.config.validation
    sync_buffers(run.net, run.ctx)
    return validate(run.net, run.val_sets, device=run.parts.device, autocast=run.parts.autocast,
                    batch_size=validation.batch_size, crop=validation.crop, min_depth=validation.min_depth,
                    max_depth=validation.max_depth or run.model_config.max_depth, ctx=run.ctx,
                    num_workers=run.config.num_workers)


def run_validation(run: Run) -> dict[str, float]:
    """Validate now (every rank), log, track the best model and record the history (rank 0 writes files)."""
    config = run.config
    metrics = evaluate_now(run)
    images = preview(run.net, run.val_sets, config.logging.num_images if run.ctx.is_main else 0, run.parts.device)
    set_train_mode(run.parts.model, config.freeze)
    if images is not None:
        run.logger.prediction_images(run.step, "val", *images, run.model_config.min_depth, run.model_config.max_depth)
    run.logger.scalars(run.step, "val", metrics)
    run.logger.print(f"step {run.step} validation: {format_metrics(metrics)}")
    run.history.append({"step": run.step, "metrics": metrics})
    run.last_validation, run.last_validated_step = metrics, run.step
    update_best(run, metrics)
    write_metrics_file(run)
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    """The overall metrics on one line (per-set entries omitted)."""
    shown = [f"{k} {v:.4f}" for k, v in metrics.items() if "/" not in k]
    return ", ".join(shown) or "no validation data"


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


def log_step(run: Run, task: str, stats: dict[str, torch.Tensor]) -> None:
    """Progress bar every step; scalars every ``logging.every`` steps."""
    if run.step % run.config.logging.every and run.step != run.config.steps:
        run.logger.advance(run.step)
        return
    values = {k: float(v) for k, v in stats.items()}
    run.logger.advance(run.step, {f"{task}_loss": values["loss"], "lr": values["lr"]})
    run.logger.scalars(run.step, f"train_{task}", {k: v for k, v in values.items() if k != "lr"})
    run.logger.scalars(run.step, "train", {"lr": values["lr"]})


def after_step(run: Run, task: str, stats: dict[str, torch.Tensor]) -> None:
    """Logging, periodic validation and periodic run-state checkpoints after an update."""
    log_step(run, task, stats)
    every = run.config.validation.every
    if run.val_sets and every and run.step % every == 0:
        run_validation(run)
    if run.config.checkpoint.every and run.step % run.config.checkpoint.every == 0:
        save_state(run)


def train_loop(run: Run, stop: int) -> None:
    """Updates from ``run.step`` up to ``stop`` (exclusive of nothing: ``run.step == stop`` at the end)."""
    if run.step >= stop:
        return
    iterators = make_iterators(run)
    set_train_mode(run.parts.model, run.config.freeze)
    try:
        for step in range(run.step, stop):
            task = run.schedule.task_at(step)
            stats = train_step(run.parts, next(iterators[task]), task)
            run.step = step + 1
            after_step(run, task, stats)
    finally:
        del iterators  # shuts data-loader workers down


def validate_before(run: Run) -> None:
    """Phase 2 from a fresh start: record the metrics of the initial model (mIoU before phase 2)."""
    if run.config.phase != 2 or not run.val_sets or run.step != 0 or "metrics_before" in run.extra:
        return
    metrics = evaluate_now(run)
    run.extra["metrics_before"] = metrics
    run.logger.scalars(0, "val_before", metrics)
    run.logger.print(f"before phase 2: {format_metrics(metrics)}")


def finish(run: Run, started: float) -> TrainResult:
    """Final validation and checkpoints; the final model checkpoint once all ``steps`` are done."""
    complete = run.step >= run.config.steps
    if complete and run.val_sets and run.last_validated_step != run.step:
        run_validation(run)
    if run.last_saved_step != run.step:
        save_state(run)
    model_path = run.run_dir / MODEL_FILE
    if complete and run.ctx.is_main:
        save_checkpoint(model_path, run.net, run.model_config, trained=True,
                        extra=model_extra(run, run.last_validation))
        report_phase2(run)
    barrier(run.ctx)
    best_path = run.run_dir / BEST_FILE
    return TrainResult(checkpoint_path=model_path if complete else None,
                       best_checkpoint_path=best_path if run.best is not None else None,
                       best_metrics=dict(run.best["metrics"]) if run.best else {},
                       final_metrics=dict(run.last_validation),
                       metrics_before=dict(run.extra.get("metrics_before", {})),
                       steps=run.step, run_dir=run.run_dir, seconds=time.perf_counter() - started)


def report_phase2(run: Run) -> None:
    """Print the semantic mIoU before and after phase 2 (when semantic validation data exist)."""
    before = run.extra.get("metrics_before", {}).get("miou")
    after = run.last_validation.get("miou")
    if run.config.phase == 2 and before is not None and after is not None:
        run.logger.print(f"semantic mIoU before phase 2: {before:.4f}, after: {after:.4f}")


def run_training(config: TrainConfig, *, out_dir: str | Path | None = None, resume: bool = False,
                 progress: bool = True, stop_at_step: int | None = None) -> TrainResult:
    """Train one phase as configured; the Python API behind ``semantic-depth train``.

    ``out_dir`` overrides ``config.out_dir``; ``resume`` continues the run in that folder exactly where its last
    run-state checkpoint stopped (same step, optimiser/scaler/scheduler state and data order);
    ``stop_at_step`` ends early after that many updates (the schedule still spans ``config.steps``), saving a
    run state to resume from. Works in one process or under ``torchrun`` (rank 0 logs and writes).
    """
    started = time.perf_counter()
    run_dir = Path(out_dir) if out_dir is not None else config.run_dir()
    config = config.replace(out_dir=str(run_dir), resume=bool(resume))
    ctx = detect_context()
    device = select_device(config.device, ctx)
    created = init_process_group(ctx, device)
    try:
        run = prepare_run(config, run_dir, resume, progress, ctx, device)
        try:
            if resume and run.step == 0:
                run.logger.print(f"nothing to resume in {run_dir}: starting a new run")
            announce(run, resumed=run.step > 0)
            validate_before(run)
            stop = config.steps if stop_at_step is None else min(config.steps, int(stop_at_step))
            train_loop(run, stop)
            return finish(run, started)
        finally:
            run.logger.close()
    finally:
        destroy_process_group(created)

"""The two-phase conditional-flow training loop and its Python API ``run_training``.

The pieces live by job: ``model_setup`` (config, network, freezing, optimiser), ``step`` (one update),
``run`` (building/restoring a run and saving its files), ``run_folder`` (file names); this module drives them.

Phase 1 (conditional flow): a depth batch runs the trunk and the DC head only (cross-entropy over depth bins on
valid pixels); a semantic batch runs the trunk and the SC head only (cross-entropy, ignore 255). The head that
did not run has no gradient (``zero_grad(set_to_none=True)``), and AdamW skips parameters without gradient, so
its weights, optimiser moments and batch-norm statistics stay bit-identical.
Phase 2: the DRN head is added (weights from ``init_from``, DRN new) and depth batches train it with L1 on valid
canonical depth (plus optionally the DC cross-entropy); semantic batches keep the SC head usable, or ``freeze``
keeps it fixed. The validation metrics before and after phase 2 are recorded.

What a run writes: see ``run_folder``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..devices import resolve_device
from ..model.checkpoint import save_checkpoint
from .config import TrainConfig
from .distributed import barrier, destroy_process_group, detect_context, init_process_group, sync_buffers
from .flow import StreamBatchSampler
from .model_setup import set_train_mode
from .run import (Run, TrainResult, announce, model_extra, prepare_run, prerender_generated, save_state, update_best,
                  write_metrics_file)
from .run_folder import BEST_FILE, MODEL_FILE
from .step import train_step
from .validation import preview, validate


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
    device = resolve_device(config.device, local_rank=ctx.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    created = init_process_group(ctx, device)
    try:
        run = prepare_run(config, run_dir, resume, progress, ctx, device)
        try:
            if resume and run.step == 0:
                run.logger.print(f"nothing to resume in {run_dir}: starting a new run")
            announce(run, resumed=run.step > 0)
            prerender_generated(run)
            validate_before(run)
            stop = config.steps if stop_at_step is None else min(config.steps, int(stop_at_step))
            train_loop(run, stop)
            return finish(run, started)
        finally:
            run.logger.close()
    finally:
        destroy_process_group(created)

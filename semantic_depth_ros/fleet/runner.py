"""Schedule a fleet on Ray: one task per drive (or one per window of a chunked drive, and a merge task), retried
by Ray when its worker dies, gathered as they finish under one progress bar, then the fleet report.

Without an address a local Ray starts on this machine (its CPUs and GPUs; ``num_cpus`` caps the CPUs); with one,
the fleet joins that cluster (``ray start``, KubeRay, SLURM: see the README). A Ray already initialised in this
process (the tests' cluster) is used as it is. Every node must see the bags and ``out`` at the same paths.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..data.bag_reader import BagReader
from ..errors import ConfigError
from ..replay.run import BagRun
from .drives import Drive, chunk_windows
from .report import write_fleet_report
from .results import FAILED, DriveResult, existing
from .tasks import clear_partials, merge_drive, one_line, replay_chunk, replay_drive

SECOND_NS = 1_000_000_000


@dataclass(frozen=True)
class FleetSettings:
    """How the fleet runs (see ``semantic-depth fleet --help``)."""

    out: Path
    ray_address: str | None = None
    num_cpus: int | None = None  # local Ray only
    cpus_per_drive: float = 1.0
    gpus_per_drive: float | None = None  # None: 1 when the cluster has GPUs, else 0
    max_retries: int = 2
    chunk_s: float | None = None
    warmup_s: float = 1.0  # chunks after the first start this early when the run has stages
    progress: bool = True

    def __post_init__(self) -> None:
        if not (math.isfinite(self.cpus_per_drive) and self.cpus_per_drive > 0):
            raise ConfigError(f"--cpus-per-drive {self.cpus_per_drive} must be a positive number")
        if self.gpus_per_drive is not None and not (math.isfinite(self.gpus_per_drive) and self.gpus_per_drive >= 0):
            raise ConfigError(f"--gpus-per-drive {self.gpus_per_drive} must be a number >= 0")
        if self.max_retries < 0:
            raise ConfigError(f"--max-retries {self.max_retries} must be >= 0")
        if self.chunk_s is not None and not (math.isfinite(self.chunk_s) and self.chunk_s > 0):
            raise ConfigError(f"--chunk-s {self.chunk_s} must be a positive number of seconds")
        if not (math.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise ConfigError(f"--chunk-warmup-s {self.warmup_s} must be a number of seconds >= 0")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"--num-cpus {self.num_cpus} must be at least 1")


def import_ray() -> Any:
    """The ``ray`` module, or one line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("semantic-depth fleet needs Ray: pip install 'semantic_depth_ros[fleet]' (or ray)") from None
    return ray


def _worker_run(run: BagRun, gpus: float, cpus: float) -> BagRun:
    """The run as a task executes it: on the CPU without a GPU share, with as many torch threads as CPUs."""
    model = run.model
    if gpus == 0 and model.device == "auto":
        model = dataclasses.replace(model, device="cpu")
    if model.num_threads is None:
        model = dataclasses.replace(model, num_threads=max(1, int(cpus)))
    return dataclasses.replace(run, model=model, options=dataclasses.replace(run.options, progress=False))


class _Fleet:
    """One fleet run: submits tasks, collects results."""

    def __init__(self, ray: Any, run: BagRun, settings: FleetSettings) -> None:
        self.ray, self.settings = ray, settings
        gpus = settings.gpus_per_drive
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        self.run = _worker_run(run, gpus, settings.cpus_per_drive)
        replay = dict(num_cpus=settings.cpus_per_drive, num_gpus=gpus, max_retries=settings.max_retries)
        self.drive_task = ray.remote(replay_drive).options(**replay)
        self.chunk_task = ray.remote(replay_chunk).options(**replay)
        self.merge_task = ray.remote(merge_drive).options(num_cpus=min(1.0, settings.cpus_per_drive),
                                                          max_retries=settings.max_retries)
        self.tasks = 0
        self.chunks: dict[Any, list[Any]] = {}  # a chunked drive's merge -> its window tasks (to cancel them too)

    def submit(self, drive: Drive) -> Any:
        """The reference of ``drive``'s result (its merge for a chunked drive)."""
        out = self.settings.out
        if self.settings.chunk_s is None:
            self.tasks += 1
            return self.drive_task.remote(drive, out, self.run)
        with BagReader(drive.bag) as bag:
            start_ns, duration_ns = bag.start_time_ns, bag.end_time_ns - bag.start_time_ns
        selection = self.run.options.selection
        has_stages = self.run.road_scale is not None or self.run.temporal is not None
        warmup = self.settings.warmup_s if has_stages else 0.0
        windows = chunk_windows(duration_ns, round(self.settings.chunk_s * SECOND_NS),
                                None if selection.start_s is None else round(selection.start_s * SECOND_NS),
                                None if selection.end_s is None else round(selection.end_s * SECOND_NS),
                                round(warmup * SECOND_NS))
        chunks = [self.chunk_task.remote(drive, window, out, self.run) for window in windows]
        self.tasks += len(chunks) + 1
        merge = self.merge_task.remote(drive, out, self.run.options.storage, start_ns, *chunks)
        self.chunks[merge] = chunks
        return merge

    def cancel(self, ref: Any) -> None:
        """Stop a drive's task (its window tasks too) at once."""
        for task in [ref, *self.chunks.get(ref, [])]:
            self.ray.cancel(task, force=True)


def _start_ray(ray: Any, settings: FleetSettings) -> bool:
    """Start or join Ray unless this process already has it; whether it was started here."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=settings.ray_address, num_cpus=settings.num_cpus, include_dashboard=False,
                 log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {settings.ray_address}" if settings.ray_address else "a local Ray"
        raise ConfigError(f"cannot start {where}: {one_line(exc)}") from None
    return True


def run_fleet(drives: Sequence[Drive], run: BagRun, settings: FleetSettings) -> list[DriveResult]:
    """Replay every drive not finished yet, then write the fleet report; returns the drives' results in the
    order given. KeyboardInterrupt cancels what runs (the report lists it as failed: interrupted) and is
    re-raised; what finished stays."""
    ray = import_ray()
    out = settings.out
    results = {d.name: existing(out, d.name, str(d.bag)) for d in drives if (out / d.name).exists()}
    todo = [drive for drive in drives if drive.name not in results]
    started_here, fleet, ray_start, written = False, None, 0.0, 0
    pending: dict[Any, Drive] = {}
    started = time.perf_counter()
    bar = tqdm(total=len(drives), initial=len(results), unit="drive", desc="fleet", disable=not settings.progress)

    def finished(drive: Drive, result: DriveResult) -> None:
        nonlocal written
        results[drive.name] = result
        written += result.written or 0
        bar.update(1)
        bar.set_postfix_str(f"{written / max(time.perf_counter() - started, 1e-9):.1f} frames/s", refresh=False)

    try:
        if todo:
            started_here = _start_ray(ray, settings)
            ray_start = time.perf_counter() - started
            fleet = _Fleet(ray, run, settings)
            for drive in todo:
                try:
                    pending[fleet.submit(drive)] = drive
                except Exception as exc:  # noqa: BLE001 - an unreadable bag (chunk planning) fails alone
                    finished(drive, DriveResult(drive.name, str(drive.bag), FAILED, reason=one_line(exc)))
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                drive = pending.pop(ref)
                finished(drive, _result_of(ray, ref, drive, settings.max_retries))
    except KeyboardInterrupt:
        for ref, drive in pending.items():
            fleet.cancel(ref)
            results[drive.name] = DriveResult(drive.name, str(drive.bag), FAILED, reason="interrupted (Ctrl-C)")
        raise
    finally:
        bar.close()
        wall = time.perf_counter() - started
        totals = {"out": str(out), "ray_address": settings.ray_address, "chunk_s": settings.chunk_s,
                  "tasks_submitted": fleet.tasks if fleet else 0, "wall_s": wall, "ray_start_s": ray_start,
                  "frames_written": written, "fps": written / wall if wall > 0 else 0.0}
        write_fleet_report(out, [results[d.name] for d in drives if d.name in results], totals)
        if started_here:
            ray.shutdown()  # ends this run's workers
        for drive in pending.values():  # interrupted: what a killed task had begun goes (a re-run redoes it)
            clear_partials(out / drive.name)
    return [results[d.name] for d in drives]


def _result_of(ray: Any, ref: Any, drive: Drive, retries: int) -> DriveResult:
    """The task's result, or a failure naming how the worker died after Ray's retries."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return DriveResult(drive.name, str(drive.bag), FAILED,
                           reason=f"worker lost after {retries} retries: {one_line(exc)}")

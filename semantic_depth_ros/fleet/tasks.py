"""The work of one fleet task, without Ray: replay a drive (or one time window of it) with infer-bag's own
:func:`~..replay.run.run_bag`, merge a chunked drive, and turn a failure into its one-line reason.

An exception inside a replay (a corrupt bag, a missing topic) is that drive's failure, returned, not raised: it
would fail the same way on a retry. Only a dead worker process is retried (by Ray, ``--max-retries``).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import SemanticDepthError
from ..replay.frames import Selection
from ..replay.run import BagRun, estimator_for, run_bag
from .drives import Drive, Window
from .merge import merge_chunks
from .results import DONE, FAILED, STATE, DriveResult, drive_metrics, write_record

FAULT_ENV = "SEMANTIC_DEPTH_FLEET_TEST_KILL"  # tests only: a folder; see kill_if_asked


@dataclass(frozen=True)
class ChunkResult:
    """One window of a chunked drive: its folder and counts, or why it failed."""

    window: Window
    folder: Path
    read: int = 0
    written: int = 0
    skipped: int = 0
    scored: int = 0
    wall_s: float = 0.0
    error: str = ""


def one_line(error: BaseException) -> str:
    """The reason a drive failed, on one line (the package's own errors are already written for people)."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, SemanticDepthError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def kill_if_asked(task: str) -> None:
    """Fault injection for the tests: when the folder named by ``$SEMANTIC_DEPTH_FLEET_TEST_KILL`` holds a file
    named ``task``, remove it and end this worker process at once (as a crash or the OOM killer would), so Ray's
    retry is exercised. Nobody else sets the variable."""
    folder = os.environ.get(FAULT_ENV)
    if not folder:
        return
    flag = Path(folder) / task
    try:
        flag.unlink()
    except FileNotFoundError:
        return
    os._exit(1)


def clear_partials(target: Path) -> None:
    """Remove ``target``'s partial folders left by a killed worker (this task now owns the drive)."""
    for partial in target.parent.glob(f"{target.name}.partial-*"):
        shutil.rmtree(partial, ignore_errors=True)


def chunks_folder(out: Path, name: str) -> Path:
    return out / STATE / "chunks" / name


def replay_drive(drive: Drive, out: Path, run: BagRun) -> DriveResult:
    """Replay ``drive`` into ``out/<name>`` as ``infer-bag --out out/<name>`` would."""
    kill_if_asked(drive.name)
    target = out / drive.name
    clear_partials(target)
    started = time.perf_counter()
    try:
        summary = run_bag(drive.bag, target, run, estimator_for(run.model)).summary
    except Exception as exc:  # noqa: BLE001 - the drive fails alone, with its reason
        return DriveResult(drive.name, str(drive.bag), FAILED, reason=one_line(exc))
    result = DriveResult(drive.name, str(drive.bag), DONE, read=summary.read, written=summary.written,
                         skipped=summary.skipped, scored=summary.scored, wall_s=time.perf_counter() - started,
                         metrics=drive_metrics(target))
    write_record(out, result)
    return result


def _window_selection(selection: Selection, window: Window) -> Selection:
    seconds = 1e-9
    return dataclasses.replace(
        selection, start_s=None if window.start_ns is None else window.start_ns * seconds,
        end_s=None if window.end_ns is None else (window.end_ns - 1) * seconds, warmup_s=window.warmup_ns * seconds)


def replay_chunk(drive: Drive, window: Window, out: Path, run: BagRun) -> ChunkResult:
    """Replay one window of ``drive`` into its chunk folder (kept until the merge)."""
    kill_if_asked(f"{drive.name}.{window.index}")
    folder = chunks_folder(out, drive.name) / f"{window.index:05d}"
    folder.parent.mkdir(parents=True, exist_ok=True)
    clear_partials(folder)
    if folder.exists():  # an earlier attempt finished this window and died later
        shutil.rmtree(folder)
    options = dataclasses.replace(run.options, selection=_window_selection(run.options.selection, window))
    started = time.perf_counter()
    try:
        summary = run_bag(drive.bag, folder, dataclasses.replace(run, options=options),
                          estimator_for(run.model)).summary
    except Exception as exc:  # noqa: BLE001 - the drive fails alone, with its reason
        return ChunkResult(window, folder, error=one_line(exc))
    return ChunkResult(window, folder, summary.read, summary.written, summary.skipped, summary.scored,
                       time.perf_counter() - started)


def merge_drive(drive: Drive, out: Path, storage: str, bag_start_ns: int, *chunks: ChunkResult) -> DriveResult:
    """The drive from its chunks (in window order) at ``out/<name>``; its first failed chunk fails it."""
    failed = next((chunk for chunk in chunks if chunk.error), None)
    if failed is not None:
        return DriveResult(drive.name, str(drive.bag), FAILED, reason=failed.error, chunks=len(chunks))
    target = out / drive.name
    clear_partials(target)
    started = time.perf_counter()
    try:
        merge_chunks([(chunk.window, chunk.folder) for chunk in chunks], target, storage, bag_start_ns)
    except Exception as exc:  # noqa: BLE001 - the drive fails alone, with its reason
        return DriveResult(drive.name, str(drive.bag), FAILED, reason=f"merging chunks: {one_line(exc)}",
                           chunks=len(chunks))
    wall = sum(chunk.wall_s for chunk in chunks) + time.perf_counter() - started
    result = DriveResult(drive.name, str(drive.bag), DONE, read=sum(c.read for c in chunks),
                         written=sum(c.written for c in chunks), skipped=sum(c.skipped for c in chunks),
                         scored=sum(c.scored for c in chunks), wall_s=wall, chunks=len(chunks),
                         metrics=drive_metrics(target))
    write_record(out, result)
    shutil.rmtree(chunks_folder(out, drive.name), ignore_errors=True)
    return result

"""What the fleet knows of each drive: :class:`DriveResult`, and its record beside the outputs.

A finished drive leaves ``DIR/<drive>/`` (infer-bag's output folder, moved into place atomically) and then its
record ``DIR/.fleet/<drive>.json`` (the counts, wall time and metrics of the run). A re-run skips a drive whose
folder exists and reports it from the record (from ``metrics.json`` alone when the record is missing).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data.fileio import write_json

STATE = ".fleet"  # DIR/.fleet: the records, the chunks of long drives
DONE, FAILED, SKIPPED = "done", "failed", "skipped-existing"


@dataclass
class DriveResult:
    """One drive of the fleet (``metrics``: metrics.json's ``drive``, ``{"50": {...}, "80": {...}}``)."""

    name: str
    bag: str
    status: str
    reason: str = ""
    read: int | None = None
    written: int | None = None
    skipped: int | None = None
    scored: int | None = None
    wall_s: float | None = None
    chunks: int = 1
    metrics: dict[str, dict[str, float]] | None = None

    @property
    def fps(self) -> float | None:
        """Frames written per second of the drive's own wall time (summed over its chunks)."""
        if self.written is None or not self.wall_s:
            return None
        return self.written / self.wall_s

    def as_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "fps": self.fps}


def record_path(out: Path, name: str) -> Path:
    return out / STATE / f"{name}.json"


def write_record(out: Path, result: DriveResult) -> None:
    """Record a finished drive (after its folder is in place)."""
    record_path(out, result.name).parent.mkdir(parents=True, exist_ok=True)
    write_json(record_path(out, result.name), result.as_json())


def existing(out: Path, name: str, bag: str) -> DriveResult:
    """The result of a drive finished by an earlier run (status ``skipped-existing``)."""
    fields = {field.name for field in dataclasses.fields(DriveResult)}
    try:
        record = json.loads(record_path(out, name).read_text(encoding="utf-8"))
        values = {key: value for key, value in record.items() if key in fields}
    except (OSError, ValueError):
        values = {"metrics": drive_metrics(out / name)}
    return DriveResult(**{**values, "name": name, "bag": bag, "status": SKIPPED, "reason": ""})


def drive_metrics(folder: Path) -> dict[str, dict[str, float]] | None:
    """metrics.json's ``drive`` of an output folder (None without scoring)."""
    try:
        return json.loads((folder / "metrics.json").read_text(encoding="utf-8"))["drive"]
    except (OSError, ValueError, KeyError):
        return None

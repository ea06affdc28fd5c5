"""The paper's whole Table I (Gurram et al., IEEE ITS Magazine 2021, KITTI Eigen split), read from installed data.

``reference/paper_table1.csv`` holds every row of the table at both caps with every metric it reports: the
compared methods (Liu, Godard, Cao, Kuznietsov, Xu, Luo, Garg) and the paper's DRN, DC-DRN and DSC-DRN. Lines
starting with ``#`` are comments; an empty cell is a value the paper does not report (shown as ``n/a``).
Cells are kept as the paper prints them (``0.0492`` stays ``0.0492``).
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.resources import REFERENCE_DIR, find_data_file

PAPER_TABLE_FILE = "paper_table1.csv"
PAPER_METRICS: tuple[str, ...] = ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "a1", "a2", "a3")
"""Metric columns of the CSV (the paper's Table I columns), in order."""
PAPER_SOURCE = "Gurram et al., IEEE Intelligent Transportation Systems Magazine 2021, Table I (KITTI Eigen split)"


@dataclass(frozen=True)
class PaperRow:
    """One method of the paper's Table I at one cap (metres): ``cells`` as printed, only the reported metrics."""

    method: str
    cap: float
    cells: Mapping[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, float]:
        """The reported metrics as numbers."""
        return {key: float(text) for key, text in self.cells.items()}


def read_paper_table(path: str | os.PathLike[str]) -> tuple[PaperRow, ...]:
    """Rows of a Table I CSV (header ``method,cap_m,<metrics>``); ConfigError naming the file and line."""
    path = Path(path)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    reader = csv.DictReader(lines)
    expected = ["method", "cap_m", *PAPER_METRICS]
    if reader.fieldnames != expected:
        raise ConfigError(f"{path}: header must be {','.join(expected)}, got {','.join(reader.fieldnames or [])}")
    rows = []
    for number, record in enumerate(reader, start=2):
        try:
            cap = float(record["cap_m"])
            cells = {key: record[key].strip() for key in PAPER_METRICS if record[key] and record[key].strip()}
            if not (math.isfinite(cap) and all(math.isfinite(float(text)) for text in cells.values())):
                raise ValueError("not finite")
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: data row {number - 1} ({record.get('method')!r}) "
                              f"is malformed ({exc})") from None
        rows.append(PaperRow(method=record["method"].strip(), cap=cap, cells=cells))
    if not rows:
        raise ConfigError(f"{path}: no rows")
    return tuple(rows)


@functools.lru_cache(maxsize=1)
def paper_rows() -> tuple[PaperRow, ...]:
    """Every row of the installed Table I (ConfigError if the data file is not installed)."""
    path = find_data_file(REFERENCE_DIR, PAPER_TABLE_FILE)
    if path is None:
        raise ConfigError(f"the paper's table {REFERENCE_DIR}/{PAPER_TABLE_FILE} is not installed")
    return read_paper_table(path)


def paper_rows_at(cap: float) -> list[PaperRow]:
    """The paper's rows at ``cap`` metres, in the paper's order (empty for a cap the paper does not use)."""
    return [row for row in paper_rows() if row.cap == float(cap)]

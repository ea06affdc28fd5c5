"""Evaluation reports: Markdown tables in the layout of the paper's Table I, and JSON, written atomically.

The paper's rows hold only the numbers this package actually records from the paper (Gurram et al., IEEE ITS
Magazine 2021, KITTI Eigen split): DSC-DRN at the 80 m cap, abs_rel 0.100, rmse 4.298, a1 0.874. Every other cell
of the paper's rows is printed as ``n/a`` with a footnote saying so; no value is guessed.

``results`` layout for :func:`write_report` (every key optional; other keys are metadata, kept in the JSON and
listed in the Markdown)::

    {"depth": [{"method": str, "cap": float (m), "metrics": {abs_rel, sq_rel, rmse, rmse_log, a1, a2, a3, ...}}],
     "semantic": [{"method": str, "miou": float, "pixel_accuracy": float, "iou": {class_name: float}}],
     "checkpoint": "...", "dataset": "...", ...}
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from semantic_depth_ros.data.fileio import write_atomic
from semantic_depth_ros.errors import ConfigError, InvalidInputError

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("abs_rel", "Abs Rel ↓"),
    ("sq_rel", "Sq Rel ↓"),
    ("rmse", "RMSE ↓"),
    ("rmse_log", "RMSE log ↓"),
    ("a1", "δ<1.25 ↑"),
    ("a2", "δ<1.25² ↑"),
    ("a3", "δ<1.25³ ↑"),
)
"""(metric key, column header) of the depth table, after the Method and Cap columns, in the paper's order."""

NOT_AVAILABLE = "n/a"
PAPER_SOURCE = "Gurram et al., IEEE Intelligent Transportation Systems Magazine 2021, Table I (KITTI Eigen split)"
PAPER_FOOTNOTE = (
    f"Paper rows: {PAPER_SOURCE}. n/a = value not recorded in this package; only DSC-DRN at the 80 m cap "
    "(abs_rel 0.100, rmse 4.298, a1 0.874) is recorded."
)


@dataclass(frozen=True)
class PaperRow:
    """One method of the paper's Table I at one cap (metres); ``metrics`` holds only the recorded values."""

    method: str
    cap: float
    metrics: Mapping[str, float] = field(default_factory=dict)


PAPER_ROWS: tuple[PaperRow, ...] = tuple(
    PaperRow(f"{method} (paper)", cap, {"abs_rel": 0.100, "rmse": 4.298, "a1": 0.874} if recorded else {})
    for cap in (50.0, 80.0)
    for method, recorded in (("DRN", False), ("DC-DRN", False), ("DSC-DRN", cap == 80.0))
)


def _format_value(value: Any) -> str:
    """A metric cell: 3 decimals, ``nan`` for non-finite values, ``n/a`` when missing."""
    if value is None:
        return NOT_AVAILABLE
    number = float(value)
    return f"{number:.3f}" if math.isfinite(number) else "nan"


def _format_cap(cap: float) -> str:
    """The Cap cell, e.g. ``80 m``."""
    return f"{cap:g} m"


def _check_cap(cap: float) -> float:
    """Return ``cap`` as float, rejecting non-positive or non-finite caps (ConfigError naming the value)."""
    value = float(cap)
    if not (math.isfinite(value) and value > 0.0):
        raise ConfigError(f"depth cap must be a positive number of metres, got {cap}")
    return value


def _table(header: list[str], align: list[str], body: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return lines


def format_depth_table(rows: list[tuple[str, Mapping[str, float]]], *, cap: float, include_paper: bool = True) -> str:
    """Markdown depth table (Method, Cap, Abs Rel, Sq Rel, RMSE, RMSE log, δ<1.25, δ<1.25², δ<1.25³).

    Args:
        rows: (method name, metrics dict as returned by ``compute_depth_metrics``/the accumulator) of our runs.
        cap: maximum evaluated depth, metres; selects the paper rows of that cap.
        include_paper: append the paper's rows for ``cap`` (with their footnote) when the paper has any.
    """
    cap = _check_cap(cap)
    paper = [row for row in PAPER_ROWS if row.cap == cap] if include_paper else []
    named = list(rows) + [(row.method, row.metrics) for row in paper]
    body = [
        [method, _format_cap(cap)] + [_format_value(metrics.get(key)) for key, _ in TABLE_COLUMNS]
        for method, metrics in named
    ]
    header = ["Method", "Cap"] + [title for _, title in TABLE_COLUMNS]
    lines = _table(header, ["---", "---"] + ["---:"] * len(TABLE_COLUMNS), body)
    if paper:
        lines += ["", PAPER_FOOTNOTE]
    return "\n".join(lines) + "\n"


def format_semantic_table(rows: list[tuple[str, Mapping[str, Any]]]) -> str:
    """Markdown semantic table: Method, mIoU, pixel accuracy; then per-class IoU (classes x methods) if given."""
    lines = _table(
        ["Method", "mIoU ↑", "Pixel acc. ↑"],
        ["---", "---:", "---:"],
        [[name, _format_value(res.get("miou")), _format_value(res.get("pixel_accuracy"))] for name, res in rows],
    )
    class_names: list[str] = []
    for method, result in rows:
        if not isinstance(result.get("iou", {}), Mapping):
            raise InvalidInputError(f"semantic iou of {method!r} must map class names to IoU values")
        class_names += [name for name in result.get("iou", {}) if name not in class_names]
    if class_names:
        lines += [""] + _table(
            ["Class"] + [method for method, _ in rows],
            ["---"] + ["---:"] * len(rows),
            [[name] + [_format_value(result.get("iou", {}).get(name)) for _, result in rows] for name in class_names],
        )
    return "\n".join(lines) + "\n"


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as strict JSON data: numpy scalars/arrays to Python, non-finite floats to None."""
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, f"{where}.{key}" if where else str(key)) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist(), where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise InvalidInputError(f"report field {where} has type {type(value).__name__}, which JSON cannot hold")


def _entries(results: Mapping[str, Any], key: str, required: tuple[str, ...]) -> list[Mapping[str, Any]]:
    """The list ``results[key]``, checking that every entry is a mapping with the ``required`` fields."""
    entries = results.get(key, [])
    if not isinstance(entries, (list, tuple)):
        raise InvalidInputError(f"report field {key} must be a list, got {type(entries).__name__}")
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"report field {key}[{index}] must be a mapping, got {type(entry).__name__}")
        for name in required:
            if name not in entry:
                raise InvalidInputError(f"report field {key}[{index}] lacks {name!r}")
    return list(entries)


def format_report(results: Mapping[str, Any]) -> str:
    """The whole Markdown report: metadata, one depth table per cap (ascending), the semantic table."""
    depth = _entries(results, "depth", ("method", "cap", "metrics"))
    semantic = _entries(results, "semantic", ("method",))
    lines = ["# Evaluation report", ""]
    metadata = {key: value for key, value in results.items() if key not in ("depth", "semantic")}
    lines += [f"- {key}: {json.dumps(_jsonable(value, key), ensure_ascii=False)}" for key, value in metadata.items()]
    if metadata:
        lines.append("")
    for cap in sorted({_check_cap(entry["cap"]) for entry in depth}):
        rows = [(str(entry["method"]), entry["metrics"]) for entry in depth if float(entry["cap"]) == cap]
        lines += [f"## Depth, cap {_format_cap(cap)}", "", format_depth_table(rows, cap=cap)]
    if semantic:
        lines += ["## Semantic segmentation", "", format_semantic_table([(str(e["method"]), e) for e in semantic])]
    return "\n".join(lines).rstrip("\n") + "\n"


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (temp file in the same folder, then ``os.replace``)."""
    write_atomic(path, text.encode("utf-8"))


def write_report(path_stem: str | os.PathLike[str], results: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``<path_stem>.json`` (strict JSON, NaN as null) and ``<path_stem>.md``; returns (json_path, md_path).

    Both files are written atomically and the parent folder is created. Raises InvalidInputError naming a field
    of ``results`` that is malformed or not JSON-serialisable.
    """
    if not isinstance(results, Mapping):
        raise InvalidInputError(f"report results must be a mapping, got {type(results).__name__}")
    stem = os.fspath(path_stem)
    json_path, md_path = Path(stem + ".json"), Path(stem + ".md")
    markdown = format_report(results)
    payload = json.dumps(_jsonable(results, ""), indent=2, ensure_ascii=False, allow_nan=False)
    _atomic_write_text(json_path, payload + "\n")
    _atomic_write_text(md_path, markdown)
    return json_path, md_path

"""Evaluation reports: Markdown tables in the layout of the paper's Table I, and JSON, written atomically.

The paper's rows are its whole Table I (:mod:`semantic_depth_ros.evaluation.paper_table`, installed
``reference/paper_table1.csv``): every method at the table's cap, printed as the paper prints them, with ``n/a``
only where the paper reports nothing.

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
from pathlib import Path
from typing import Any, Mapping

from semantic_depth_ros.data.fileio import to_json_data, write_json
from semantic_depth_ros.files import write_atomic
from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.evaluation.paper_table import PAPER_SOURCE, paper_rows_at

TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("abs_rel", "Abs Rel ↓"),
    ("sq_rel", "Sq Rel ↓"),
    ("rmse", "RMSE ↓"),
    ("rmse_log", "RMSE log ↓"),
    ("log10", "log10 ↓"),
    ("a1", "δ<1.25 ↑"),
    ("a2", "δ<1.25² ↑"),
    ("a3", "δ<1.25³ ↑"),
)
"""(metric key, column header) of the depth table, after the Method and Cap columns, in the paper's order."""

NOT_AVAILABLE = "n/a"
PAPER_FOOTNOTE = (f"Paper rows: {PAPER_SOURCE}, as printed there; n/a = not reported in the paper. "
                  "(paper) rows are the paper's own DRN, DC-DRN and DSC-DRN.")


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
    """Markdown depth table (Method, Cap, Abs Rel, Sq Rel, RMSE, RMSE log, log10, δ<1.25, δ<1.25², δ<1.25³).

    Args:
        rows: (method name, metrics dict as returned by ``compute_depth_metrics``/the accumulator) of our runs.
        cap: maximum evaluated depth, metres; selects the paper rows of that cap.
        include_paper: append every row of the paper's Table I at ``cap`` (with their footnote), if it has any.
    """
    cap = _check_cap(cap)
    paper = paper_rows_at(cap) if include_paper else []
    body = [[method, _format_cap(cap)] + [_format_value(metrics.get(key)) for key, _ in TABLE_COLUMNS]
            for method, metrics in rows]
    body += [[row.method, _format_cap(cap)] + [row.cells.get(key, NOT_AVAILABLE) for key, _ in TABLE_COLUMNS]
             for row in paper]
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


def format_objects_table(rows: list[Mapping[str, Any]]) -> str:
    """Depth on objects: abs rel per true class and the depth-boundary errors (pixels) of each row (``method``,
    ``class_abs_rel`` {class: {abs_rel}}, ``boundary`` {accuracy, completeness})."""
    classes: list[str] = []
    for row in rows:
        classes += [name for name in row.get("class_abs_rel", {}) if name not in classes]
    header = ["method"] + [f"abs rel {name}" for name in classes] + ["edge accuracy px", "edge completeness px"]
    body = [[str(row["method"])] + [_format_value(row.get("class_abs_rel", {}).get(name, {}).get("abs_rel"))
                                    for name in classes]
            + [_format_value(row.get("boundary", {}).get(key)) for key in ("accuracy", "completeness")]
            for row in rows]
    return "\n".join(_table(header, ["---"] + ["---:"] * (len(header) - 1), body)) + "\n"


def format_report(results: Mapping[str, Any]) -> str:
    """The whole Markdown report: metadata, one depth table per cap (ascending), depth on objects (when given),
    the semantic table."""
    depth = _entries(results, "depth", ("method", "cap", "metrics"))
    semantic = _entries(results, "semantic", ("method",))
    objects = _entries(results, "objects", ("method",))
    lines = ["# Evaluation report", ""]
    metadata = {key: value for key, value in results.items() if key not in ("depth", "semantic", "objects")}
    lines += [f"- {key}: {json.dumps(to_json_data(value, key), ensure_ascii=False, allow_nan=False)}"
              for key, value in metadata.items()]
    if metadata:
        lines.append("")
    for cap in sorted({_check_cap(entry["cap"]) for entry in depth}):
        rows = [(str(entry["method"]), entry["metrics"]) for entry in depth if float(entry["cap"]) == cap]
        lines += [f"## Depth, cap {_format_cap(cap)}", "", format_depth_table(rows, cap=cap)]
    if objects:
        lines += ["## Depth on objects (abs rel on the pixels of each true class; iBims-1 depth-boundary errors)", "",
                  format_objects_table(objects)]
    if semantic:
        lines += ["## Semantic segmentation", "", format_semantic_table([(str(e["method"]), e) for e in semantic])]
    return "\n".join(lines).rstrip("\n") + "\n"


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
    write_json(json_path, results)
    write_atomic(md_path, markdown.encode("utf-8"))
    return json_path, md_path

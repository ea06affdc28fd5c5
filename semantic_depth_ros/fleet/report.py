"""The fleet report: ``DIR/fleet_report.json`` (strict JSON), ``DIR/fleet_report.md`` and the histogram of the
drives' Abs Rel, ``DIR/fleet_abs_rel.png``.

Fleet metrics, per cap (50 and 80 m): *weighted*, each drive weighted by its scored frames (the mean over every
scored frame of the fleet), and *mean*, the mean of the drives' values (every drive weighs the same). The worst
frames come from each scored drive's ``metrics.json`` rows, with their bag time (open them in Foxglove).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..data.fileio import write_json
from ..evaluation.metrics import DEPTH_METRIC_KEYS
from ..evaluation.report import format_depth_table
from ..files import write_atomic
from ..replay.scoring import CAPS_M
from .results import DONE, FAILED, SKIPPED, DriveResult

WORST = 10
TOP_CAP = f"{max(CAPS_M):g}"
HISTOGRAM = "fleet_abs_rel.png"


def fleet_metrics(results: Sequence[DriveResult]) -> dict[str, dict[str, dict[str, float]]]:
    """``{"weighted": {cap: {metric: value, "count": frames}}, "mean": {cap: {..., "count": drives}}}``."""
    out: dict[str, dict[str, dict[str, float]]] = {"weighted": {}, "mean": {}}
    for cap in (f"{c:g}" for c in CAPS_M):
        scored = [r.metrics[cap] for r in results if r.metrics and r.metrics[cap].get("count")]
        counts = np.array([m["count"] for m in scored], dtype=np.float64)
        weighted: dict[str, float] = {"count": int(counts.sum())}
        mean: dict[str, float] = {"count": len(scored)}
        for key in DEPTH_METRIC_KEYS:
            values = np.array([np.nan if m[key] is None else m[key] for m in scored], dtype=np.float64)
            weighted[key] = float(np.sum(values * counts) / counts.sum()) if scored else float("nan")
            mean[key] = float(np.mean(values)) if scored else float("nan")
        out["weighted"][cap], out["mean"][cap] = weighted, mean
    return out


def _abs_rel(result: DriveResult) -> float | None:
    if not result.metrics or not result.metrics[TOP_CAP].get("count"):
        return None
    return result.metrics[TOP_CAP]["abs_rel"]


def worst_frames(out: Path, results: Sequence[DriveResult], count: int = WORST) -> list[dict[str, Any]]:
    """The ``count`` frames of the fleet with the largest Abs Rel at the top cap, each with its drive."""
    rows = []
    key = f"abs_rel@{TOP_CAP}"
    for result in results:
        if result.status == FAILED or not result.metrics:
            continue
        try:
            frames = json.loads((out / result.name / "metrics.json").read_text(encoding="utf-8"))["frames"]
        except (OSError, ValueError, KeyError):
            continue
        rows += [{"drive": result.name, **row} for row in frames if row.get(key) is not None]
    return sorted(rows, key=lambda row: row[key], reverse=True)[:count]


def histogram_png(values: Sequence[float], path: Path, bins: int = 20) -> None:
    """A PNG bar chart (OpenCV) of the drives' Abs Rel: ``bins`` equal bins between the smallest and largest."""
    width, height, margin = 640, 360, 48
    image = np.full((height, width, 3), 255, np.uint8)
    data = np.asarray(values, dtype=np.float64)
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.005, high + 0.005
    counts, edges = np.histogram(data, bins=bins, range=(low, high))
    top = max(int(counts.max()), 1)
    plot_w, plot_h = width - 2 * margin, height - 2 * margin
    for i, n in enumerate(counts):
        x0 = margin + int(i * plot_w / bins)
        x1 = margin + int((i + 1) * plot_w / bins) - 2
        y0 = height - margin - int(n * plot_h / top)
        cv2.rectangle(image, (x0, y0), (x1, height - margin), (180, 110, 40), thickness=-1)
    cv2.line(image, (margin, height - margin), (width - margin, height - margin), (0, 0, 0), 1)
    cv2.line(image, (margin, margin), (margin, height - margin), (0, 0, 0), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(image, f"drives by Abs Rel at {TOP_CAP} m ({data.size} drives)", (margin, 30), font, 0.55,
                (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f"{edges[0]:.3f}", (margin - 20, height - 18), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(image, f"{edges[-1]:.3f}", (width - margin - 30, height - 18), font, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(image, str(top), (8, margin + 5), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    ok, png = cv2.imencode(".png", image)
    if ok:
        write_atomic(path, png.tobytes())


def _utc(bag_time_ns: int | None) -> str:
    if bag_time_ns is None:
        return "-"
    moment = datetime.datetime.fromtimestamp(bag_time_ns / 1e9, tz=datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _markdown(results: Sequence[DriveResult], metrics: dict[str, Any], worst: list[dict[str, Any]],
              totals: dict[str, Any], picture: bool) -> str:
    counts = {status: sum(r.status == status for r in results) for status in (DONE, SKIPPED, FAILED)}
    lines = ["# Fleet validation", "",
             f"- drives: {len(results)} ({', '.join(f'{n} {s}' for s, n in counts.items())})",
             f"- frames written this run: {totals['frames_written']}; wall time {totals['wall_s']:.1f} s; "
             f"{totals['fps']:.1f} frames/s across workers", ""]
    for kind, title in (("weighted", "each drive weighted by its scored frames"),
                        ("mean", "mean of the drives' values")):
        lines += [f"## Fleet metrics: {title}", ""]
        for cap in (f"{c:g}" for c in CAPS_M):
            values = metrics[kind][cap]
            unit = "frames" if kind == "weighted" else "drives"
            lines.append(format_depth_table([(f"fleet ({values['count']} {unit})", values)], cap=float(cap),
                                            include_paper=False))
    if picture:
        lines += ["## Abs Rel of the drives", "", f"![drives by Abs Rel at {TOP_CAP} m]({HISTOGRAM})", ""]
    ranked = sorted((r for r in results if _abs_rel(r) is not None), key=_abs_rel, reverse=True)[:WORST]
    lines += [f"## Worst drives (Abs Rel at {TOP_CAP} m)", "",
              "| Drive | Scored frames | Abs Rel | RMSE (m) | δ<1.25 |", "|---|---:|---:|---:|---:|"]
    for r in ranked:
        m = r.metrics[TOP_CAP]
        lines.append(f"| {r.name} | {m['count']} | {m['abs_rel']:.3f} | {m['rmse']:.3f} | {m['a1']:.3f} |")
    key = f"@{TOP_CAP}"
    lines += ["", f"## Worst frames (Abs Rel at {TOP_CAP} m)", "",
              "| Drive | Frame | Bag time (ns) | Bag time (UTC) | Abs Rel | RMSE (m) | δ<1.25 |",
              "|---|---:|---:|---|---:|---:|---:|"]
    for row in worst:
        lines.append(f"| {row['drive']} | {row['frame']} | {row.get('bag_time_ns', '-')} | "
                     f"{_utc(row.get('bag_time_ns'))} | {row['abs_rel' + key]:.3f} | {row['rmse' + key]:.3f} | "
                     f"{row['a1' + key]:.3f} |")
    failed = [r for r in results if r.status == FAILED]
    if failed:
        lines += ["", "## Failed drives", "", "| Drive | Bag | Reason |", "|---|---|---|"]
        lines += [f"| {r.name} | {r.bag} | {r.reason.replace('|', '/')} |" for r in failed]
    return "\n".join(lines) + "\n"


def write_fleet_report(out: Path, results: Sequence[DriveResult], totals: dict[str, Any]) -> Path:
    """``fleet_report.json``, ``fleet_report.md`` (and the histogram when a drive is scored) in ``out``."""
    metrics = fleet_metrics(results)
    worst = worst_frames(out, results)
    values = [v for v in map(_abs_rel, results) if v is not None]
    if values:
        histogram_png(values, out / HISTOGRAM)
    write_json(out / "fleet_report.json", {**totals, "fleet": metrics, "worst_frames": worst,
                                            "drives": [r.as_json() for r in results]})
    write_atomic(out / "fleet_report.md", _markdown(results, metrics, worst, totals, bool(values)).encode("utf-8"))
    return out / "fleet_report.md"

"""Paper comparison tables and the JSON / Markdown report files."""

import json
from pathlib import Path

import numpy as np
import pytest

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.evaluation import report
from semantic_depth_ros.evaluation.report import (
    PAPER_ROWS,
    format_depth_table,
    format_semantic_table,
    write_report,
)

OURS = {"abs_rel": 0.12345, "sq_rel": 0.9, "rmse": 4.5, "rmse_log": 0.2, "log10": 0.05}
OURS |= {"a1": 0.8561, "a2": 0.95, "a3": 0.98}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_paper_rows_hold_only_the_recorded_numbers() -> None:
    recorded = {(row.method, row.cap): dict(row.metrics) for row in PAPER_ROWS if row.metrics}
    assert recorded == {("DSC-DRN (paper)", 80.0): {"abs_rel": 0.100, "rmse": 4.298, "a1": 0.874}}
    assert {row.method for row in PAPER_ROWS} == {"DRN (paper)", "DC-DRN (paper)", "DSC-DRN (paper)"}
    assert {row.cap for row in PAPER_ROWS} == {50.0, 80.0}


def test_depth_table_layout_numbers_and_paper_row() -> None:
    text = format_depth_table([("ours (DSC-DRN)", OURS)], cap=80)
    lines = text.splitlines()
    assert _cells(lines[0]) == [
        "Method", "Cap", "Abs Rel ↓", "Sq Rel ↓", "RMSE ↓", "RMSE log ↓", "δ<1.25 ↑", "δ<1.25² ↑", "δ<1.25³ ↑",
    ]
    assert _cells(lines[1]) == ["---", "---"] + ["---:"] * 7
    ours = ["ours (DSC-DRN)", "80 m", "0.123", "0.900", "4.500", "0.200", "0.856", "0.950", "0.980"]
    assert _cells(lines[2]) == ours
    assert _cells(lines[3]) == ["DRN (paper)", "80 m"] + ["n/a"] * 7
    assert _cells(lines[4]) == ["DC-DRN (paper)", "80 m"] + ["n/a"] * 7
    assert _cells(lines[5]) == ["DSC-DRN (paper)", "80 m", "0.100", "n/a", "4.298", "n/a", "0.874", "n/a", "n/a"]
    assert lines[6] == ""
    assert lines[7].startswith("Paper rows: Gurram et al.") and "n/a = value not recorded in this package" in lines[7]
    assert len(lines) == 8


def test_depth_table_at_50_m_has_only_na_paper_cells_and_can_omit_paper() -> None:
    lines = format_depth_table([("ours", OURS)], cap=50.0).splitlines()
    assert [_cells(line)[0] for line in lines[2:5]] == ["ours", "DRN (paper)", "DC-DRN (paper)"]
    assert _cells(lines[5]) == ["DSC-DRN (paper)", "50 m"] + ["n/a"] * 7
    bare = format_depth_table([("ours", {"abs_rel": float("nan")})], cap=50.0, include_paper=False).splitlines()
    assert len(bare) == 3 and "Paper rows" not in "".join(bare)
    assert _cells(bare[2]) == ["ours", "50 m", "nan"] + ["n/a"] * 6


def test_depth_table_rejects_a_bad_cap() -> None:
    with pytest.raises(ConfigError, match="depth cap must be a positive number of metres, got -3"):
        format_depth_table([], cap=-3)


def test_semantic_table_with_per_class_iou() -> None:
    result = {"miou": 0.61234, "pixel_accuracy": 0.9, "iou": {"road": 0.95, "sky": 0.5}}
    text = format_semantic_table([("ours", result)])
    lines = text.splitlines()
    assert _cells(lines[0]) == ["Method", "mIoU ↑", "Pixel acc. ↑"]
    assert _cells(lines[2]) == ["ours", "0.612", "0.900"]
    assert _cells(lines[4]) == ["Class", "ours"]
    assert _cells(lines[6]) == ["road", "0.950"] and _cells(lines[7]) == ["sky", "0.500"]


def test_write_report_writes_strict_json_and_markdown(tmp_path: Path) -> None:
    results = {
        "checkpoint": "runs/a/best.pt",
        "depth": [
            {"method": "ours", "cap": 80.0, "metrics": {**OURS, "count": np.int64(697)}},
            {"method": "ours", "cap": 50.0, "metrics": {**OURS, "sq_rel": np.float32(np.nan)}},
        ],
        "semantic": [{"method": "ours", "miou": 0.5, "pixel_accuracy": 0.8, "iou": {"road": 0.5, "sky": np.nan}}],
        "caps": np.array([50.0, 80.0]),
    }
    json_path, md_path = write_report(tmp_path / "out" / "eval", results)
    assert (json_path, md_path) == (tmp_path / "out" / "eval.json", tmp_path / "out" / "eval.md")
    loaded = json.loads(json_path.read_text(encoding="utf-8"))
    assert loaded["depth"][0]["metrics"]["count"] == 697
    assert loaded["depth"][1]["metrics"]["sq_rel"] is None
    assert loaded["semantic"][0]["iou"] == {"road": 0.5, "sky": None}
    assert loaded["caps"] == [50.0, 80.0]
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.index("## Depth, cap 50 m") < markdown.index("## Depth, cap 80 m") < markdown.index("## Semantic")
    assert '- checkpoint: "runs/a/best.pt"' in markdown
    assert "| DSC-DRN (paper) | 80 m | 0.100 | n/a | 4.298 |" in markdown
    assert "| sky | nan |" in markdown
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["eval.json", "eval.md"]  # no temp files left


def test_write_report_replaces_atomically_and_leaves_old_file_on_failure(tmp_path: Path, monkeypatch) -> None:
    json_path, _ = write_report(tmp_path / "r", {"depth": [{"method": "a", "cap": 80, "metrics": OURS}]})
    before = json_path.read_text(encoding="utf-8")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(tmp_path / "r", {"depth": [{"method": "b", "cap": 80, "metrics": OURS}]})
    assert json_path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.md"]


def test_write_report_names_malformed_fields(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"report field depth\[0\] lacks 'cap'"):
        write_report(tmp_path / "r", {"depth": [{"method": "a", "metrics": {}}]})
    with pytest.raises(InvalidInputError, match=r"report field extra.inner has type object, which JSON cannot hold"):
        write_report(tmp_path / "r", {"extra": {"inner": object()}})
    with pytest.raises(InvalidInputError, match="semantic iou of 'a' must map class names"):
        write_report(tmp_path / "r", {"semantic": [{"method": "a", "iou": [0.5]}]})
    assert not any(tmp_path.iterdir())

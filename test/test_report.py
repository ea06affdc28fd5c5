"""Paper comparison tables and the JSON / Markdown report files."""

import json
from pathlib import Path

import numpy as np
import pytest

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.evaluation import report
from semantic_depth_ros.evaluation.paper_table import PAPER_METRICS, paper_rows, paper_rows_at, read_paper_table
from semantic_depth_ros.evaluation.report import (
    format_depth_table,
    format_semantic_table,
    write_report,
)

OURS = {"abs_rel": 0.12345, "sq_rel": 0.9, "rmse": 4.5, "rmse_log": 0.2, "log10": 0.05}
OURS |= {"a1": 0.8561, "a2": 0.95, "a3": 0.98}


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def test_paper_rows_are_the_whole_installed_table_i() -> None:
    rows = paper_rows()
    assert len(rows) == 22 and {row.cap for row in rows} == {50.0, 80.0}
    at80 = {row.method: row for row in paper_rows_at(80)}
    assert list(at80)[:3] == ["Liu fine-tune", "Godard K", "Godard K+CS"]
    assert at80["DSC-DRN (paper)"].metrics == {"abs_rel": 0.100, "sq_rel": 0.601, "rmse": 4.298,
                                               "rmse_log": 0.174, "log10": 0.0440, "a1": 0.874, "a2": 0.966,
                                               "a3": 0.989}
    assert set(at80["Cao"].cells) == {"abs_rel", "rmse", "rmse_log", "a1", "a2", "a3"}  # the paper omits the rest
    assert {row.method for row in paper_rows_at(50)} >= {"Garg", "DRN (paper)", "DC-DRN (paper)", "DSC-DRN (paper)"}


def test_depth_table_layout_numbers_and_every_paper_row() -> None:
    text = format_depth_table([("ours (DSC-DRN)", OURS)], cap=80)
    lines = text.splitlines()
    assert _cells(lines[0]) == [
        "Method", "Cap", "Abs Rel ↓", "Sq Rel ↓", "RMSE ↓", "RMSE log ↓", "log10 ↓", "δ<1.25 ↑",
        "δ<1.25² ↑", "δ<1.25³ ↑",
    ]
    assert _cells(lines[1]) == ["---", "---"] + ["---:"] * 8
    assert _cells(lines[2]) == ["ours (DSC-DRN)", "80 m", "0.123", "0.900", "4.500", "0.200", "0.050", "0.856",
                                "0.950", "0.980"]
    body = {_cells(line)[0]: _cells(line) for line in lines[3:] if line.startswith("|")}
    assert len(body) == 12
    assert body["Cao"] == ["Cao", "80 m", "0.115", "n/a", "4.712", "0.198", "n/a", "0.887", "0.963", "0.982"]
    assert body["DRN (paper)"] == ["DRN (paper)", "80 m", "0.112", "0.701", "4.424", "0.188", "0.0492", "0.848",
                                   "0.958", "0.986"]
    na_cells = sum(cells.count("n/a") for cells in body.values())
    blank_cells = sum(row.cells.get(key) is None for row in paper_rows_at(80) for key in PAPER_METRICS)
    assert na_cells == blank_cells == 9  # n/a exactly where the paper reports nothing
    assert lines[-1].startswith("Paper rows: Gurram et al.") and "n/a = not reported in the paper" in lines[-1]


def test_depth_table_at_50_m_has_the_50_m_rows_and_can_omit_paper() -> None:
    lines = format_depth_table([("ours", OURS)], cap=50.0).splitlines()
    assert [_cells(line)[0] for line in lines[2:4]] == ["ours", "Garg"]
    assert _cells(lines[12]) == ["DSC-DRN (paper)", "50 m", "0.096", "0.482", "3.338", "0.166", "0.0420", "0.886",
                                 "0.980", "0.995"]
    bare = format_depth_table([("ours", {"abs_rel": float("nan")})], cap=50.0, include_paper=False).splitlines()
    assert len(bare) == 3 and "Paper rows" not in "".join(bare)
    assert _cells(bare[2]) == ["ours", "50 m", "nan"] + ["n/a"] * 7
    assert "Paper rows" not in format_depth_table([("ours", OURS)], cap=30.0)


def test_a_malformed_paper_table_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("# c\nmethod,cap_m,abs_rel,sq_rel,rmse,rmse_log,log10,a1,a2,a3\nX,80,0.1,,zero,,,,,\n")
    with pytest.raises(ConfigError, match="t.csv: data row 1 \\('X'\\) is malformed"):
        read_paper_table(bad)


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
    loaded = json.loads(json_path.read_text(encoding="utf-8"), parse_constant=reject_constant)
    assert loaded["depth"][0]["metrics"]["count"] == 697
    assert loaded["depth"][1]["metrics"]["sq_rel"] is None
    assert loaded["semantic"][0]["iou"] == {"road": 0.5, "sky": None}
    assert loaded["caps"] == [50.0, 80.0]
    markdown = md_path.read_text(encoding="utf-8")
    assert markdown.index("## Depth, cap 50 m") < markdown.index("## Depth, cap 80 m") < markdown.index("## Semantic")
    assert '- checkpoint: "runs/a/best.pt"' in markdown
    assert "| DSC-DRN (paper) | 80 m | 0.100 | 0.601 | 4.298 |" in markdown
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
    with pytest.raises(InvalidInputError, match=r"field extra.inner has type object, which JSON cannot hold"):
        write_report(tmp_path / "r", {"extra": {"inner": object()}})
    with pytest.raises(InvalidInputError, match="semantic iou of 'a' must map class names"):
        write_report(tmp_path / "r", {"semantic": [{"method": "a", "iou": [0.5]}]})
    assert not any(tmp_path.iterdir())


def reject_constant(name: str) -> None:
    raise ValueError(f"non-standard JSON constant {name}")


def test_strict_json_writer_turns_nan_and_infinity_into_null(tmp_path: Path) -> None:
    import torch

    from semantic_depth_ros.data.fileio import dumps_json, write_json

    value = {"nan": float("nan"), "inf": np.float32(np.inf), 80.0: [-np.inf, 1.5], "t": torch.tensor([1.0, np.nan]),
             "path": tmp_path, "n": np.int64(3)}
    path = write_json(tmp_path / "x.json", value)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text, parse_constant=reject_constant) == {
        "nan": None, "inf": None, "80.0": [None, 1.5], "t": [1.0, None], "path": str(tmp_path), "n": 3}
    with pytest.raises(ValueError, match="non-standard JSON constant NaN"):  # the checker itself works
        json.loads('{"a": NaN}', parse_constant=reject_constant)
    assert json.loads(dumps_json([float("nan")], indent=None), parse_constant=reject_constant) == [None]

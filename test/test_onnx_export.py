"""ONNX export: every preset and head set exports a checked graph with our metadata, matching PyTorch (CPU)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import onnx
import pytest
import torch

from semantic_depth_ros.cli import main as cli_main
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.inference.benchmark import random_checkpoint
from semantic_depth_ros.evaluation.onnx_parity import TOLERANCES, parity_check
from semantic_depth_ros.inference.onnx_runner import OnnxRunner, load_onnx_model
from semantic_depth_ros.model.config import available_presets, load_preset
from semantic_depth_ros.model.onnx_export import USER_HEADS, export_onnx, network_heads, parse_user_heads
from semantic_depth_ros.model.onnx_format import METADATA_KEYS

HEAD_SETS = [combo for n in range(1, 4) for combo in itertools.combinations(USER_HEADS, n)]
SMALL = {"input_height": 64, "input_width": 192}


@pytest.fixture(scope="module")
def small_checkpoints() -> dict:
    """Random-weight checkpoints of every installed preset at a 64x192 input."""
    return {name: random_checkpoint(load_preset(name).replace(**SMALL), seed=1) for name in available_presets()}


def test_every_preset_is_installed(small_checkpoints: dict) -> None:
    assert set(small_checkpoints) >= {"resnet18", "resnet18_fast", "resnet34", "resnet50"}


def test_user_heads_map_to_network_heads() -> None:
    assert network_heads(("depth",), has_drn=True) == ("drn",)
    assert network_heads(("depth",), has_drn=False) == ("dc",)
    assert network_heads(("depth", "confidence"), has_drn=True) == ("dc", "drn")
    assert network_heads(("semantic",), has_drn=True) == ("sc",)
    assert parse_user_heads(" semantic , depth") == ("depth", "semantic")
    for bad in ("", "depth,sky", ","):
        with pytest.raises(ConfigError, match="subset of depth, semantic, confidence"):
            parse_user_heads(bad)


def _export_and_check(checkpoint, heads: tuple[str, ...], path: Path, height: int, width: int) -> None:
    """Export ``heads``, check graph outputs, input shape and ORT-vs-PyTorch parity within TOLERANCES."""
    expected_outputs = {"depth": ["depth"], "semantic": ["semantic_logits"], "confidence": ["dc_depth", "depth_probs"]}
    proto = export_onnx(checkpoint, heads=heads)
    onnx.checker.check_model(proto)
    assert sorted(o.name for o in proto.graph.output) == sorted({n for h in heads for n in expected_outputs[h]})
    shape = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert shape == ["batch", 3, height, width]
    path.write_bytes(proto.SerializeToString())
    report = parity_check(checkpoint, path, frames=1, num_threads=1)
    assert report.passed, (heads, report.lines())
    assert report.tolerances == TOLERANCES
    assert (report.depth_median_rel is not None) == ("depth" in heads or "confidence" in heads)
    assert (report.label_agreement is not None) == ("semantic" in heads)
    assert (report.confidence_max_abs is not None) == ("confidence" in heads)
    if report.depth_median_rel is not None:
        assert report.depth_median_rel <= 1e-3
    if report.label_agreement is not None:
        assert report.label_agreement >= 0.995
    if report.confidence_max_abs is not None:
        assert report.confidence_max_abs <= 1e-3


@pytest.mark.parametrize("heads", HEAD_SETS, ids=["+".join(h) for h in HEAD_SETS])
@pytest.mark.parametrize("preset", ["resnet18", "resnet18_fast", "resnet34", "resnet50"])
def test_every_preset_and_head_set_exports_with_parity(preset: str, heads: tuple[str, ...], small_checkpoints: dict,
                                                       tmp_path: Path) -> None:
    """The issue's matrix: every preset with every head set, at a small input size, within the parity tolerance."""
    _export_and_check(small_checkpoints[preset], heads, tmp_path / f"{preset}.onnx",
                      height=SMALL["input_height"], width=SMALL["input_width"])


def test_metadata_round_trip_rebuilds_the_config(small_checkpoints: dict, tmp_path: Path) -> None:
    checkpoint = small_checkpoints["resnet18_fast"]
    path = tmp_path / "m.onnx"
    path.write_bytes(export_onnx(checkpoint, height=96, width=320).SerializeToString())
    config, trained, heads, meta = load_onnx_model(path)
    assert config == checkpoint.config.replace(input_height=96, input_width=320)
    assert config.focal_px == checkpoint.config.focal_px
    assert trained is False
    assert heads == frozenset({"dc", "sc", "drn"})
    assert meta.class_names[0] == "road" and meta.class_names[10] == "sky" and len(meta.class_names) == 19
    assert meta.weights_precision == "fp32"
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props[METADATA_KEYS["model_config"]])["name"] == "resnet18_fast"
    assert props[METADATA_KEYS["format_version"]] == "1"


def test_model_without_drn_exports_dc_depth(tmp_path: Path) -> None:
    config = load_preset("resnet18_fast").replace(use_drn=False, **SMALL)
    checkpoint = random_checkpoint(config)
    path = tmp_path / "nodrn.onnx"
    path.write_bytes(export_onnx(checkpoint, heads="depth").SerializeToString())
    runner = OnnxRunner(path, device="cpu")
    assert runner.heads == frozenset({"dc"})
    out = runner(torch.rand(2, 3, 64, 192), ("dc",))
    assert set(out) == {"dc_depth", "depth_probs"} and out["dc_depth"].shape == (2, 1, 16, 48)
    assert parity_check(checkpoint, path, frames=1).passed


def test_fp16_export_keeps_float32_io_and_passes_its_tolerance(small_checkpoints: dict, tmp_path: Path) -> None:
    checkpoint = small_checkpoints["resnet18_fast"]
    proto = export_onnx(checkpoint, fp16=True)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert {o.type.tensor_type.elem_type for o in proto.graph.output} == {onnx.TensorProto.FLOAT}
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    path = tmp_path / "half.onnx"
    path.write_bytes(proto.SerializeToString())
    report = parity_check(checkpoint, path, frames=1)
    assert report.passed and report.tolerances != TOLERANCES
    assert OnnxRunner(path, device="cpu").precision == "fp16"


def test_parity_check_fails_for_different_weights(small_checkpoints: dict, tmp_path: Path) -> None:
    path = tmp_path / "a.onnx"
    path.write_bytes(export_onnx(small_checkpoints["resnet18_fast"]).SerializeToString())
    other = random_checkpoint(small_checkpoints["resnet18_fast"].config, seed=2)
    report = parity_check(other, path, frames=1)
    assert not report.passed
    assert report.lines()[-1].endswith("FAIL (beyond tolerance)")


def test_bad_export_options(small_checkpoints: dict) -> None:
    checkpoint = small_checkpoints["resnet18_fast"]
    with pytest.raises(ConfigError, match="opset 9 must be an integer between 13"):
        export_onnx(checkpoint, opset=9)
    with pytest.raises(ConfigError, match="input_height = 8"):
        export_onnx(checkpoint, height=8)


def test_cli_exports_and_prints_parity(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "sub" / "tiny.onnx"
    code = cli_main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out), "--parity-frames", "1"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert f"wrote {out}" in text and "UNTRAINED" in text
    assert "depth relative difference: max" in text and "label agreement: 100.000 %" in text
    assert "confidence difference: max" in text and "parity: PASS" in text
    assert load_onnx_model(out)[0].name == "tiny_test"
    assert [p.name for p in out.parent.iterdir()] == ["tiny.onnx"]  # no temp file left


def test_cli_keeps_no_file_that_failed_parity(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A model beyond the tolerance is never left under --out (nor as a temp file): exit 1, the figures printed."""
    from semantic_depth_ros.commands import export as export_command

    checked = []

    class Failed:
        passed = False

        @staticmethod
        def lines() -> list[str]:
            return ["parity: FAIL (simulated)"]

    def failing_parity(checkpoint, path, *, frames):
        checked.append(Path(path))
        assert load_onnx_model(path)[0].name == "tiny_test"  # the exported file itself is what gets checked
        return Failed()

    monkeypatch.setattr(export_command, "parity_check", failing_parity)
    out = tmp_path / "tiny.onnx"
    assert cli_main(["export", "--checkpoint", str(tiny_checkpoint), "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "parity: FAIL (simulated)" in text and f"not written: {out} (the parity check failed)" in text
    assert checked and checked[0] != out
    assert list(tmp_path.iterdir()) == []


def test_cli_errors_are_one_line(tiny_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(tiny_checkpoint.read_bytes()[:1000])
    out = str(tmp_path / "x.onnx")
    cases = [
        (["--checkpoint", str(tmp_path / "missing.pt"), "--out", out], "file not found"),
        (["--checkpoint", str(corrupt), "--out", out], "cannot be read"),
        (["--checkpoint", str(tiny_checkpoint), "--out", out, "--heads", "depth,sky"], "heads 'depth,sky'"),
        (["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path)], "is a folder"),
    ]
    for args, message in cases:
        assert cli_main(["export", *args]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.onnx").exists()

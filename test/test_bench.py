"""`semantic-depth bench`: argument parsing, the model table and a short end-to-end node run (tiny model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from helpers import TINY_MODEL

from semantic_depth_ros.cli import main as cli_main
from semantic_depth_ros.commands.bench import ALL_NODE_OUTPUTS, parse_outputs, parse_rate, parse_size
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.model.config import ModelConfig
from semantic_depth_ros.ros.client import stamp_of
from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES

pytestmark = pytest.mark.ros  # the node benchmark and its DDS client


def test_parsers() -> None:
    assert parse_size("375x1242") == (375, 1242)
    assert parse_rate("30") == 30.0 and math.isinf(parse_rate("max"))
    assert parse_outputs("depth,points") == ("depth", "points")
    assert parse_outputs("all") == ALL_NODE_OUTPUTS == tuple(OUTPUT_MESSAGES)
    for bad, parser in (("375", parse_size), ("0x10", parse_size), ("-3", parse_rate), ("fast", parse_rate),
                        ("depth,mesh", parse_outputs)):
        with pytest.raises(ConfigError):
            parser(bad)


def test_an_unusable_json_path_is_refused_before_measuring(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a_file").write_text("not a folder")
    inside_file = tmp_path / "a_file" / "b.json"
    for path, message in ((tmp_path, f"--json {tmp_path} is a folder; give a file name such as bench.json"),
                          (inside_file, f"--json {inside_file}: folder {inside_file.parent}: cannot be created")):
        assert cli_main(["bench", "--json", str(path), "--device", "cpu", "--no-node", "--presets", "nope"]) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith(f"error: {message}") and captured.err.count("\n") == 1 and not captured.out


def test_benchmark_fps_is_frames_over_the_measured_duration(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a clock that advances 1 ms per reading, every figure follows from the definition."""
    from semantic_depth_ros.inference import benchmark

    readings = iter(range(10**6))
    monkeypatch.setattr(benchmark.time, "perf_counter", lambda: next(readings) / 1000.0)
    stats = benchmark.benchmark_model(ModelConfig(**TINY_MODEL), device="cpu", height=20, width=30, warmup=2,
                                      iters=4, num_threads=1)
    # timed loop: one reading at the start, two per frame (begin, end), one at the end -> 9 ms for 4 frames
    assert (stats["p50_ms"], stats["p95_ms"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert stats["fps"] == pytest.approx(4 / 0.009)


def test_stamp_is_read_from_serialized_header() -> None:
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import Image

    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = 3, 1234
    assert stamp_of(serialize_message(msg)) == 3_000_001_234


def test_bench_model_table_and_node_run(tmp_path: Path, tiny_checkpoint: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    preset = tmp_path / "tiny.yaml"
    preset.write_text(yaml.safe_dump(ModelConfig(**TINY_MODEL).to_dict()))
    report = tmp_path / "model.json"
    assert cli_main(["bench", "--presets", str(preset), "--sizes", "48x160,20x30", "--precisions", "fp32",
                     "--iters", "2", "--warmup", "0", "--threads", "1", "--no-node", "--json", str(report)]) == 0
    rows = json.loads(report.read_text())["model"]
    # PyTorch and, beside it, the same preset exported to ONNX, per size, with the ratio of their p50
    assert [(r["preset"], r["size"], r["backend"], r["precision"], r["runtime"]) for r in rows] == [
        (str(preset), "48x160", "auto", "fp32", "torch eager fp32 on cpu"),
        (str(preset), "48x160", "onnxruntime", "fp32", "onnxruntime CPUExecutionProvider (fp32)"),
        (str(preset), "20x30", "auto", "fp32", "torch eager fp32 on cpu"),
        (str(preset), "20x30", "onnxruntime", "fp32", "onnxruntime CPUExecutionProvider (fp32)")]
    assert all(r["p95_ms"] >= r["p50_ms"] > 0 and r["peak_mem_mb"] > 0 for r in rows)
    for torch_row, onnx_row in (rows[0:2], rows[2:4]):
        assert "vs_pytorch_fp32" not in torch_row
        assert onnx_row["vs_pytorch_fp32"] == pytest.approx(torch_row["p50_ms"] / onnx_row["p50_ms"])
    out = capsys.readouterr().out
    assert "p50" in out and "onnxruntime CPUExecutionProvider (fp32)" in out
    assert cli_main(["bench", "--presets", str(preset), "--sizes", "20x30", "--precisions", "fp32", "--iters", "1",
                     "--warmup", "0", "--threads", "1", "--no-node", "--no-onnx", "--json", str(report)]) == 0
    assert [r["backend"] for r in json.loads(report.read_text())["model"]] == ["auto"]
    capsys.readouterr()

    report = tmp_path / "node.json"
    assert cli_main(["bench", "--no-model", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                     "--node-precision", "fp32", "--node-size", "48x160", "--node-outputs", "depth,points",
                     "--rates", "30", "--duration", "0.5", "--iters", "2", "--warmup", "0", "--threads", "1",
                     "--json", str(report)]) == 0
    node = json.loads(report.read_text())["node"]
    latency, rate = node["runs"]
    assert latency["mode"].startswith("latency") and rate["mode"] == "30 Hz input"
    assert latency["outputs"] == ["depth", "points"]
    assert 1 <= latency["completed"] <= latency["sent"] and latency["p95_ms"] >= latency["p50_ms"] > 0
    assert rate["sent"] >= 10 and 0 <= rate["completed"] <= rate["sent"]
    assert latency["model_p50_ms"] > 0 and latency["overhead_pct"] is not None
    assert node["node_peak_rss_mb"] > 100
    # the node's split of its time, the bytes it published, and a Python subscriber's deserialization, apart
    assert set(latency["split_ms"]) == {"decode", "network", "outputs", "publish"}
    assert all(value >= 0 for value in latency["split_ms"].values()) and latency["split_ms"]["network"] > 0
    assert latency["published_mb_per_s"] > 0 and latency["deserialize_ms"] > 0
    assert rate["split_ms"] is None
    out = capsys.readouterr().out
    assert "End to end through the node over DDS" in out and "where the time goes" in out


def test_bench_multi_camera_mode_compares_one_batched_node_with_single_camera_nodes(
        tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "cameras.json"
    assert cli_main(["bench", "--no-model", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
                     "--node-precision", "fp32", "--cameras", "2", "--size", "48x160", "--rate", "10",
                     "--node-outputs", "depth", "--duration", "1.0", "--threads", "1", "--json", str(report)]) == 0
    section = json.loads(report.read_text())["cameras"]
    assert (section["cameras"], section["size"], section["rate_hz"], section["outputs"]) == (2, "48x160", 10.0,
                                                                                           ["depth"])
    batched, separate = section["configurations"]
    assert (batched["processes"], separate["processes"]) == (1, 2)
    for configuration in (batched, separate):
        assert [run["camera"] for run in configuration["cameras"]] == ["cam0", "cam1"]
        for run in configuration["cameras"]:
            assert run["sent"] >= 8 and 1 <= run["completed"] <= run["sent"]
            assert run["output_rate_hz"] > 0 and run["p95_ms"] >= run["p50_ms"] > 0
        assert configuration["peak_rss_mb"] > 100 * configuration["processes"]
    out = capsys.readouterr().out
    assert "2 cameras at 48x160 and 10 Hz each" in out and "2 single-camera nodes" in out

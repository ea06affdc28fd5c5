"""The onnxruntime backend behind the estimator and every caller: .onnx equals .pt, refusals, bad model files.

Estimator and CLI tests run in this process; the node runs as a real process (``NodeProcess`` / its entry point)
and is read over DDS with ``DepthClient``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from semantic_depth_ros.cli import main as cli_main
from semantic_depth_ros.errors import CheckpointError, ConfigError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.evaluation.onnx_parity import parity_check, street_frames
from semantic_depth_ros.inference.onnx_runner import (CPU, CUDA, TENSORRT, OnnxRunner, default_trt_cache_dir,
                                                      io_device_for, resolve_trt_cache_dir)
from semantic_depth_ros.model.checkpoint import load_checkpoint
from semantic_depth_ros.model.onnx_export import export_onnx

HEIGHT, WIDTH = 96, 320  # camera images: larger than the 64x192 network input, another aspect ratio
K = (160.0, 0.0, 159.5, 0.0, 150.0, 47.5, 0.0, 0.0, 1.0)


@pytest.fixture(scope="module")
def models(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny checkpoint, its export (all heads), a depth-only and a semantic-only export, and bad files."""
    folder = tmp_path_factory.mktemp("onnx_models")
    checkpoint = load_checkpoint(tiny_checkpoint)
    paths = {"pt": tiny_checkpoint}
    for name, heads in (("onnx", None), ("depth_only", "depth"), ("semantic_only", "semantic")):
        paths[name] = folder / f"{name}.onnx"
        paths[name].write_bytes(export_onnx(checkpoint, heads=heads).SerializeToString())
    data = paths["onnx"].read_bytes()
    paths["truncated"] = folder / "truncated.onnx"
    paths["truncated"].write_bytes(data[: len(data) // 3])
    bare = onnx.load(str(paths["onnx"]))
    del bare.metadata_props[:]
    paths["bare"] = folder / "bare.onnx"
    paths["bare"].write_bytes(bare.SerializeToString())
    paths["missing"] = folder / "missing.onnx"
    return paths


def frame() -> tuple[np.ndarray, Intrinsics]:
    """A generated street scene (HEIGHT x WIDTH RGB) and its intrinsics."""
    return street_frames(1, HEIGHT, WIDTH, seed=3)[0], Intrinsics.from_k(K, WIDTH, HEIGHT)


def assert_equal_within_tolerance(depth: np.ndarray, labels: np.ndarray, confidence: np.ndarray,
                                  reference) -> None:
    """The issue's tolerance against the .pt estimator's outputs: median relative depth difference <= 1e-3,
    labels equal on >= 99.5 % of pixels, confidence within 1e-3; NaN where the reference is NaN (>= 99.5 %)."""
    ref_depth = reference.depth.numpy()
    assert np.mean(np.isnan(depth) == np.isnan(ref_depth)) >= 0.995
    both = np.isfinite(depth) & np.isfinite(ref_depth)
    assert both.mean() > 0.5
    assert np.median(np.abs(depth[both] / ref_depth[both] - 1.0)) <= 1e-3
    assert np.mean(labels == reference.semantic.numpy()) >= 0.995
    assert np.abs(confidence - reference.confidence.numpy()).max() <= 1e-3


# ------------------------------------------------------------------------------------------------- estimator
def test_estimator_runs_an_onnx_file_like_its_checkpoint(models: dict[str, Path]) -> None:
    rgb, intrinsics = frame()
    reference = DepthEstimator(models["pt"], device="cpu", precision="fp32").estimate(rgb, camera=intrinsics)
    estimator = DepthEstimator(str(models["onnx"]), device="cpu", precision="auto")
    assert (estimator.backend, estimator.precision, estimator.device) == ("onnxruntime", "fp32", torch.device("cpu"))
    assert estimator.runner.description == "onnxruntime CPUExecutionProvider (fp32)"
    assert estimator.model_name == "tiny_test" and estimator.trained is False
    assert estimator.available_outputs == {"depth", "semantic", "confidence", "image"}
    out = estimator.estimate(rgb, camera=intrinsics)
    assert out.depth.shape == (HEIGHT, WIDTH) and out.intrinsics == reference.intrinsics
    assert_equal_within_tolerance(out.depth.numpy(), out.semantic.numpy(), out.confidence.numpy(), reference)
    assert torch.equal(out.image, reference.image)
    # a batch of two frames of different sizes (dynamic batch axis of the exported graph)
    small = rgb[::2, ::2].copy()
    batch = estimator.estimate_batch([(rgb, intrinsics), (small, None)])
    assert batch[0].depth.shape == (HEIGHT, WIDTH) and batch[1].depth.shape == (HEIGHT // 2, WIDTH // 2)
    torch.testing.assert_close(batch[0].depth, out.depth, equal_nan=True)


def test_partial_exports_give_only_their_outputs(models: dict[str, Path]) -> None:
    rgb, intrinsics = frame()
    depth_only = DepthEstimator(models["depth_only"], device="cpu", precision="auto")
    assert depth_only.available_outputs == {"depth", "image"}
    depth_only.warmup(64, 192)  # warms up what it can give
    assert depth_only.estimate(rgb, camera=intrinsics, outputs=("depth",)).depth.shape == (HEIGHT, WIDTH)
    with pytest.raises(ConfigError, match=r"depth_only.onnx was exported without the head\(s\) sc"):
        depth_only.estimate(rgb, outputs=("semantic",))
    depth_only.mask_sky = True  # sky masking needs the semantic head
    with pytest.raises(ConfigError, match=r"mask_sky needs the semantic head, which model file .*depth_only.onnx "
                                          r"was exported without"):
        depth_only.estimate(rgb, outputs=("depth",))
    semantic_only = DepthEstimator(models["semantic_only"], device="cpu", precision="auto")
    assert semantic_only.available_outputs == {"semantic", "image"}
    with pytest.raises(ConfigError, match=r"exported without the head\(s\) drn"):
        semantic_only.estimate(rgb, outputs=("depth",))
    semantic_only.require_outputs(("semantic", "image"))
    with pytest.raises(ConfigError, match=r"semantic_only.onnx cannot give depth, confidence: it was exported "
                                          r"without the head\(s\) for it \(it gives semantic, image\)"):
        semantic_only.require_outputs(("confidence", "depth", "semantic"))


def test_options_an_onnx_model_cannot_honour_are_refused(models: dict[str, Path]) -> None:
    onnx_path = models["onnx"]
    for kwargs, message in (
            ({"precision": "bf16"}, "precision bf16 cannot be honoured by an ONNX model"),
            ({"precision": "fp16"}, "precision fp16 cannot be honoured: model file .* has fp32 weights"),
            ({"backend": "eager"}, "backend 'eager' runs PyTorch models; model file .* is ONNX"),
            ({"backend": "cudagraphs"}, "backend 'cudagraphs' runs PyTorch models"),
            ({"device": "cuda"}, "device 'cuda' needs the TensorRT or CUDA execution provider"),
            ({"num_threads": 0}, "num_threads = 0 must be a positive integer")):
        with pytest.raises(ConfigError, match=message):
            DepthEstimator(onnx_path, **kwargs)
    with pytest.raises(ConfigError, match="backend onnxruntime runs .onnx models: export the checkpoint"):
        DepthEstimator(models["pt"], device="cpu", backend="onnxruntime")
    assert DepthEstimator(onnx_path, device="cpu", precision="fp32", backend="onnxruntime").backend == "onnxruntime"


@pytest.mark.parametrize(("case", "problem"), [
    ("missing", "file not found"), ("truncated", "cannot be loaded by onnxruntime"),
    ("bare", "has no semantic_depth_ros metadata")])
def test_bad_onnx_files_are_one_line_checkpoint_errors(models: dict[str, Path], case: str, problem: str) -> None:
    with pytest.raises(CheckpointError) as info:
        DepthEstimator(models[case], device="cpu", precision="auto")
    text = str(info.value)
    assert text.startswith(f"model file {models[case]}: ") and problem in text and "\n" not in text


def test_io_device_and_trt_cache_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       models: dict[str, Path]) -> None:
    # GPU providers hand their outputs to torch on that GPU only when torch has CUDA (and that GPU)
    assert io_device_for(TENSORRT, 0, cuda_available=True, cuda_count=1) == torch.device("cuda", 0)
    assert io_device_for(CUDA, 1, cuda_available=True, cuda_count=2) == torch.device("cuda", 1)
    assert io_device_for(CUDA, 1, cuda_available=True, cuda_count=1) == torch.device("cpu")
    assert io_device_for(TENSORRT, 0, cuda_available=False, cuda_count=0) == torch.device("cpu")  # CPU-only torch
    assert io_device_for(CPU, 0, cuda_available=True, cuda_count=1) == torch.device("cpu")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_trt_cache_dir() == tmp_path / "xdg" / "semantic_depth_ros" / "trt"
    assert resolve_trt_cache_dir("") == resolve_trt_cache_dir(None) == default_trt_cache_dir()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_trt_cache_dir() == tmp_path / "home" / ".cache" / "semantic_depth_ros" / "trt"
    assert resolve_trt_cache_dir("~/engines") == tmp_path / "home" / "engines"
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=f"trt_cache_dir {blocker / 'trt'}: cannot be created"):
        OnnxRunner(models["onnx"], device="auto", trt_cache_dir=blocker / "trt",
                   available_providers=[TENSORRT, CPU])


def test_fixed_batch_graph_is_refused_for_other_batch_sizes(models: dict[str, Path], tmp_path: Path) -> None:
    proto = onnx.load(str(models["onnx"]))
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    path = tmp_path / "batch1.onnx"
    path.write_bytes(proto.SerializeToString())
    estimator = DepthEstimator(path, device="cpu", precision="auto")
    rgb, _ = frame()
    assert estimator.estimate(rgb).depth is not None
    with pytest.raises(ConfigError, match="batch1.onnx takes batches of exactly 1 frame"):
        estimator.estimate_batch([(rgb, None), (rgb, None)])


def test_parity_refuses_a_model_from_another_checkpoint(models: dict[str, Path]) -> None:
    other = load_checkpoint(models["pt"])
    other = type(other)(path=other.path, config=other.config.replace(max_depth=50.0), state_dict=other.state_dict,
                        trained=False)
    with pytest.raises(CheckpointError, match="was not exported from checkpoint"):
        parity_check(other, models["onnx"], frames=1)


# ------------------------------------------------------------------------------------------------------- CLI
def test_evaluate_onnx_gives_the_metrics_of_its_checkpoint(models: dict[str, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    reports = {}
    for name in ("pt", "onnx"):
        code = cli_main(["evaluate", "--checkpoint", str(models[name]), "--dataset", "synthetic", "--count", "2",
                         "--height", "48", "--width", "160", "--semantic", "synthetic", "--device", "cpu",
                         "--precision", "fp32", "--no-progress", "--out", str(tmp_path / name)])
        assert code == 0, capsys.readouterr().err
        reports[name] = json.loads((tmp_path / name / "evaluation.json").read_text())
    capsys.readouterr()
    pt, ox = reports["pt"], reports["onnx"]
    assert ox["runtime"] == "onnxruntime CPUExecutionProvider (fp32)" and pt["runtime"] == "torch eager fp32 on cpu"
    for row_pt, row_ox in zip(pt["depth"], ox["depth"]):
        for metric in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"):
            assert row_ox["metrics"][metric] == pytest.approx(row_pt["metrics"][metric], rel=2e-3, abs=1e-4), metric
    assert ox["semantic"][0]["miou"] == pytest.approx(pt["semantic"][0]["miou"], abs=5e-3)


def _one_error_line(text: str) -> str:
    """The one ``error: ...`` line of ``text``; the test models' UNTRAINED warning may come before it."""
    lines = [line for line in text.splitlines() if line.strip() and "is UNTRAINED" not in line]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in text, text
    return lines[0]


@pytest.mark.ros  # the node benchmark of `bench`
@pytest.mark.parametrize(("case", "problem"), [
    ("missing", "file not found"), ("truncated", "cannot be loaded by onnxruntime"),
    ("bare", "has no semantic_depth_ros metadata"), ("semantic_only", "cannot give depth: it was exported without")])
def test_commands_exit_1_with_one_line_for_bad_onnx(models: dict[str, Path], case: str, problem: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    path = str(models[case])
    code = cli_main(["evaluate", "--checkpoint", path, "--count", "1", "--height", "16", "--width", "48",
                     "--device", "cpu", "--precision", "fp32", "--no-progress"])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1 and path in line and problem in line, line
    if case == "semantic_only":
        return  # the node benchmark would start a node on it; the heads case is the node's test below
    code = cli_main(["bench", "--no-model", "--checkpoint", path, "--device", "cpu", "--iters", "1", "--warmup", "0"])
    captured = capsys.readouterr()
    line = _one_error_line(captured.err)
    assert code == 1 and line.startswith(f"error: model file {path}: ") and problem in line, line


def test_export_refuses_an_onnx_checkpoint(models: dict[str, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["export", "--checkpoint", str(models["onnx"]), "--out", str(tmp_path / "again.onnx")])
    line = _one_error_line(capsys.readouterr().err)
    assert code == 1 and f"--checkpoint {models['onnx']} is an ONNX model already" in line
    assert not (tmp_path / "again.onnx").exists()


# ------------------------------------------------------------------------------------------------------ node
def _node_run(*params: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", "import sys; from semantic_depth_ros.ros.node import main_ros; "
               "sys.exit(main_ros())", "--ros-args", "-p", "device:=cpu"]
    for param in params:
        command += ["-p", param]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.ros  # a node process
@pytest.mark.parametrize(("case", "params", "problem"), [
    ("missing", (), "file not found"),
    ("truncated", (), "cannot be loaded by onnxruntime"),
    ("bare", (), "has no semantic_depth_ros metadata"),
    ("depth_only", ("mask_sky:=true",), "mask_sky needs the semantic head"),
    ("onnx", ("precision:=bf16",), "precision bf16 cannot be honoured by an ONNX model"),
])
def test_node_exits_1_with_one_line_for_a_bad_onnx_model(models: dict[str, Path], case: str,
                                                         params: tuple[str, ...], problem: str) -> None:
    result = _node_run(f"model_path:={models[case]}", *params)
    line = _one_error_line(result.stdout + result.stderr)
    assert result.returncode == 1 and str(models[case]) in line and problem in line, line


def _camera_messages(rgb: np.ndarray):
    from sensor_msgs.msg import CameraInfo, Image

    image = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=rgb.tobytes())
    image.header.frame_id = "onnx_camera_optical"
    info = CameraInfo(width=WIDTH, height=HEIGHT, k=list(K), distortion_model="plumb_bob", d=[0.0] * 5)
    info.header.frame_id = image.header.frame_id
    return image, info


def _serve(client, rgb: np.ndarray, stamp: int, log: list[str]) -> dict:
    """Publish the frame (with its camera_info) until every subscribed output of one stamp arrives; the first
    camera_info can be lost while discovery of that topic completes, and without it no points are published."""
    image, info = _camera_messages(rgb)
    for attempt in range(5):
        client.publish(stamp + attempt, image, info)
        if client.wait(stamp + attempt, timeout=20.0) is not None:
            return {key: client.message(key, received) for key, received in client.take(stamp + attempt).items()}
    raise AssertionError("the node served no complete frame:\n" + "\n".join(log))


@pytest.mark.ros
def test_node_with_an_onnx_model_publishes_what_the_checkpoint_gives(models: dict[str, Path]) -> None:
    from semantic_depth_ros.messages import cloud_array, image_array
    from semantic_depth_ros.ros.client import DepthClient
    from semantic_depth_ros.ros.node_process import NodeProcess

    rgb, intrinsics = frame()
    reference = DepthEstimator(models["pt"], device="cpu", precision="fp32").estimate(rgb, camera=intrinsics)
    domain = int(os.environ["ROS_DOMAIN_ID"])
    keys = ("depth", "points", "semantic", "confidence", "depth_info")
    node = NodeProcess(models["onnx"], domain_id=domain, namespace="/onnx_cam", device="cpu", num_threads=1,
                       ros_args=["-r", "__node:=onnx_depth_node"])
    with node, DepthClient(domain_id=domain, cameras=("/onnx_cam",), outputs=keys, diagnostics=True) as client:
        assert any("ready: model tiny_test" in line and "onnxruntime CPUExecutionProvider (fp32)" in line
                   for line in node.log), node.log
        client.wait_connected()
        out = _serve(client, rgb, 1_700_000_000 * 10**9, node.log)
        deadline = time.monotonic() + 10.0
        while not (client.diagnostics and client.diagnostics.status[0].name.startswith("onnx_depth_node")):
            assert time.monotonic() < deadline, "no /diagnostics from the onnx node"
            time.sleep(0.05)
        diagnostics = {kv.key: kv.value for kv in client.diagnostics.status[0].values}
    assert diagnostics["runtime"] == "onnxruntime CPUExecutionProvider (fp32)" and diagnostics["precision"] == "fp32"
    depth = image_array(out["depth"])
    assert_equal_within_tolerance(depth, image_array(out["semantic"]), image_array(out["confidence"]), reference)
    points = cloud_array(out["points"])
    assert np.array_equal(np.isnan(points[..., 2]), np.isnan(depth))
    np.testing.assert_allclose(points[..., 2], depth, rtol=1e-5, equal_nan=True)  # z of the organised cloud
    assert list(out["depth_info"].k) == list(K)


@pytest.mark.ros
def test_node_with_a_depth_only_model_advertises_only_depth_outputs(models: dict[str, Path]) -> None:
    from semantic_depth_ros.ros.client import DepthClient
    from semantic_depth_ros.ros.node_process import NodeProcess

    rgb, intrinsics = frame()
    reference = DepthEstimator(models["pt"], device="cpu", precision="fp32").estimate(rgb, camera=intrinsics)
    domain = int(os.environ["ROS_DOMAIN_ID"])
    with NodeProcess(models["depth_only"], domain_id=domain, namespace="/depth_only_cam", device="cpu",
                     num_threads=1) as node, \
            DepthClient(domain_id=domain, cameras=("/depth_only_cam",), outputs=("depth", "points")) as client:
        client.wait_connected()
        topics = dict(client.node.get_topic_names_and_types())
        assert "/depth_only_cam/depth" in topics and "/depth_only_cam/points" in topics
        assert not {"/depth_only_cam/semantic", "/depth_only_cam/depth/confidence"} & set(topics)
        depth_msg = _serve(client, rgb, 1_700_000_100 * 10**9, node.log)["depth"]
    from semantic_depth_ros.messages import image_array

    depth, ref = image_array(depth_msg), reference.depth.numpy()
    both = np.isfinite(depth) & np.isfinite(ref)
    assert both.mean() > 0.5 and np.median(np.abs(depth[both] / ref[both] - 1.0)) <= 1e-3

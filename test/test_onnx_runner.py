"""ONNX Runtime runner: loading and validating .onnx files, provider order, precision/backend refusal, CPU runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from semantic_depth_ros.errors import CheckpointError, ConfigError
from semantic_depth_ros.model.checkpoint import load_checkpoint
from semantic_depth_ros.model.onnx_export import export_onnx
from semantic_depth_ros.model.onnx_format import METADATA_KEYS
from semantic_depth_ros.inference.onnx_runner import (CPU, CUDA, TENSORRT, OnnxRunner, check_onnx_backend,
                                                      load_onnx_model, resolve_onnx_precision, select_providers)


@pytest.fixture(scope="module")
def tiny_onnx(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    path.write_bytes(export_onnx(load_checkpoint(tiny_checkpoint)).SerializeToString())
    return path


def _with_metadata(source: Path, target: Path, **changes: str | None) -> Path:
    """A copy of ``source`` with metadata entries changed (None removes one)."""
    proto = onnx.load(str(source))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        if value is None:
            props.pop(METADATA_KEYS[key], None)
        else:
            props[METADATA_KEYS[key]] = value
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    target.write_bytes(proto.SerializeToString())
    return target


def test_cpu_runner_outputs_match_pytorch(tiny_onnx: Path, tiny_checkpoint: Path) -> None:
    runner = OnnxRunner(tiny_onnx, device="auto", available_providers=[CPU])
    assert runner.description == "onnxruntime CPUExecutionProvider (fp32)"
    assert runner.device == torch.device("cpu") and runner.input_dtype == torch.float32
    assert runner.heads == frozenset({"dc", "sc", "drn"}) and runner.trained is False
    x = torch.rand(2, 3, 64, 192)
    model = load_checkpoint(tiny_checkpoint).build_model()
    for heads in (("dc", "sc", "drn"), ("drn",), ("sc",), ("dc",)):
        out = runner(x, heads)
        with torch.no_grad():
            ref = model(x, heads=heads, upsample=False)
        # The outputs the estimator reads for these heads; depth_logits and, for drn alone, the DC maps are not
        # exported.
        expected = {"drn": {"depth"}, "dc": {"dc_depth", "depth_probs"}, "sc": {"semantic_logits"}}
        assert set(out) == set().union(*(expected[h] for h in heads)), heads
        for name, value in out.items():
            assert value.shape == ref[name].shape and value.dtype == torch.float32
            torch.testing.assert_close(value, ref[name], rtol=1e-4, atol=1e-5)


def test_heads_the_file_lacks_are_refused(tiny_checkpoint: Path, tmp_path: Path) -> None:
    path = tmp_path / "sem.onnx"
    path.write_bytes(export_onnx(load_checkpoint(tiny_checkpoint), heads="semantic").SerializeToString())
    runner = OnnxRunner(path, device="cpu")
    assert runner.heads == frozenset({"sc"})
    with pytest.raises(ConfigError, match=r"exported without the head\(s\) drn \(it has sc\)"):
        runner(torch.rand(1, 3, 64, 192), ("sc", "drn"))
    with pytest.raises(ConfigError, match=r"network input shape \(1, 3, 32, 192\) must be Bx3x64x192"):
        runner(torch.rand(1, 3, 32, 192), ("sc",))


def test_bad_model_files_give_one_line_errors(tiny_onnx: Path, tmp_path: Path) -> None:
    data = tiny_onnx.read_bytes()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    noise = tmp_path / "noise.onnx"
    noise.write_bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(0),
                                    dtype=torch.uint8).numpy().tobytes())
    plain = onnx.load(str(tiny_onnx))
    del plain.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(plain.SerializeToString())
    cases = [
        (tmp_path / "missing.onnx", "file not found"),
        (tmp_path, "not a regular file"),
        (truncated, "cannot be loaded by onnxruntime"),
        (noise, "cannot be loaded by onnxruntime"),
        (bare, "has no semantic_depth_ros metadata"),
        (_with_metadata(tiny_onnx, tmp_path / "v2.onnx", format_version="2"),
         "format version '2' is not supported (this code reads version 1); update semantic_depth_ros"),
        (_with_metadata(tiny_onnx, tmp_path / "noconf.onnx", model_config=None), "invalid metadata"),
        (_with_metadata(tiny_onnx, tmp_path / "size.onnx", input_height="96"),
         "metadata input size 192x96 differs from its model config 192x64"),
        (_with_metadata(tiny_onnx, tmp_path / "heads.onnx", heads='["dc", "sky"]'), "invalid metadata"),
    ]
    for path, message in cases:
        with pytest.raises(CheckpointError) as info:
            load_onnx_model(path)
        text = str(info.value)
        assert message in text and str(path) in text and "\n" not in text, text
    with pytest.raises(CheckpointError, match="file not found"):
        OnnxRunner(tmp_path / "missing.onnx")


def test_graph_input_size_must_match_metadata(tiny_onnx: Path, tmp_path: Path) -> None:
    proto = onnx.load(str(tiny_onnx))
    proto.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 96
    props = {p.key: p.value for p in proto.metadata_props}
    path = tmp_path / "mismatch.onnx"
    path.write_bytes(proto.SerializeToString())
    assert props[METADATA_KEYS["input_height"]] == "64"
    with pytest.raises(CheckpointError, match=r"graph input shape .* does not match the metadata input size "
                                              r"Bx3x64x192"):
        load_onnx_model(path)


def test_provider_order_with_fake_provider_lists(tmp_path: Path) -> None:
    everything = [CPU, CUDA, TENSORRT, "AzureExecutionProvider"]
    specs = select_providers("auto", everything, fp16=True, trt_cache_dir=tmp_path / "engines")
    assert [name for name, _ in specs] == [TENSORRT, CUDA, CPU]
    assert specs[0][1] == {"device_id": "0", "trt_fp16_enable": "True", "trt_engine_cache_enable": "True",
                           "trt_engine_cache_path": str(tmp_path / "engines")}
    assert specs[1][1] == {"device_id": "0"}
    assert [n for n, _ in select_providers("auto", [CPU, CUDA], fp16=True)] == [CUDA, CPU]
    assert [n for n, _ in select_providers("auto", [CPU], fp16=True)] == [CPU]
    assert select_providers("cpu", everything, fp16=True) == [(CPU, {})]
    specs = select_providers("cuda:1", [TENSORRT, CPU], fp16=False)
    assert specs == [(TENSORRT, {"device_id": "1", "trt_fp16_enable": "False"}), (CPU, {})]
    with pytest.raises(ConfigError, match="device 'cuda' needs the TensorRT or CUDA execution provider, but this "
                                          "onnxruntime offers only CPUExecutionProvider"):
        select_providers("cuda", [CPU], fp16=True)
    with pytest.raises(ConfigError, match="device 'gpu' is not one of auto, cpu, cuda, cuda:N"):
        select_providers("gpu", everything, fp16=True)


def test_cuda_device_without_gpu_provider_is_refused(tiny_onnx: Path) -> None:
    with pytest.raises(ConfigError, match="device 'cuda:0' needs the TensorRT or CUDA execution provider"):
        OnnxRunner(tiny_onnx, device="cuda:0", available_providers=[CPU])


def test_precision_and_backend_an_onnx_model_cannot_honour_are_refused(tiny_onnx: Path) -> None:
    assert resolve_onnx_precision("auto", TENSORRT, "fp32", "m.onnx") == "fp16"
    assert resolve_onnx_precision("auto", CPU, "fp32", "m.onnx") == "fp32"
    assert resolve_onnx_precision("auto", CUDA, "fp16", "m.onnx") == "fp16"
    assert resolve_onnx_precision("fp16", TENSORRT, "fp32", "m.onnx") == "fp16"
    assert resolve_onnx_precision("fp32", TENSORRT, "fp32", "m.onnx") == "fp32"
    with pytest.raises(ConfigError, match="precision bf16 cannot be honoured by an ONNX model"):
        resolve_onnx_precision("bf16", CUDA, "fp32", "m.onnx")
    with pytest.raises(ConfigError, match="precision fp16 cannot be honoured: model file m.onnx has fp32 weights"):
        resolve_onnx_precision("fp16", CPU, "fp32", "m.onnx")
    with pytest.raises(ConfigError, match="precision fp32 cannot be honoured: model file m.onnx has fp16 weights"):
        resolve_onnx_precision("fp32", CUDA, "fp16", "m.onnx")
    check_onnx_backend("auto", "m.onnx")
    check_onnx_backend("onnxruntime", "m.onnx")
    for backend in ("eager", "compile", "cudagraphs"):
        with pytest.raises(ConfigError, match=f"backend '{backend}' runs PyTorch models; model file m.onnx is ONNX"):
            check_onnx_backend(backend, "m.onnx")
    for precision in ("bf16", "fp16"):
        with pytest.raises(ConfigError, match=f"precision {precision} cannot be honoured"):
            OnnxRunner(tiny_onnx, device="cpu", precision=precision)
    with pytest.raises(ConfigError, match="num_threads = 0 must be a positive integer"):
        OnnxRunner(tiny_onnx, num_threads=0)


def test_pt_models_need_no_onnxruntime_and_onnx_models_say_how_to_install_it(tmp_path, tiny_checkpoint):
    """A vehicle installs onnxruntime-gpu or onnxruntime itself (never both): without either, .pt models run and
    an .onnx model is refused with one line saying what to install."""
    script = (
        "import sys; sys.modules['onnxruntime'] = None\n"  # makes `import onnxruntime` raise ImportError
        "from semantic_depth_ros.inference.estimator import DepthEstimator\n"
        "from semantic_depth_ros.errors import ConfigError\n"
        f"DepthEstimator({str(tiny_checkpoint)!r}, device='cpu', precision='fp32')\n"
        "try:\n"
        f"    DepthEstimator({str(tmp_path / 'm.onnx')!r}, device='cpu')\n"
        "except ConfigError as exc:\n"
        "    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == ("onnxruntime is not installed: `pip install onnxruntime-gpu` (CUDA and TensorRT "
                                  "providers) or `pip install onnxruntime` (CPU) to run .onnx models")

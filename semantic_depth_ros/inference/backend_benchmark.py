"""Network latency of the PyTorch and ONNX Runtime backends on the same preset, size and input (rows for
``semantic-depth bench``).

Times the network call alone (Bx3xHxW input in [0, 1] -> the raw outputs at output stride, on the host), which is
the only part that differs between the backends: the estimator's pre- and post-processing is shared. PyTorch runs
as the estimator does eagerly (batch norm folded, fp32, channels-last, inference mode); ONNX Runtime runs the file
``semantic-depth export`` would write (exported to a temporary folder). Random weights: timing does not depend on
them.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError
from ..model.config import ModelConfig
from ..model.fuse import fold_batchnorm
from ..model.network import HEADS
from ..model.onnx_export import export_onnx
from .benchmark import latency_stats, random_checkpoint
from .estimator import resolve_device
from .onnx_runner import OnnxRunner


def benchmark_backends(config: ModelConfig, *, device: str = "cpu", height: int | None = None,
                       width: int | None = None, warmup: int = 3, iters: int = 20,
                       num_threads: int | None = None) -> list[dict[str, Any]]:
    """One row per backend: ``backend`` (description), ``p50_ms``, ``p95_ms`` (per frame), ``fps`` and
    ``speedup`` (PyTorch p50 / this backend's p50; 1.0 for PyTorch). All heads, batch 1, network input
    ``height`` x ``width`` (None: the preset's). ``num_threads`` applies to both backends (None: their defaults).
    """
    if warmup < 0 or iters < 1:
        raise ConfigError(f"benchmark needs warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")
    config = config.replace(input_height=height or config.input_height, input_width=width or config.input_width)
    checkpoint = random_checkpoint(config)
    previous_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        torch_device = resolve_device(device)
        model = fold_batchnorm(checkpoint.build_model()).to(torch_device, memory_format=torch.channels_last)
        x = torch.rand(1, 3, config.input_height, config.input_width)

        @torch.inference_mode()
        def run_torch() -> None:
            out = model(x.to(torch_device).contiguous(memory_format=torch.channels_last), heads=HEADS,
                        upsample=False)
            for value in out.values():
                value.cpu()

        rows = [_time(f"pytorch eager fp32 ({torch_device})", run_torch, warmup, iters)]
        with tempfile.TemporaryDirectory(prefix="semantic_depth_bench_") as folder:
            path = Path(folder) / f"{config.name}.onnx"
            path.write_bytes(export_onnx(checkpoint).SerializeToString())
            runner = OnnxRunner(path, device=device, precision="auto", num_threads=num_threads)
            rows.append(_time(runner.description, lambda: runner(x, HEADS), warmup, iters))
    finally:
        torch.set_num_threads(previous_threads)
    for row in rows:
        row["speedup"] = rows[0]["p50_ms"] / row["p50_ms"]
    return rows


def _time(name: str, frame: Callable[[], object], warmup: int, iters: int) -> dict[str, Any]:
    """Latency statistics of ``frame`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        frame()
    samples = []
    start = time.perf_counter()
    for _ in range(iters):
        begin = time.perf_counter()
        frame()
        samples.append((time.perf_counter() - begin) * 1000.0)
    return {"backend": name, **latency_stats(samples, time.perf_counter() - start)}

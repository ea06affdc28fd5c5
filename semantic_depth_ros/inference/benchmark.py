"""Model latency on this machine: ``DepthEstimator.estimate`` end to end, numpy image in, outputs on the host.

Used by ``semantic-depth bench``. Random weights are fine for timing (the work does not depend on the values),
so a ``ModelConfig`` (a preset) can be timed without a checkpoint file. PyTorch and ONNX Runtime are timed the same
way, through the estimator (one path): a ``.onnx`` file, or a preset with ``backend="onnxruntime"`` (its random
checkpoint exported to a temporary file), runs on onnxruntime with the same pre- and post-processing.
``time_calls`` is the one timing loop.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from ..geometry.intrinsics import Intrinsics
from ..model.checkpoint import Checkpoint
from ..model.config import ModelConfig
from ..model.network import SemanticDepthNet
from ..model.onnx_export import export_onnx
from .estimator import DepthEstimator, EstimatorOutputs
from .postprocess import ESTIMATOR_OUTPUTS


def random_checkpoint(config: ModelConfig, seed: int = 0) -> Checkpoint:
    """An in-memory, UNTRAINED checkpoint of ``config`` with seeded random weights."""
    torch.manual_seed(seed)
    model = SemanticDepthNet(config)
    return Checkpoint(path=Path(f"<random {config.name}>"), config=config, state_dict=model.state_dict(),
                      trained=False)


def latency_stats(samples_ms: Collection[float], total_s: float) -> dict[str, float]:
    """p50 / p95 latency (ms) of ``samples_ms`` and the throughput ``len(samples) / total_s`` (frames per second)."""
    if not samples_ms or total_s <= 0:
        raise ConfigError(f"latency statistics need samples and a positive duration, got {len(samples_ms)} "
                          f"samples over {total_s} s")
    values = np.asarray(list(samples_ms), dtype=np.float64)
    return {"p50_ms": float(np.percentile(values, 50)), "p95_ms": float(np.percentile(values, 95)),
            "fps": len(values) / total_s}


def time_calls(call: Callable[[], object], *, warmup: int, iters: int) -> dict[str, float]:
    """Latency statistics (``latency_stats``) of ``iters`` timed calls of ``call`` after ``warmup`` untimed ones."""
    if warmup < 0 or iters < 1:
        raise ConfigError(f"benchmark needs warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")
    for _ in range(warmup):
        call()
    samples = []
    start = time.perf_counter()
    for _ in range(iters):
        begin = time.perf_counter()
        call()
        samples.append((time.perf_counter() - begin) * 1000.0)
    return latency_stats(samples, time.perf_counter() - start)


def process_peak_rss_mb(*, children: bool = False) -> float:
    """Peak resident memory (MiB) of this process since it started, or with ``children`` of the largest child
    process that has exited and been waited for (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def process_memory_mb(device: torch.device) -> dict[str, float]:
    """This process's peak resident memory (``peak_rss_mb``) and, on CUDA, the peak memory torch allocated on
    ``device`` (``peak_gpu_mb``), MiB."""
    memory = {"peak_rss_mb": process_peak_rss_mb()}
    if device.type == "cuda":
        memory["peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return memory


def benchmark_model(checkpoint_or_config: str | Path | Checkpoint | ModelConfig, *, device: str = "auto",
                    precision: str = "fp32", height: int, width: int, warmup: int = 5, iters: int = 30,
                    outputs: Collection[str] = ESTIMATOR_OUTPUTS, output_resolution: str = "input",
                    backend: str = "auto", num_threads: int | None = None) -> dict[str, Any]:
    """Time ``estimate`` on a random ``height`` x ``width`` image with intrinsics, outputs copied to the host.

    ``checkpoint_or_config``: a ``.pt`` or ``.onnx`` file, a Checkpoint, or a ModelConfig (random weights; with
    ``backend="onnxruntime"`` exported to ONNX first). Returns ``p50_ms``, ``p95_ms`` (per frame, milliseconds),
    ``fps`` (frames per second over the timed loop), ``peak_mem_mb`` (on CUDA the peak memory allocated by torch on
    the device since the model loaded; on the CPU the process's peak resident memory, which includes whatever the
    process did before), ``precision`` (the one in use) and ``runtime`` (the runner's description).
    ``num_threads`` sets torch's (and onnxruntime's) CPU thread count for the run (torch's restored afterwards).
    """
    if warmup < 0 or iters < 1:
        raise ConfigError(f"benchmark needs warmup >= 0 and iters >= 1, got warmup={warmup}, iters={iters}")
    if height < 1 or width < 1:
        raise ConfigError(f"benchmark image size {width}x{height} must be at least 1x1")
    if num_threads is not None and num_threads < 1:
        raise ConfigError(f"benchmark num_threads = {num_threads} must be at least 1")
    with _threads(num_threads):
        estimator = _load(checkpoint_or_config, device=device, precision=precision, backend=backend,
                          num_threads=num_threads)
        cuda = estimator.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(estimator.device)
            torch.cuda.reset_peak_memory_stats(estimator.device)
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        fx = estimator.config.focal_px * width / estimator.config.input_width
        intrinsics = Intrinsics(fx=fx, fy=fx, cx=(width - 1) / 2, cy=(height - 1) / 2, width=width, height=height)

        def frame() -> None:
            result = estimator.estimate(image, camera=intrinsics, output_resolution=output_resolution,
                                        outputs=outputs)
            _to_host(result)

        stats: dict[str, Any] = dict(time_calls(frame, warmup=warmup, iters=iters))
        stats["peak_mem_mb"] = (torch.cuda.max_memory_allocated(estimator.device) / 2**20 if cuda
                                else process_peak_rss_mb())
        stats["precision"] = estimator.precision
        stats["runtime"] = estimator.runner.description
    return stats


def _load(source: str | Path | Checkpoint | ModelConfig, *, device: str, precision: str, backend: str,
          num_threads: int | None) -> DepthEstimator:
    """The estimator; random weights for a config (exported to a temporary .onnx for ``backend="onnxruntime"``),
    with the untrained warning silenced (timing only)."""
    options = {"device": device, "precision": precision, "backend": backend, "num_threads": num_threads}
    if not isinstance(source, ModelConfig):
        return DepthEstimator(source, **options)
    estimator_logger = logging.getLogger("semantic_depth_ros.inference.estimator")
    previous = estimator_logger.disabled
    estimator_logger.disabled = True
    try:
        checkpoint = random_checkpoint(source)
        if backend != "onnxruntime":
            return DepthEstimator(checkpoint, **options)
        with tempfile.TemporaryDirectory(prefix="semantic_depth_bench_") as folder:
            path = Path(folder) / f"{source.name}.onnx"  # onnxruntime holds the model in memory once loaded
            path.write_bytes(export_onnx(checkpoint).SerializeToString())
            return DepthEstimator(path, **options)
    finally:
        estimator_logger.disabled = previous


def _to_host(result: EstimatorOutputs) -> None:
    """Copy every output to the host (synchronises CUDA: the copy waits for the kernels that produce it)."""
    for tensor in (result.depth, result.semantic, result.confidence):
        if tensor is not None:
            tensor.cpu()


@contextlib.contextmanager
def _threads(num_threads: int | None) -> Iterator[None]:
    """Temporarily set torch's intra-op CPU thread count."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)

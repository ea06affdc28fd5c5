"""DepthEstimator: one RGB image in, metric depth, semantic train ids and confidence out (ROS-free, on device).

Hot path of ``estimate`` (no per-pixel Python, everything after the upload on the estimator's device):

1. the uint8 HxWx3 view becomes a tensor once (zero-copy on the CPU when it is contiguous and writable; on CUDA
   one copy into a cached pinned buffer, then a non-blocking upload);
2. resize keeping the aspect ratio to fit the network input, centred edge-replicating pad
   (``preprocess.letterbox``), in the model's precision and channels-last layout;
3. the network, only the heads the requested outputs need, without its own up-sampling
   (eager, ``torch.compile`` or a captured CUDA graph: ``backend``);
4. at the network's output stride: depth (DRN ``depth`` when the model has a DRN, else the DC expectation),
   semantic argmax, confidence ``1 - entropy / log K`` of the bin distribution;
5. crop the padding and up-sample ONCE to the output size: log-depth and confidence bilinearly,
   semantic ids by nearest neighbour (ids, not logits: cheaper, and never invents a class between two regions);
6. canonical camera: depth *= (fx * resize factor) / ``config.focal_px`` when intrinsics are given;
7. NaN where depth is outside [min_depth, max_depth] and, with ``mask_sky``, where the label is sky.

Not thread-safe: one estimator serves one worker thread.
"""

from __future__ import annotations

import itertools
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError, InvalidInputError
from ..geometry.intrinsics import Intrinsics, scale_intrinsics
from ..labels import SKY_TRAIN_ID
from ..model.bins import confidence_from_probs
from ..model.checkpoint import Checkpoint, load_checkpoint
from ..model.config import ModelConfig
from ..model.fuse import fold_batchnorm
from ..model.network import HEADS
from ..limits import MAX_IMAGE_SIDE
from .preprocess import Letterbox, OutputGrid, letterbox, output_grid, resize_rgb, to_network_input

logger = logging.getLogger(__name__)

OUTPUTS = ("depth", "semantic", "confidence", "image")
OUTPUT_RESOLUTIONS = ("input", "network")
PRECISIONS = ("fp32", "fp16", "bf16", "auto")
BACKENDS = ("auto", "eager", "compile", "cudagraphs")

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
_GRID_CACHE_SIZE = 8

Network = Callable[[torch.Tensor, tuple[str, ...]], dict[str, torch.Tensor]]


@dataclass
class EstimatorOutputs:
    """Outputs of one image, torch tensors on the estimator's device; None when not requested."""

    depth: torch.Tensor | None  # HxW float32 metres, NaN where invalid
    semantic: torch.Tensor | None  # HxW uint8 Cityscapes train ids
    confidence: torch.Tensor | None  # HxW float32 in [0, 1]
    intrinsics: Intrinsics | None  # intrinsics of these outputs (input intrinsics scaled to HxW), None if unknown
    image: torch.Tensor | None = None  # HxWx3 uint8 RGB input at the output size (point colours), uploaded once


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; ConfigError if unknown or absent."""
    text = str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ConfigError(f"device '{spec}' is not one of auto, cpu, cuda, cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"device '{spec}' is not available: this machine has no usable CUDA device")
    count = torch.cuda.device_count()
    index = int(match.group(1)) if match.group(1) is not None else torch.cuda.current_device()
    if index >= count:
        raise ConfigError(f"device '{spec}' is not available: this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo; False elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", text) is not None


def resolve_precision(precision: str, device: torch.device) -> str:
    """``fp32`` | ``fp16`` (CUDA only) | ``bf16`` | ``auto`` -> the precision used; ConfigError otherwise.

    ``auto``: fp16 on CUDA; on the CPU bf16 where the CPU has native bf16 (about twice as fast as fp32), else fp32.
    """
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in _DTYPES:
        raise ConfigError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision fp16 needs a CUDA device, got {device.type}")
    return precision


class DepthEstimator:
    """Runs a checkpoint's network on single images; see the module docstring for the pipeline.

    ``mask_sky``, ``min_depth`` and ``max_depth`` (metres; None = the model's range) are plain attributes that
    may change between frames. ``backend``: ``auto`` (``cudagraphs`` on CUDA, ``eager`` on the CPU); ``eager``;
    ``compile`` (``torch.compile``, with weight freezing on the CPU; compiles on the first frame of each output
    combination, tens of seconds on a small CPU); ``cudagraphs`` (CUDA only: the network is captured once per
    head combination, at its first use, and replayed; 2.5x faster than eager on an H100, where eager is bound by
    kernel launches).
    ``precision``: ``fp32``, ``fp16`` (CUDA only), ``bf16`` (CUDA, or CPUs with native bf16 such as
    AVX512-BF16/AMX, where it is about twice as fast as fp32) or ``auto`` (``resolve_precision``); the attribute
    ``precision`` holds the one in use.
    ``num_threads``: torch's CPU thread count for this process (None leaves it). On a CPU shared with other busy
    processes, fewer threads than cores avoids the collapse of oversubscribed thread pools (measured on 2 cores
    next to a 2-thread training job: 1 thread 66 ms per frame, 2 threads 370-860 ms).
    """

    def __init__(self, checkpoint: str | Path | Checkpoint, *, device: str = "auto", precision: str = "fp32",
                 mask_sky: bool = False, min_depth: float | None = None, max_depth: float | None = None,
                 backend: str = "auto", num_threads: int | None = None) -> None:
        self.device = resolve_device(device)
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
                raise ConfigError(f"num_threads = {num_threads!r} must be a positive integer")
            torch.set_num_threads(num_threads)
        self.precision = resolve_precision(precision, self.device)
        self._dtype = _DTYPES[self.precision]
        if backend not in BACKENDS:
            raise ConfigError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")
        if backend == "cudagraphs" and self.device.type != "cuda":
            raise ConfigError(f"backend cudagraphs needs a CUDA device, got {self.device.type}")
        if backend == "auto":
            backend = "cudagraphs" if self.device.type == "cuda" else "eager"
        self.backend = backend
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        self.config: ModelConfig = ckpt.config
        self.model_name = ckpt.config.name
        self.trained = ckpt.trained
        if not self.trained:
            logger.warning("checkpoint %s is UNTRAINED (random weights): its depth, labels and confidence are "
                           "MEANINGLESS; use it only to test plumbing", ckpt.path)
        model = fold_batchnorm(ckpt.build_model())
        self.model = model.to(device=self.device, dtype=self._dtype, memory_format=torch.channels_last)
        self.mask_sky = mask_sky
        self.min_depth = min_depth
        self.max_depth = max_depth
        self._has_drn = self.model.drn_head is not None
        self._network = self._make_network(backend)
        self._grids: OrderedDict[tuple, OutputGrid] = OrderedDict()
        self._pinned: torch.Tensor | None = None
        self._upload_done: torch.cuda.Event | None = None

    # ------------------------------------------------------------------ public API

    @torch.inference_mode()
    def estimate(self, image: np.ndarray, *, intrinsics: Intrinsics | None = None,
                 output_resolution: str = "input", outputs: Collection[str] = OUTPUTS) -> EstimatorOutputs:
        """Depth / semantic / confidence of one HxWx3 uint8 RGB image (may be a non-contiguous or read-only view).

        ``intrinsics`` must describe the image's HxW. ``output_resolution``: ``input`` (HxW of the image) or
        ``network`` (the image resized to fit the network input, without padding). Only ``outputs`` are computed.
        """
        wanted = _check_outputs(outputs)
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ConfigError(f"output_resolution '{output_resolution}' is not one of {', '.join(OUTPUT_RESOLUTIONS)}")
        height, width = _check_image(image)
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (width, height):
            raise InvalidInputError(f"intrinsics are for {intrinsics.width}x{intrinsics.height} "
                                    f"but the image is {width}x{height}")
        low, high = self.depth_range()
        box = letterbox(height, width, self.config.input_height, self.config.input_width)
        out_h, out_w = (height, width) if output_resolution == "input" else (box.resized_height, box.resized_width)
        out_intrinsics = scale_intrinsics(intrinsics, out_w, out_h) if intrinsics is not None else None
        if not wanted:
            return EstimatorOutputs(None, None, None, out_intrinsics)
        uploaded = self._upload(image)
        colours = resize_rgb(uploaded, out_h, out_w) if "image" in wanted else None
        if wanted == {"image"}:
            return EstimatorOutputs(None, None, None, out_intrinsics, image=colours)

        mask_sky = bool(self.mask_sky)
        heads = self._heads(wanted, mask_sky)
        x = to_network_input(uploaded, box, dtype=self._dtype, channels_last=True)
        raw = self._network(x, heads)
        any_map = next(iter(raw.values()))
        grid = self._grid(box, any_map.shape[-2], any_map.shape[-1], out_h, out_w)
        log_depth, confidence, labels = _resample(raw, grid, heads, wanted)
        depth = None
        if log_depth is not None:
            depth = log_depth.exp_()
            scale = self.canonical_scale(box, intrinsics)
            if scale != 1.0:
                depth.mul_(scale)
            invalid = (depth < low) | (depth > high)
            if mask_sky:
                invalid |= labels == SKY_TRAIN_ID
            depth.masked_fill_(invalid, math.nan)
        semantic = labels.to(torch.uint8) if "semantic" in wanted else None
        return EstimatorOutputs(depth=depth, semantic=semantic, confidence=confidence, intrinsics=out_intrinsics,
                                image=colours)

    def warmup(self, height: int, width: int) -> None:
        """Run two frames of ``height`` x ``width`` with every output (allocations, kernels, compilation).

        With CUDA graphs it also captures the graph of every head combination that some choice of outputs and
        ``mask_sky`` can need, so that a change of subscriptions never stalls a frame on a capture.
        """
        image = np.zeros((height, width, 3), dtype=np.uint8)
        for _ in range(2):
            self.estimate(image)
        if self.backend == "cudagraphs":
            mask_sky = self.mask_sky
            try:
                for sky in (False, True):
                    self.mask_sky = sky
                    for count in range(1, len(OUTPUTS) + 1):
                        for outputs in itertools.combinations(OUTPUTS, count):
                            self.estimate(image, outputs=outputs)
            finally:
                self.mask_sky = mask_sky
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def depth_range(self) -> tuple[float, float]:
        """The valid depth interval (metres) now: ``min_depth``/``max_depth`` or the model's range for None."""
        low = self.config.min_depth if self.min_depth is None else float(self.min_depth)
        high = self.config.max_depth if self.max_depth is None else float(self.max_depth)
        if not (math.isfinite(low) and low >= 0.0):
            raise ConfigError(f"min_depth = {self.min_depth!r} must be a non-negative number")
        if not (math.isfinite(high) and high > low):
            raise ConfigError(f"max_depth = {self.max_depth!r} must be larger than min_depth = {low!r}")
        return low, high

    def canonical_scale(self, box: Letterbox, intrinsics: Intrinsics | None) -> float:
        """Factor from the network's canonical depth to metric depth: f_eff / focal_px (1 without intrinsics).

        f_eff is the image's fx scaled to the network input (``scale_intrinsics`` to the resized size).
        """
        if intrinsics is None:
            return 1.0
        f_eff = scale_intrinsics(intrinsics, box.resized_width, box.resized_height).fx
        return f_eff / self.config.focal_px

    # ------------------------------------------------------------------ internals

    def _heads(self, wanted: frozenset[str], mask_sky: bool) -> tuple[str, ...]:
        """The network heads the requested outputs need, in ``HEADS`` order."""
        heads = set()
        if "depth" in wanted:
            heads.add("drn" if self._has_drn else "dc")
        if "confidence" in wanted:
            heads.add("dc")
        if "semantic" in wanted or ("depth" in wanted and mask_sky):
            heads.add("sc")
        return tuple(h for h in HEADS if h in heads)

    def _upload(self, image: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 tensor on the device, copying on the host at most once."""
        if self.device.type != "cuda":
            if image.flags.c_contiguous and image.flags.writeable:
                return torch.from_numpy(image)
            return torch.from_numpy(np.array(image, order="C", copy=True))
        if self._pinned is None or tuple(self._pinned.shape) != image.shape:
            self._pinned = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
            self._upload_done = None
        if self._upload_done is not None:
            self._upload_done.synchronize()  # the previous frame's upload has left the pinned buffer
        np.copyto(self._pinned.numpy(), image)
        tensor = self._pinned.to(self.device, non_blocking=True)
        self._upload_done = torch.cuda.Event()
        self._upload_done.record()
        return tensor

    def _grid(self, box: Letterbox, feature_h: int, feature_w: int, out_h: int, out_w: int) -> OutputGrid:
        """Cached (LRU, a few sizes) crop-and-resample grid."""
        key = (box, feature_h, feature_w, out_h, out_w)
        grid = self._grids.get(key)
        if grid is None:
            grid = output_grid(box, feature_h, feature_w, out_h, out_w, self.device)
            self._grids[key] = grid
            if len(self._grids) > _GRID_CACHE_SIZE:
                self._grids.popitem(last=False)
        else:
            self._grids.move_to_end(key)
        return grid

    def _make_network(self, backend: str) -> Network:
        """The forward at output stride for the chosen backend."""
        if backend == "compile":
            if self.device.type == "cpu":
                compiled = torch.compile(self.model, dynamic=False, options={"freezing": True})
            else:
                compiled = torch.compile(self.model, dynamic=False)
            return lambda x, heads: compiled(x, heads=heads, upsample=False)
        if backend == "cudagraphs":
            shape = (1, 3, self.config.input_height, self.config.input_width)
            return _GraphedNetwork(self.model, shape, self._dtype, self.device)
        return lambda x, heads: self.model(x, heads=heads, upsample=False)


class _GraphedNetwork:
    """The network captured as one CUDA graph per head combination, at the fixed network input size.

    Replays write into static output tensors, which the caller must consume before the next call (``estimate``
    turns them into new tensors on the same stream, so stream order keeps this safe).
    """

    def __init__(self, model: torch.nn.Module, shape: tuple[int, ...], dtype: torch.dtype,
                 device: torch.device) -> None:
        self._model = model
        self._input = torch.zeros(shape, dtype=dtype, device=device).contiguous(memory_format=torch.channels_last)
        self._graphs: dict[tuple[str, ...], tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]] = {}
        self._pool = None

    def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> dict[str, torch.Tensor]:
        self._input.copy_(x)
        if heads not in self._graphs:
            self._graphs[heads] = self._capture(heads)
        graph, outputs = self._graphs[heads]
        graph.replay()
        return outputs

    def _capture(self, heads: tuple[str, ...]) -> tuple[torch.cuda.CUDAGraph, dict[str, torch.Tensor]]:
        side = torch.cuda.Stream(device=self._input.device)
        side.wait_stream(torch.cuda.current_stream(self._input.device))
        with torch.cuda.stream(side):
            for _ in range(3):  # settle cuDNN algorithm choice and the allocator before capture
                self._model(self._input, heads=heads, upsample=False)
        torch.cuda.current_stream(self._input.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            outputs = self._model(self._input, heads=heads, upsample=False)
        if self._pool is None:
            self._pool = graph.pool()
        return graph, outputs


def _resample(raw: dict[str, torch.Tensor], grid: OutputGrid, heads: tuple[str, ...],
              wanted: frozenset[str]) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Stride-s network outputs -> (log-depth, confidence, float label ids), each HxW at the output size or None.

    Log-depth and confidence are cropped and resampled bilinearly in one pass, the argmax ids by nearest neighbour.
    """
    smooth = []
    if "depth" in wanted:
        smooth.append(torch.log(raw["depth"] if "drn" in heads else raw["dc_depth"]).float())
    if "confidence" in wanted:
        smooth.append(confidence_from_probs(raw["depth_probs"].float()))
    log_depth = confidence = labels = None
    if smooth:
        maps = grid.sample(torch.cat(smooth, dim=1) if len(smooth) > 1 else smooth[0], "bilinear")[0]
        log_depth = maps[0] if "depth" in wanted else None
        confidence = maps[-1] if "confidence" in wanted else None
    if "sc" in heads:
        ids = raw["semantic_logits"].argmax(dim=1, keepdim=True).to(torch.float32)
        labels = grid.sample(ids, "nearest")[0, 0]
    return log_depth, confidence, labels


def _check_outputs(outputs: Collection[str]) -> frozenset[str]:
    """The requested outputs as a set; ConfigError naming an unknown one."""
    if isinstance(outputs, str):
        outputs = (outputs,)
    wanted = frozenset(outputs)
    unknown = sorted(wanted - set(OUTPUTS))
    if unknown:
        raise ConfigError(f"unknown output(s) {', '.join(unknown)}: choose from {', '.join(OUTPUTS)}")
    return wanted


def _check_image(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of a valid HxWx3 uint8 image; InvalidInputError naming what is wrong."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"image dtype {image.dtype} must be uint8")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"image shape {tuple(image.shape)} must be HxWx3 (RGB)")
    height, width = int(image.shape[0]), int(image.shape[1])
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise InvalidInputError(f"image size {width}x{height} must be between 1x1 and "
                                f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
    return height, width

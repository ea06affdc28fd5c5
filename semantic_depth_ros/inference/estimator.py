"""DepthEstimator: RGB images in, metric depth, semantic train ids and confidence out (ROS-free, on device).

Hot path of ``estimate_batch`` (``estimate`` is the batch of one; no per-pixel Python, everything after the upload
on the estimator's device):

1. each uint8 HxWx3 view becomes a tensor once (zero-copy on the CPU when it is contiguous and writable; on CUDA
   one copy into a cached pinned buffer per batch slot, then a non-blocking upload);
2. per frame (``preprocess.to_network_input``, the per-frame seam): resize keeping the aspect ratio to fit the
   network input, centred edge-replicating pad (``preprocess.letterbox``), in the runner's dtype; the frames,
   of any sizes, are stacked into ONE Bx3xHxW channels-last batch. A frame whose ``CameraModel`` has a non-zero
   D is undistorted in the same resampling (``geometry.undistort``, cached per camera and size): its outputs are
   in the undistorted pinhole geometry (the camera's own K scaled to the output size, D = 0); output pixels
   without image data get NaN depth, confidence 0 and the semantic id ``IGNORE_LABEL`` (255);
3. the network runner (``runners.make_runner``: eager, ``torch.compile`` or captured CUDA graphs, by ``backend``),
   only the heads the requested outputs need, at its output stride;
4. per frame, at the output stride: depth (DRN ``depth`` when the model has a DRN, else the DC expectation),
   semantic argmax, confidence ``1 - entropy / log K`` of the bin distribution;
5. crop the padding and up-sample ONCE to the output size: log-depth and confidence bilinearly,
   semantic ids by nearest neighbour (ids, not logits: cheaper, and never invents a class between two regions);
6. canonical camera: depth *= (fx * resize factor) / ``config.focal_px`` when intrinsics are given;
7. NaN where depth is outside [min_depth, max_depth] and, with ``mask_sky``, where the label is sky.

With ``defer`` (per-frame stages to run first) steps 5 to 7 stop at the network's resolution when the output size
is larger, and ``EstimatorOutputs.at_output_size`` (``outputs``) takes the stages' result to the output size.

Steps 4 to 7 and the input checks are in ``postprocess``; this module plans, uploads, batches and runs.

The estimator needs no torch module: the model's metadata comes from its ``ModelConfig`` and trained flag, the
network from a :class:`~.runners.NetworkRunner` (``DepthEstimator.from_runner`` for runners built elsewhere).
A ``.onnx`` file (``semantic-depth export``) runs on onnxruntime (``onnx_runner.load_onnx_runner``): the same steps
1-2 and 4-7 around it, on the runner's device (the CPU unless ORT runs on a GPU that torch can also use).
Not thread-safe: one estimator serves one worker thread.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..cache import BoundedCache
from ..devices import dtype_of, resolve_device, resolve_precision
from ..errors import ConfigError, InvalidInputError
from ..geometry.intrinsics import CameraModel, Intrinsics, scale_intrinsics
from ..geometry.letterbox import Letterbox, letterbox
from ..geometry.undistort import validate_distortion
from ..model.checkpoint import Checkpoint, load_checkpoint
from ..model.config import ModelConfig
from ..model.network import HEADS
from .onnx_runner import ONNX_BACKENDS, is_onnx_path, load_onnx_runner
from .outputs import EstimatorOutputs
from .postprocess import (ESTIMATOR_OUTPUTS, GRID_CACHE_SIZE, Upsampling, check_image, check_outputs,
                          depth_range_of, finish_depth, mask_no_data, no_data_of, resample_outputs)
from .preprocess import OutputGrid, output_grid, resize_grid, resize_rgb, to_network_input
from .runners import BACKENDS, NetworkRunner, make_runner, resolve_backend
from .undistortion import Undistortion, build_undistortion

logger = logging.getLogger(__name__)

OUTPUT_RESOLUTIONS = ("input", "network")
# every backend name a DepthEstimator accepts: the PyTorch ones (.pt) and onnxruntime (.onnx)
ESTIMATOR_BACKENDS = (*BACKENDS, *(name for name in ONNX_BACKENDS if name not in BACKENDS))
# undistortions kept (LRU), keyed by camera model, size and letterbox: twice the 16 cameras one node may batch
# (ros.params.MAX_CAMERAS), so that every camera and a changed camera_info stay cached; with fewer entries than
# cameras a round-robin batch evicts each map before its next use and rebuilds it (OpenCV maps) every frame
UNDISTORTION_CACHE_SIZE = 32

# what the estimator takes per image: HxWx3 uint8 RGB of any size, and its camera: a camera model (whose lens
# distortion the estimator removes), pinhole intrinsics, or None
CameraImage = tuple[np.ndarray, Intrinsics | CameraModel | None]


@dataclass(frozen=True)
class _FramePlan:
    """Where one frame goes: its letterbox, output size (pixels) and intrinsics in and out."""

    box: Letterbox
    out_height: int
    out_width: int
    intrinsics: Intrinsics | None
    out_intrinsics: Intrinsics | None
    undistortion: Undistortion | None = None  # for a camera with lens distortion
    final: _FramePlan | None = None  # the output size's plan when this one stops at the network's resolution


class DepthEstimator:
    """Runs a checkpoint's network on images; see the module docstring for the pipeline.

    ``mask_sky``, ``min_depth`` and ``max_depth`` (metres; None = the model's range) are plain attributes that
    may change between frames. ``backend``: ``auto`` (``cudagraphs`` on CUDA, ``eager`` on the CPU); ``eager``;
    ``compile`` (``torch.compile``, with weight freezing on the CPU; compiles on the first frame of each output
    combination, tens of seconds on a small CPU); ``cudagraphs`` (CUDA only: the network is captured once per
    head combination and batch size, at its first use, and replayed; much faster than eager on a GPU, where
    eager is bound by kernel launches: README, *Measured figures*).
    ``precision``: ``fp32``, ``fp16`` (CUDA only), ``bf16`` (CUDA, or CPUs with native bf16 such as
    AVX512-BF16/AMX, where it is faster than fp32) or ``auto`` (``devices.resolve_precision``); the attribute
    ``precision`` holds the one in use.
    ``num_threads``: torch's CPU thread count for this process (None leaves it). On a CPU shared with other busy
    processes, fewer threads than cores avoids the collapse of oversubscribed thread pools.

    An ``.onnx`` ``checkpoint`` runs on onnxruntime (backend ``auto`` or ``onnxruntime``; the PyTorch backends are
    refused): ``device`` picks the execution provider (``auto``: TensorRT, CUDA, CPU, the first installed; ``cuda``:
    TensorRT or CUDA, refused without onnxruntime-gpu), ``precision`` is ``auto`` (fp16 on TensorRT, else the
    file's), ``fp32`` or ``fp16`` (refused with the reason where the provider and file cannot honour it),
    ``trt_cache_dir`` keeps TensorRT engines (None: ``onnx_runner.default_trt_cache_dir()``) and ``num_threads``
    also sets ORT's CPU threads. ``runner.description`` names the provider in use.
    """

    def __init__(self, checkpoint: str | Path | Checkpoint, *, device: str = "auto", precision: str = "fp32",
                 mask_sky: bool = False, min_depth: float | None = None, max_depth: float | None = None,
                 backend: str = "auto", num_threads: int | None = None,
                 trt_cache_dir: str | Path | None = None) -> None:
        if num_threads is not None:
            if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
                raise ConfigError(f"num_threads = {num_threads!r} must be a positive integer")
            torch.set_num_threads(num_threads)
        if is_onnx_path(checkpoint):
            runner = load_onnx_runner(checkpoint, device=device, precision=precision, backend=backend,
                                      trt_cache_dir=trt_cache_dir, num_threads=num_threads)
            self._attach(runner, runner.config, trained=runner.trained, source=str(checkpoint),
                         precision=runner.precision, backend="onnxruntime", mask_sky=mask_sky, min_depth=min_depth,
                         max_depth=max_depth)
            return
        torch_device = resolve_device(device)
        used_precision = resolve_precision(precision, torch_device)
        used_backend = resolve_backend(backend, torch_device)
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
        runner = make_runner(ckpt, backend=used_backend, device=torch_device, precision=used_precision,
                             dtype=dtype_of(used_precision))
        self._attach(runner, ckpt.config, trained=ckpt.trained, source=str(ckpt.path), precision=used_precision,
                     backend=used_backend, mask_sky=mask_sky, min_depth=min_depth, max_depth=max_depth)

    @classmethod
    def from_runner(cls, runner: NetworkRunner, config: ModelConfig, *, trained: bool, source: str,
                    precision: str, backend: str, mask_sky: bool = False, min_depth: float | None = None,
                    max_depth: float | None = None) -> "DepthEstimator":
        """An estimator around a runner built elsewhere (e.g. another runtime), for a model described by ``config``
        and ``trained``; ``source`` names the model file in messages; ``precision``/``backend`` are reported."""
        estimator = cls.__new__(cls)
        estimator._attach(runner, config, trained=trained, source=source, precision=precision, backend=backend,
                          mask_sky=mask_sky, min_depth=min_depth, max_depth=max_depth)
        return estimator

    def _attach(self, runner: NetworkRunner, config: ModelConfig, *, trained: bool, source: str, precision: str,
                backend: str, mask_sky: bool, min_depth: float | None, max_depth: float | None) -> None:
        self.runner = runner
        self.device: torch.device = runner.device
        self.precision = precision
        self.backend = backend
        self.config = config
        self.trained = trained
        self.source = source
        if not trained:
            logger.warning("checkpoint %s is UNTRAINED (random weights): its depth, labels and confidence are "
                           "MEANINGLESS; use it only to test plumbing", source)
        self.mask_sky = mask_sky
        self.min_depth = min_depth
        self.max_depth = max_depth
        # the model's own depth head, also when a runner (an .onnx exported with fewer heads) lacks it
        self._depth_head = "drn" if config.use_drn else "dc"
        logger.info("model %s (%s) runs on %s", config.name, source, runner.description)
        # keyed by (letterbox, feature size, output size) and (distortion model, D, K and size, letterbox, output
        # size): the estimator's device is fixed
        self._grids: BoundedCache[tuple, OutputGrid] = BoundedCache(GRID_CACHE_SIZE, "output grid cache")
        self._undistortions: BoundedCache[tuple, Undistortion] = BoundedCache(UNDISTORTION_CACHE_SIZE,
                                                                            "undistortion cache")
        self._pinned: list[tuple[torch.Tensor, torch.cuda.Event | None]] = []

    # ------------------------------------------------------------------ public API

    def estimate(self, image: np.ndarray, *, camera: Intrinsics | CameraModel | None = None,
                 output_resolution: str = "input", outputs: Collection[str] = ESTIMATOR_OUTPUTS,
                 defer: bool = False) -> EstimatorOutputs:
        """Depth / semantic / confidence of one HxWx3 uint8 RGB image (may be a non-contiguous or read-only view).

        ``camera``: the image's pinhole ``Intrinsics`` or its ``CameraModel`` (whose lens distortion is then
        removed), for the image's HxW; an unsupported distortion model or D raises InvalidInputError naming it.
        ``output_resolution``: ``input`` (HxW of the image) or ``network`` (the image resized to fit the network
        input, without padding). Only ``outputs`` are computed. ``defer``: see ``estimate_batch``.
        """
        return self.estimate_batch([(image, camera)], output_resolution=output_resolution, outputs=outputs,
                                   defer=defer)[0]

    @torch.inference_mode()
    def estimate_batch(self, frames: Sequence[CameraImage], *, output_resolution: str = "input",
                       outputs: Collection[str] = ESTIMATOR_OUTPUTS,
                       defer: bool | Sequence[bool] = False) -> list[EstimatorOutputs]:
        """One :class:`EstimatorOutputs` per ``(image, camera)`` frame, as ``estimate`` gives it (distorted and
        pinhole frames may be mixed).

        The frames may differ in size and camera; they are letterboxed to the network input and run as ONE
        Bx3xHxW forward pass. ``output_resolution`` and ``outputs`` apply to every frame.
        ``defer`` (for all frames or per frame): where the output size is larger than the network's resolution,
        stop depth, semantic and confidence there (``EstimatorOutputs.upsampling``), for stages to run on them
        before ``at_output_size``.
        """
        wanted = check_outputs(outputs)
        if output_resolution not in OUTPUT_RESOLUTIONS:
            raise ConfigError(f"output_resolution '{output_resolution}' is not one of {', '.join(OUTPUT_RESOLUTIONS)}")
        if len(frames) < 1:
            raise InvalidInputError("estimate_batch needs at least one frame")
        low, high = self.depth_range()
        defers = [defer] * len(frames) if isinstance(defer, bool) else list(defer)
        if len(defers) != len(frames):
            raise ConfigError(f"defer has {len(defers)} values for {len(frames)} frames")
        plans = [self._plan(image, camera, output_resolution, later)
                 for (image, camera), later in zip(frames, defers)]
        if not wanted:
            return [EstimatorOutputs(None, None, None, (plan.final or plan).out_intrinsics) for plan in plans]
        uploaded = [self._upload(image, slot) for slot, (image, _) in enumerate(frames)]
        colours: list[torch.Tensor | None] = [None] * len(plans)
        if "image" in wanted:
            finals = [p.final or p for p in plans]
            colours = [resize_rgb(u, f.out_height, f.out_width, f.undistortion) for u, f in zip(uploaded, finals)]
        if wanted == {"image"}:
            return [EstimatorOutputs(None, None, None, (p.final or p).out_intrinsics, image=c)
                    for p, c in zip(plans, colours)]

        mask_sky = bool(self.mask_sky)
        heads = self._heads(wanted, mask_sky)
        slices = [to_network_input(u, p.box, dtype=self.runner.input_dtype, channels_last=True,
                                   undistortion=p.undistortion) for u, p in zip(uploaded, plans)]
        x = slices[0] if len(slices) == 1 else torch.cat(slices).contiguous(memory_format=torch.channels_last)
        raw = self.runner(x, heads)
        results = []
        for index, (plan, colour) in enumerate(zip(plans, colours)):
            frame_raw = {name: tensor[index:index + 1] for name, tensor in raw.items()}
            results.append(self._finish(frame_raw, plan, heads, wanted, mask_sky, (low, high), colour))
        return results

    @property
    def model_name(self) -> str:
        """The model's name (``config.name``)."""
        return self.config.name

    @property
    def available_outputs(self) -> frozenset[str]:
        """The outputs the runner's heads can give (all of ``ESTIMATOR_OUTPUTS`` for a checkpoint; an ``.onnx``
        exported with fewer heads gives fewer: asking for another raises ConfigError naming the file)."""
        heads = self.runner.heads
        available = {"image"}
        if self._depth_head in heads:
            available.add("depth")
        if "dc" in heads:
            available.add("confidence")
        if "sc" in heads:
            available.add("semantic")
        return frozenset(available)

    def require_outputs(self, outputs: Collection[str]) -> None:
        """ConfigError naming the model file unless it can give every one of ``outputs`` (see
        ``available_outputs``): lets a command refuse, before any work, a model exported without a head it needs."""
        lacking = [name for name in ESTIMATOR_OUTPUTS if name in check_outputs(outputs) - self.available_outputs]
        if lacking:
            have = ", ".join(name for name in ESTIMATOR_OUTPUTS if name in self.available_outputs)
            raise ConfigError(f"model file {self.source} cannot give {', '.join(lacking)}: it was exported without "
                              f"the head(s) for it (it gives {have}); re-export with `semantic-depth export --heads "
                              "...`")

    def warmup(self, height: int, width: int, *, batch_size: int = 1) -> None:
        """Run two batches of ``batch_size`` frames of ``height`` x ``width`` with every available output
        (allocations, kernels, compilation).

        With CUDA graphs it also captures the graph of every head combination that some choice of outputs and
        ``mask_sky`` can need at that batch size, so that a change of subscriptions never stalls on a capture.
        """
        frames = [(np.zeros((height, width, 3), dtype=np.uint8), None)] * batch_size
        for _ in range(2):
            self.estimate_batch(frames, outputs=self.available_outputs)
        if self.backend == "cudagraphs":
            mask_sky = self.mask_sky
            try:
                for sky in (False, True):
                    self.mask_sky = sky
                    for count in range(1, len(ESTIMATOR_OUTPUTS) + 1):
                        for outputs in itertools.combinations(ESTIMATOR_OUTPUTS, count):
                            self.estimate_batch(frames, outputs=outputs)
            finally:
                self.mask_sky = mask_sky
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def depth_range(self) -> tuple[float, float]:
        """The valid depth interval (metres) now: ``min_depth``/``max_depth`` or the model's range for None."""
        return depth_range_of(self.config, self.min_depth, self.max_depth)

    def check_mask_sky(self) -> None:
        """ConfigError naming the model file when it lacks the semantic head that ``mask_sky`` needs."""
        if "sc" not in self.runner.heads:
            raise ConfigError(f"mask_sky needs the semantic head, which model file {self.source} was exported "
                              "without; re-export with `semantic-depth export --heads depth,semantic` or unset "
                              "mask_sky")

    def canonical_scale(self, box: Letterbox, intrinsics: Intrinsics | None) -> float:
        """Factor from the network's canonical depth to metric depth: f_eff / focal_px (1 without intrinsics).

        f_eff is the image's fx scaled to the network input (``scale_intrinsics`` to the resized size).
        """
        if intrinsics is None:
            return 1.0
        f_eff = scale_intrinsics(intrinsics, box.resized_width, box.resized_height).fx
        return f_eff / self.config.focal_px

    def cache_sizes(self) -> dict[str, int]:
        """Entries in each per-size cache now (``grids`` <= ``GRID_CACHE_SIZE``, ``undistortions`` <=
        ``UNDISTORTION_CACHE_SIZE``, ``pinned`` upload buffers <= the largest batch size)."""
        return {"grids": len(self._grids), "undistortions": len(self._undistortions), "pinned": len(self._pinned)}

    # ------------------------------------------------------------------ internals

    def _plan(self, image: np.ndarray, camera: Intrinsics | CameraModel | None, output_resolution: str,
              defer: bool = False) -> _FramePlan:
        """Check one frame and place it: letterbox, output size, output intrinsics and undistortion; with
        ``defer`` and an output larger than the network's resolution, the network resolution's plan whose
        ``final`` is the output size's."""
        height, width = check_image(image)
        if camera is not None and not isinstance(camera, (Intrinsics, CameraModel)):
            raise InvalidInputError(f"intrinsics must be Intrinsics, CameraModel or None, got {type(camera).__name__}")
        intrinsics = camera.intrinsics if isinstance(camera, CameraModel) else camera
        if intrinsics is not None and (intrinsics.width, intrinsics.height) != (width, height):
            raise InvalidInputError(f"intrinsics are for {intrinsics.width}x{intrinsics.height} "
                                    f"but the image is {width}x{height}")
        box = letterbox(height, width, self.config.input_height, self.config.input_width)
        out_h, out_w = (height, width) if output_resolution == "input" else (box.resized_height, box.resized_width)
        out_intrinsics = scale_intrinsics(intrinsics, out_w, out_h) if intrinsics is not None else None
        undistortion = None
        if isinstance(camera, CameraModel) and camera.has_distortion:
            model, coefficients = camera.distortion_model, validate_distortion(camera.distortion_model, camera.d)
            undistortion = self._undistortions.get(
                (model, coefficients, intrinsics, box, out_h, out_w),
                lambda: build_undistortion(intrinsics, model, coefficients, box, out_h, out_w, self.device))
        plan = _FramePlan(box, out_h, out_w, intrinsics, out_intrinsics, undistortion)
        if defer and out_h * out_w > box.resized_height * box.resized_width:
            return replace(self._plan(image, camera, "network"), final=plan)
        return plan

    def _finish(self, raw: dict[str, torch.Tensor], plan: _FramePlan, heads: tuple[str, ...],
                wanted: frozenset[str], mask_sky: bool, depth_range: tuple[float, float],
                colours: torch.Tensor | None) -> EstimatorOutputs:
        """One frame's 1xCxhxw network outputs -> its outputs at the output size (steps 4 to 7)."""
        any_map = next(iter(raw.values()))
        key = (plan.box, any_map.shape[-2], any_map.shape[-1], plan.out_height, plan.out_width)
        grid = self._grids.get(key, lambda: output_grid(*key, self.device))
        log_depth, confidence, labels = resample_outputs(raw, grid, heads, wanted)
        no_data = mask_no_data(no_data_of(plan.undistortion), confidence, labels)
        depth = None
        if log_depth is not None:
            depth = finish_depth(log_depth, self.canonical_scale(plan.box, plan.intrinsics), depth_range,
                                 labels=labels, mask_sky=mask_sky, no_data=no_data)
        semantic = labels.to(torch.uint8) if "semantic" in wanted else None
        upsampling = None
        if plan.final is not None:
            final = plan.final
            key = (plan.out_height, plan.out_width, final.out_height, final.out_width)
            upsampling = Upsampling(self._grids.get(("resize", *key), lambda: resize_grid(*key, self.device)),
                                    final.out_intrinsics, no_data_of(final.undistortion))
        return EstimatorOutputs(depth=depth, semantic=semantic, confidence=confidence,
                                intrinsics=plan.out_intrinsics, image=colours, upsampling=upsampling)

    def _heads(self, wanted: frozenset[str], mask_sky: bool) -> tuple[str, ...]:
        """The network heads the requested outputs need, in ``HEADS`` order."""
        heads = set()
        if "depth" in wanted:
            heads.add(self._depth_head)
        if "confidence" in wanted:
            heads.add("dc")
        if "semantic" in wanted or ("depth" in wanted and mask_sky):
            heads.add("sc")
        if "depth" in wanted and mask_sky:
            self.check_mask_sky()
        return tuple(h for h in HEADS if h in heads)

    def _upload(self, image: np.ndarray, slot: int) -> torch.Tensor:
        """HxWx3 uint8 tensor on the device, copying on the host at most once (CUDA: pinned buffer ``slot``)."""
        if self.device.type != "cuda":
            if image.flags.c_contiguous and image.flags.writeable:
                return torch.from_numpy(image)
            return torch.from_numpy(np.array(image, order="C", copy=True))
        while len(self._pinned) <= slot:
            self._pinned.append((torch.empty(0, dtype=torch.uint8), None))
        pinned, done = self._pinned[slot]
        if tuple(pinned.shape) != image.shape:
            pinned, done = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True), None
        if done is not None:
            done.synchronize()  # the previous upload from this slot has left the pinned buffer
        np.copyto(pinned.numpy(), image)
        tensor = pinned.to(self.device, non_blocking=True)
        done = torch.cuda.Event()
        done.record()
        self._pinned[slot] = (pinned, done)
        return tensor


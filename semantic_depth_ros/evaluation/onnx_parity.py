"""Parity of an exported .onnx model with its PyTorch checkpoint: ONNX Runtime (CPU) vs PyTorch fp32.

Both backends run the network on the same generated street-scene frames; their raw outputs go through the
estimator's own post-processing (``postprocess.resample_outputs``: crop, up-sampling, semantic argmax, confidence),
so the FINAL depth, labels and confidence are compared. Tolerances (``TOLERANCES``, documented in the README):
median relative depth difference <= 1e-3, labels equal on >= 99.5 % of pixels, confidence within 1e-3 (absolute,
maximum over pixels). Files exported with ``--fp16`` are held to the looser ``FP16_TOLERANCES`` (median 1e-2, 98 %,
2e-2): fp16 rounds every operation to about 5e-4 relative, which accumulates through the network, so fp32's bounds
are not guaranteed for a trained model (random weights measured 1.8e-5, 99.87 %, 7e-7 at 192x64).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.synthetic import render_frame
from ..errors import CheckpointError
from ..geometry.letterbox import letterbox
from ..inference.onnx_runner import OnnxRunner
from ..inference.postprocess import resample_outputs
from ..inference.preprocess import output_grid, to_network_input
from ..model.checkpoint import Checkpoint


@dataclass(frozen=True)
class Tolerances:
    """Bounds of a passing parity check."""

    depth_median_rel: float
    label_agreement: float  # fraction of pixels, 0..1
    confidence_max_abs: float


TOLERANCES = Tolerances(depth_median_rel=1e-3, label_agreement=0.995, confidence_max_abs=1e-3)
FP16_TOLERANCES = Tolerances(depth_median_rel=1e-2, label_agreement=0.98, confidence_max_abs=2e-2)


@dataclass(frozen=True)
class ParityReport:
    """Differences over all pixels of all frames; None where the file lacks that output."""

    frames: int
    depth_max_rel: float | None
    depth_median_rel: float | None
    label_agreement: float | None
    confidence_max_abs: float | None
    tolerances: Tolerances

    @property
    def passed(self) -> bool:
        """Whether every measured difference is within the tolerances."""
        tol = self.tolerances
        return ((self.depth_median_rel is None or self.depth_median_rel <= tol.depth_median_rel)
                and (self.label_agreement is None or self.label_agreement >= tol.label_agreement)
                and (self.confidence_max_abs is None or self.confidence_max_abs <= tol.confidence_max_abs))

    def lines(self) -> list[str]:
        """Human-readable result lines (one per quantity, then the verdict)."""
        tol = self.tolerances
        out = [f"parity (onnxruntime CPU vs PyTorch fp32, {self.frames} generated street frames):"]
        if self.depth_median_rel is not None:
            out.append(f"  depth relative difference: max {self.depth_max_rel:.2e}, median "
                       f"{self.depth_median_rel:.2e} (tolerance: median <= {tol.depth_median_rel:.0e})")
        if self.label_agreement is not None:
            out.append(f"  label agreement: {100 * self.label_agreement:.3f} % "
                       f"(tolerance: >= {100 * tol.label_agreement:g} %)")
        if self.confidence_max_abs is not None:
            out.append(f"  confidence difference: max {self.confidence_max_abs:.2e} "
                       f"(tolerance: <= {tol.confidence_max_abs:.0e})")
        out.append("  parity: " + ("PASS" if self.passed else "FAIL (beyond tolerance)"))
        return out


def street_frames(count: int, height: int, width: int, seed: int = 7) -> list[np.ndarray]:
    """``count`` generated street scenes, HxWx3 uint8 RGB (the one place this module uses the scene generator)."""
    return [render_frame("kitti_like", index, seed=seed, height=height, width=width).rgb for index in range(count)]


@torch.inference_mode()
def parity_check(checkpoint: Checkpoint, onnx_path: str | Path, *, frames: int = 2,
                 num_threads: int | None = None) -> ParityReport:
    """Run ``checkpoint`` (PyTorch fp32, unfolded) and ``onnx_path`` (onnxruntime CPU) on ``frames`` generated
    frames at the file's input size and compare the post-processed outputs (see the module docstring)."""
    runner = OnnxRunner(onnx_path, device="cpu", precision="auto", num_threads=num_threads)
    config = runner.config
    size = {"input_height": config.input_height, "input_width": config.input_width}
    if checkpoint.config.replace(**size) != config:
        raise CheckpointError(f"model file {onnx_path} was not exported from checkpoint {checkpoint.path}: their "
                              "model configs differ (beyond the input size)")
    model = checkpoint.build_model().float()
    heads = tuple(h for h in ("dc", "sc", "drn") if h in runner.heads)
    wanted = frozenset({"depth"} if {"dc", "drn"} & runner.heads else set()) | frozenset(
        {"confidence"} if "dc" in runner.heads else set()) | frozenset({"semantic"} if "sc" in runner.heads else set())
    height, width = config.input_height, config.input_width
    box = letterbox(height, width, height, width)
    rel, agree, conf = [], [], []
    for image in street_frames(frames, height, width):
        x = to_network_input(torch.from_numpy(image), box, dtype=torch.float32, channels_last=False)
        results = []
        for raw in (model(x, heads=heads, upsample=False), runner(x, heads)):
            raw = {k: v.float() for k, v in raw.items()}
            any_map = next(iter(raw.values()))
            grid = output_grid(box, any_map.shape[-2], any_map.shape[-1], height, width, torch.device("cpu"))
            results.append(resample_outputs(raw, grid, heads, wanted))
        (log_t, conf_t, lab_t), (log_o, conf_o, lab_o) = results
        if log_t is not None:
            rel.append((torch.exp(log_o - log_t) - 1.0).abs().flatten())
        if lab_t is not None:
            agree.append((lab_t == lab_o).flatten())
        if conf_t is not None:
            conf.append((conf_o - conf_t).abs().flatten())
    rel_all = torch.cat(rel) if rel else None
    return ParityReport(
        frames=frames,
        depth_max_rel=float(rel_all.max()) if rel_all is not None else None,
        depth_median_rel=float(rel_all.median()) if rel_all is not None else None,
        label_agreement=float(torch.cat(agree).float().mean()) if agree else None,
        confidence_max_abs=float(torch.cat(conf).max()) if conf else None,
        tolerances=FP16_TOLERANCES if runner.metadata.weights_precision == "fp16" else TOLERANCES)

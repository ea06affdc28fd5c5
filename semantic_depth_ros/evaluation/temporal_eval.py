"""Evaluation of the temporal filter on a generated driving sequence (``semantic-depth temporal-eval``).

The network runs once per frame of a :func:`~..data.synthetic.sequence.render_sequence` drive; its outputs then go
through three variants: ``off`` (the network alone), ``poses`` (``TemporalStage`` fed the true camera poses) and
``no_poses`` (the same stage without poses: static-camera mode on a moving camera). The same street seen from a
stopped camera (``stopped_camera``: ``off`` and ``no_poses``) measures the pose-less mode where it belongs. Per
variant:

* **flicker**: mean over frame pairs of the mean over static pixels (of static classes: not the moving classes
  the filter never fuses, not sky) of ``|log d_t(q) - log warp(d_{t-1})(p)|``,
  where the correspondence ``p -> q`` comes from the TRUE depth and TRUE poses (z-buffered forward warp, kept only
  where the true depth at ``q`` confirms the surface within ``VISIBILITY_TOLERANCE``) and ``warp(d_{t-1})(p)`` is
  the depth the predicted point at ``p`` has in frame t. ``flicker_floor`` is the same number for the true depth
  (the pixel rounding of the correspondence; 0 only for exact geometry);
  ``flicker_parked_cars`` is the same on the parked cars (static, but of a moving class, so never fused);
  ``flicker_fused_pixels`` only on the pixels the filter fused at t, beside ``off_flicker_fused_pixels``, the
  network alone on those pixels;
* **static** and **car**: abs rel and δ<1.25 (``evaluation.metrics``, per-frame means, ``MIN_DEPTH_M``..
  ``MAX_DEPTH_M``, no crop) against the true depth on static pixels and on the moving car's pixels;
* the filter's time per frame on the estimator's device, beside the network's (``estimate``).

The filter runs where the node runs it: on the network's resolution when the camera's is larger (the estimator
stops there, ``estimate(defer=True)``), its depth then upsampled to the camera's size (timed apart); ``off`` is the
network's depth at the camera's size as the node publishes it without the filter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.synthetic.sequence import DrivingSequence, SequenceFrame, render_sequence
from ..data.tf_chain import invert_rigid
from ..inference.estimator import DepthEstimator, EstimatorOutputs
from ..pipeline.stages import FrameContext
from ..temporal.settings import MOVING_LABELS, TemporalSettings
from ..temporal.stage import TemporalStage
from ..temporal.warp import forward_warp, project_depth
from .evaluate import load_eval_estimator
from .metrics import DepthMetricAccumulator

VARIANTS: tuple[str, ...] = ("off", "poses", "no_poses")
DEFAULT_FRAMES = 30
DEFAULT_SEED = 4242  # distinct from the training and evaluation seeds of the generated scenes
DEFAULT_SIZE = (188, 620)  # height, width: the demo's camera frames
MIN_DEPTH_M, MAX_DEPTH_M = 1.0, 80.0
VISIBILITY_TOLERANCE = 0.02  # relative: a warped true point is visible at q when the true depth there agrees
CLEARLY_LOWER = 0.8  # "clearly lower" flicker: at most this fraction of the filter-off flicker
CAR_TOLERANCE = 0.05  # the goal: the moving car's abs rel at most this much (relative) worse than without the filter
COST_BUDGET = 0.10  # filter time as a fraction of the network time allowed by the goal


def _sync(device: torch.device) -> None:
    """Wait for the device's queued work, so that a wall-clock time is the work's and not its launch."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(call: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """``call()`` and its wall time in ms on ``device`` (synchronised)."""
    _sync(device)
    start = time.perf_counter()
    result = call()
    _sync(device)
    return result, (time.perf_counter() - start) * 1e3


def _nan_invalid(depth: np.ndarray) -> np.ndarray:
    """True depth (0 = no hit) as float32 with NaN where invalid."""
    return np.where(depth > 0, depth, np.nan).astype(np.float32)


def _in_range(frame: SequenceFrame) -> np.ndarray:
    """HxW bool: true depth in the evaluated range (so never sky), not the moving car."""
    return (frame.depth > MIN_DEPTH_M) & (frame.depth < MAX_DEPTH_M) & ~frame.moving


def static_mask(frame: SequenceFrame) -> np.ndarray:
    """HxW bool: static pixels, i.e. of static classes (true label not one of ``MOVING_LABELS``, the classes the
    filter never fuses), in the evaluated range."""
    return _in_range(frame) & ~np.isin(frame.semantic, MOVING_LABELS)


def parked_mask(frame: SequenceFrame) -> np.ndarray:
    """HxW bool: parked cars: geometrically static but of a moving class (the filter leaves them alone)."""
    return _in_range(frame) & np.isin(frame.semantic, MOVING_LABELS)


def correspondences(seq: DrivingSequence, region: Callable[[SequenceFrame], np.ndarray] = static_mask
                    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame pair (t-1, t): flat source pixels ``p`` (frame t-1), target pixels ``q`` (frame t) and the
    relative pose ``current_from_previous`` (4x4, as an array of one), from the true depth and poses; only pixels
    of ``region`` in both frames, visible in both."""
    pairs = []
    for before, after in zip(seq.frames[:-1], seq.frames[1:]):
        relative = invert_rigid(after.world_from_camera) @ before.world_from_camera
        warped = forward_warp(torch.from_numpy(_nan_invalid(before.depth)), seq.intrinsics, relative)
        source = warped.source.numpy().reshape(-1)
        true_after = _nan_invalid(after.depth).reshape(-1)
        with np.errstate(invalid="ignore"):
            visible = np.abs(warped.depth.numpy().reshape(-1) / true_after - 1.0) < VISIBILITY_TOLERANCE
        keep = visible & (source >= 0) & region(after).reshape(-1)
        keep[keep] &= region(before).reshape(-1)[source[keep]]
        targets = np.flatnonzero(keep)
        pairs.append((source[targets], targets, relative[None]))
    return pairs


def flicker(depths: list[np.ndarray], seq: DrivingSequence, pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
            select: list[np.ndarray] | None = None) -> float:
    """Mean over frame pairs of the mean |log d_t(q) - log warp(d_{t-1})(p)| on the pairs' pixels (NaN
    predictions skipped), only where ``select[t]`` (HxW bool per frame) when given; NaN when no pixel counts."""
    per_pair = []
    for t, (sources, targets, relative) in enumerate(pairs, start=1):
        if select is not None:
            keep = select[t].reshape(-1)[targets]
            sources, targets = sources[keep], targets[keep]
        z_prev = project_depth(torch.from_numpy(depths[t - 1]), seq.intrinsics, relative[0])[0].numpy().reshape(-1)
        now = depths[t].reshape(-1)[targets]
        with np.errstate(invalid="ignore", divide="ignore"):
            diff = np.abs(np.log(now) - np.log(z_prev[sources]))
        diff = diff[np.isfinite(diff)]
        if diff.size:
            per_pair.append(float(diff.mean()))
    return float(np.mean(per_pair)) if per_pair else float("nan")


def drive_flicker(seq: DrivingSequence, depths: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Flicker (:func:`flicker` on the static pixels) of each named depth stream of ``seq``'s frames (HxW metres,
    NaN = none), and ``floor``: the same for the true depth."""
    pairs = correspondences(seq)
    result = {name: flicker(stream, seq, pairs) for name, stream in depths.items()}
    result["floor"] = flicker([_nan_invalid(frame.depth) for frame in seq.frames], seq, pairs)
    return result


def region_metrics(depths: list[np.ndarray], seq: DrivingSequence) -> dict[str, dict[str, float]]:
    """abs rel and a1 (δ<1.25) on static pixels and on the moving car's, with the frame counts."""
    static = DepthMetricAccumulator(min_depth=MIN_DEPTH_M, max_depth=MAX_DEPTH_M, crop="none")
    car = DepthMetricAccumulator(min_depth=MIN_DEPTH_M, max_depth=MAX_DEPTH_M, crop="none")
    for depth, frame in zip(depths, seq.frames):
        static.add(depth, np.where(static_mask(frame), frame.depth, 0.0))
        car.add(depth, np.where(frame.moving, frame.depth, 0.0))
    return {name: {"abs_rel": acc.result()["abs_rel"], "a1": acc.result()["a1"], "frames": acc.count}
            for name, acc in (("static", static), ("car", car))}


def run_network(estimator: DepthEstimator, seq: DrivingSequence, *, defer: bool = False
                ) -> tuple[list[EstimatorOutputs], float]:
    """The network's outputs for every frame (on its device) and its mean time per frame (ms, after a warm-up);
    ``defer``: stopped at the network's resolution where the camera's is larger, as the node gives them to its
    stages (``estimate(defer=True)``)."""
    estimator.warmup(seq.intrinsics.height, seq.intrinsics.width)
    outputs, times = [], []
    for frame in seq.frames:
        result, ms = _timed(lambda: estimator.estimate(frame.rgb, camera=seq.intrinsics, defer=defer),
                            estimator.device)
        outputs.append(result)
        times.append(ms)
    return outputs, float(np.mean(times))


def run_variant(variant: str, outputs: list[EstimatorOutputs], seq: DrivingSequence, settings: TemporalSettings,
                device: torch.device) -> tuple[list[np.ndarray], list[np.ndarray] | None, dict[str, Any]]:
    """Depth per frame (HxW float32 numpy, at the camera's size) of one variant, the pixels its filter fused per
    frame (HxW bool; None for ``off``), and its filter statistics.

    ``outputs`` as the node gives them: the filter runs at their resolution, then they are upsampled to the
    camera's size (``at_output_size``, timed apart as ``upsample_ms_per_frame``) as the node publishes them."""
    if variant == "off":
        return [o.at_output_size().depth.float().cpu().numpy() for o in outputs], None, {}
    stage = TemporalStage(replace(settings, temporal_filter="auto"))
    depths, times, upsample_times, fused, masks = [], [], [], [], []
    for frame, out in zip(seq.frames, outputs):
        context = FrameContext(stamp_ns=frame.stamp_ns, pose=frame.world_from_camera if variant == "poses" else None)
        result, ms = _timed(lambda: stage.process(out, context), device)
        final, upsample_ms = _timed(lambda: result.at_output_size(("depth",)), device)
        depths.append(final.depth.float().cpu().numpy())
        times.append(ms)
        upsample_times.append(upsample_ms)
        fused.append(stage.filter.fused_fraction)
        last = stage.filter.last_fused
        if last is not None and out.upsampling is not None:  # the fused network pixels at the camera's size
            last = out.upsampling.grid.sample(last[None, None].float(), "nearest")[0, 0] > 0.5
        masks.append(np.zeros(frame.depth.shape, dtype=bool) if last is None else last.cpu().numpy())
    diagnostics = stage.diagnostics()
    return depths, masks, {
        "filter_ms_per_frame": float(np.mean(times[1:] if len(times) > 1 else times)),
        "upsample_ms_per_frame": float(np.mean(upsample_times[1:] if len(upsample_times) > 1 else upsample_times)),
        "fused_fraction_mean": float(np.mean(fused[1:])),
        "resets": int(diagnostics["temporal_resets"]),
        "frames_without_pose": int(diagnostics["temporal_frames_without_pose"]),
    }


def _goals(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, reported (not asserted), with the ratios behind them."""
    off, poses, no_poses = (result["variants"][name] for name in VARIANTS)
    stopped_off, stopped_no_poses = (result["stopped_camera"]["variants"][name] for name in ("off", "no_poses"))

    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    def car_change(variant: dict[str, Any]) -> float:  # signed: > 0 when the filter made the car worse
        return ratio(variant["car"]["abs_rel"], off["car"]["abs_rel"]) - 1.0

    cost = max(poses["filter_ms_per_frame"], no_poses["filter_ms_per_frame"]) / result["network_ms_per_frame"]
    return {
        "poses_flicker_ratio": ratio(poses["flicker"], off["flicker"]),
        "poses_flicker_at_most_half": ratio(poses["flicker"], off["flicker"]) <= 0.5,
        "poses_static_abs_rel_not_worse": poses["static"]["abs_rel"] <= off["static"]["abs_rel"],
        "no_poses_flicker_ratio": ratio(no_poses["flicker"], off["flicker"]),
        "no_poses_flicker_clearly_lower": ratio(no_poses["flicker"], off["flicker"]) <= CLEARLY_LOWER,
        "poses_car_abs_rel_change": car_change(poses),
        "no_poses_car_abs_rel_change": car_change(no_poses),
        "car_abs_rel_at_most_5_percent_worse":
            car_change(poses) <= CAR_TOLERANCE and car_change(no_poses) <= CAR_TOLERANCE,
        "stopped_no_poses_flicker_ratio": ratio(stopped_no_poses["flicker"], stopped_off["flicker"]),
        "stopped_no_poses_flicker_clearly_lower":
            ratio(stopped_no_poses["flicker"], stopped_off["flicker"]) <= CLEARLY_LOWER,
        "filter_cost_ratio": cost,
        "filter_cost_below_10_percent": cost < COST_BUDGET,
    }


def _evaluate_drive(seq: DrivingSequence, outputs: list[EstimatorOutputs], deferred: list[EstimatorOutputs],
                    settings: TemporalSettings, device: torch.device, variants: tuple[str, ...]) -> dict[str, Any]:
    """Flicker floor and, per variant, flicker, parked-car flicker, region metrics and filter statistics;
    ``off`` from ``outputs`` (the network at the camera's size), the filter from ``deferred`` (``run_network``)."""
    pairs = correspondences(seq)
    parked_pairs = correspondences(seq, parked_mask)
    result: dict[str, Any] = {
        "flicker_floor": flicker([_nan_invalid(frame.depth) for frame in seq.frames], seq, pairs),
        "pair_pixels_mean": float(np.mean([p[1].size for p in pairs])),
        "parked_pair_pixels_mean": float(np.mean([p[1].size for p in parked_pairs])),
        "variants": {},
    }
    off_depths = None
    for variant in variants:
        depths, fused, stats = run_variant(variant, outputs if variant == "off" else deferred, seq, settings, device)
        entry = {"flicker": flicker(depths, seq, pairs), "flicker_parked_cars": flicker(depths, seq, parked_pairs),
                 **region_metrics(depths, seq), **stats}
        if variant == "off":
            off_depths = depths
        elif off_depths is not None:  # the pixels the filter fused, against the network alone on the same pixels
            entry["flicker_fused_pixels"] = flicker(depths, seq, pairs, fused)
            entry["off_flicker_fused_pixels"] = flicker(off_depths, seq, pairs, fused)
        result["variants"][variant] = entry
    return result


def evaluate_temporal(checkpoint: str | Path, *, frames: int = DEFAULT_FRAMES, seed: int = DEFAULT_SEED,
                      height: int = DEFAULT_SIZE[0], width: int = DEFAULT_SIZE[1], device: str = "auto",
                      precision: str = "fp32", settings: TemporalSettings | None = None) -> dict[str, Any]:
    """Every number of the module docstring for ``checkpoint`` on the drive (``frames``, ``seed``, HxW px), and
    the filter without poses on the same street seen from a stopped camera (``stopped_camera``: the case the
    pose-less mode is for); ``settings`` (default ``TemporalSettings()``) with the mode set to ``auto``."""
    settings = settings or TemporalSettings()
    seq = render_sequence(frames, seed=seed, height=height, width=width)
    estimator = load_eval_estimator(checkpoint, device=device, precision=precision)
    outputs, network_ms = run_network(estimator, seq)
    drive = _evaluate_drive(seq, outputs, run_network(estimator, seq, defer=True)[0], settings, estimator.device,
                            VARIANTS)
    stopped_seq = render_sequence(frames, seed=seed, height=height, width=width, stopped=True)
    stopped_outputs, _ = run_network(estimator, stopped_seq)
    stopped = _evaluate_drive(stopped_seq, stopped_outputs, run_network(estimator, stopped_seq, defer=True)[0],
                              settings, estimator.device, ("off", "no_poses"))
    result: dict[str, Any] = {
        "checkpoint": str(checkpoint), "model": estimator.model_name, "trained": estimator.trained,
        "device": str(estimator.device), "precision": estimator.precision,
        "sequence": {"domain": seq.domain, "frames": frames, "seed": seed, "height": height, "width": width,
                     "rate_hz": seq.rate_hz, "ego_speed_mps_mean": float(seq.ego_speed_mps.mean()),
                     "car_speed_mps": seq.car_speed_mps, "pair_pixels_mean": drive["pair_pixels_mean"],
                     "parked_pair_pixels_mean": drive["parked_pair_pixels_mean"]},
        "settings": {**asdict(settings), "temporal_filter": "auto"},
        "network_ms_per_frame": network_ms,
        "flicker_floor": drive["flicker_floor"],
        "variants": drive["variants"],
        "stopped_camera": {"flicker_floor": stopped["flicker_floor"], "variants": stopped["variants"]},
    }
    result["goals"] = _goals(result)
    return result


def format_temporal_report(result: dict[str, Any]) -> str:
    """A Markdown table of the variants and the goals."""
    seq = result["sequence"]
    lines = [
        f"# temporal-eval: {result['model']} ({'trained' if result['trained'] else 'UNTRAINED'}) on {result['device']}",
        "",
        f"{seq['frames']} frames of a generated drive (seed {seq['seed']}, {seq['height']}x{seq['width']}, "
        f"{seq['rate_hz']:g} Hz, ego {seq['ego_speed_mps_mean']:.1f} m/s, moving car {seq['car_speed_mps']:.1f} m/s); "
        f"network {result['network_ms_per_frame']:.1f} ms/frame; flicker floor {result['flicker_floor']:.4f} "
        f"(stopped camera {result['stopped_camera']['flicker_floor']:.4f})",
        "",
        "| filter | flicker | static abs rel | static δ<1.25 | car abs rel | car δ<1.25 | parked flicker | fused "
        "| flicker on fused pixels (off) | ms/frame (+ upsampling) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(name, result["variants"][name]) for name in VARIANTS]
    rows += [(f"stopped camera, {name}", v) for name, v in result["stopped_camera"]["variants"].items()]
    for name, v in rows:
        fused = f"{v['fused_fraction_mean']:.2f}" if "fused_fraction_mean" in v else "-"
        cost = f"{v['filter_ms_per_frame']:.2f}" if "filter_ms_per_frame" in v else "-"
        if "upsample_ms_per_frame" in v:
            cost += f" (+{v['upsample_ms_per_frame']:.2f})"
        on_fused = (f"{v['flicker_fused_pixels']:.4f} ({v['off_flicker_fused_pixels']:.4f})"
                    if "flicker_fused_pixels" in v else "-")
        lines.append(f"| {name} | {v['flicker']:.4f} | {v['static']['abs_rel']:.4f} | {v['static']['a1']:.3f} | "
                     f"{v['car']['abs_rel']:.4f} | {v['car']['a1']:.3f} | {v['flicker_parked_cars']:.4f} | {fused} | "
                     f"{on_fused} | {cost} |")
    goals = result["goals"]
    lines += [
        "",
        f"- with poses: flicker x{goals['poses_flicker_ratio']:.2f} of off (goal <= 0.5: "
        f"{_yes(goals['poses_flicker_at_most_half'])}); static abs rel not worse: "
        f"{_yes(goals['poses_static_abs_rel_not_worse'])}",
        f"- without poses: flicker x{goals['no_poses_flicker_ratio']:.2f} of off (goal <= {CLEARLY_LOWER}: "
        f"{_yes(goals['no_poses_flicker_clearly_lower'])}); on a stopped camera "
        f"x{goals['stopped_no_poses_flicker_ratio']:.2f} ({_yes(goals['stopped_no_poses_flicker_clearly_lower'])})",
        f"- moving car abs rel change: {goals['poses_car_abs_rel_change']:+.1%} with poses, "
        f"{goals['no_poses_car_abs_rel_change']:+.1%} without (goal: at most +5 %: "
        f"{_yes(goals['car_abs_rel_at_most_5_percent_worse'])})",
        f"- filter cost: {goals['filter_cost_ratio']:.1%} of the network (goal < 10 %: "
        f"{_yes(goals['filter_cost_below_10_percent'])})",
    ]
    return "\n".join(lines)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"

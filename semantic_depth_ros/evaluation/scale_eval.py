"""Scale from the road, measured on generated street scenes whose camera height is known.

A new vehicle is simulated by multiplying the model's depth by a *scale error* ``E``. Over consecutive held-out
frames of one domain (a sequence, for the smoothing), the depth is scored against the rendered ground truth three
times with the Eigen metrics (:mod:`.metrics`, cap ``CAP_M``, from ``MIN_DEPTH_M``, no crop): as the model gives it
(``unscaled``), multiplied by ``E`` (``scaled``), and multiplied by ``E`` and then corrected by
:class:`~semantic_depth_ros.roadscale.RoadScale` from the road (``corrected``). The perfect correction is ``1 / E``.
As in the node, the road is fitted at the network's resolution when the camera's is larger (``estimate(defer=True)``)
and the depth is scored at the camera's size (``EstimatorOutputs.at_output_size``).

Goals (``GOALS``): corrected abs rel at most 10 % above the unscaled model's when ``E`` != 1 and at most 2 % above
it when ``E`` = 1 (no harm; below it is better than the goal); the spread of the applied (smoothed) scale, its
standard deviation over its median across the frames from the first accepted one on, under 2 %. An untrained model's road labels are
noise: the acceptance test must reject every frame and leave the scale at 1.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from semantic_depth_ros.data.synthetic import render_frame
from semantic_depth_ros.data.synthetic.domains import base_from_camera, domain_spec
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.evaluation.metrics import DepthMetricAccumulator
from semantic_depth_ros.roadscale import RoadScale, RoadScaleSettings

SCALE_EVAL_SEED = 7000
"""Seed of the generated frames: training uses 0, validation 1000, ``evaluate`` 2024, the demo 5000 and 5001."""
DEFAULT_FRAMES = 40
DEFAULT_DOMAIN = "kitti_like"
CAP_M = 80.0
MIN_DEPTH_M = 1.0
VARIANTS: tuple[str, ...] = ("unscaled", "scaled", "corrected")
GOALS = {"abs_rel_tolerance": 0.10, "abs_rel_tolerance_no_error": 0.02, "max_scale_spread": 0.02}
"""Relative tolerances of the goals (fractions)."""


class EstimatorLike(Protocol):
    """What the measurement needs of an estimator (``inference.estimator.DepthEstimator``)."""

    trained: bool

    def estimate(self, image: np.ndarray, **kwargs: Any) -> Any: ...


def nominal_camera_height(domain: str) -> float:
    """Metres from the optical centre of ``domain``'s camera down to the road with the vehicle at rest."""
    return float(base_from_camera(domain_spec(domain))[2, 3])


@dataclass(frozen=True)
class FrameRecord:
    """One frame: true camera height (m), the road result (reason, fraction of the image that is road with valid
    depth, fitted height in metres of the scaled depth, inlier ratio, tilt in radians), its own scale and the
    scale applied (after smoothing)."""

    index: int
    true_height: float
    reason: str
    road_fraction: float
    frame_scale: float
    applied_scale: float
    fitted_height: float
    inlier_ratio: float
    tilt: float

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _spread(values: Sequence[float]) -> float:
    """Relative spread of ``values``: population standard deviation over the median (NaN for no values)."""
    if not values:
        return math.nan
    return float(np.std(values) / statistics.median(values))


def _stats(values: Sequence[float]) -> dict[str, Any]:
    """Median, relative spread, min, max and count of ``values`` (NaN where empty)."""
    if not values:
        return {"median": math.nan, "spread": math.nan, "min": math.nan, "max": math.nan, "count": 0}
    return {"median": float(statistics.median(values)), "spread": _spread(values), "min": float(min(values)),
            "max": float(max(values)), "count": len(values)}


def check_scale_error(scale_error: float) -> float:
    """``scale_error`` as a float in [0.1, 10] (ConfigError naming it otherwise)."""
    value = float(scale_error)
    if not (math.isfinite(value) and 0.1 <= value <= 10.0):
        raise ConfigError(f"scale error {scale_error!r} must be in [0.1, 10]")
    return value


def measure_road_scale(
    estimator: EstimatorLike,
    settings: RoadScaleSettings,
    *,
    scale_error: float,
    frames: int = DEFAULT_FRAMES,
    domain: str = DEFAULT_DOMAIN,
    seed: int = SCALE_EVAL_SEED,
    height: int | None = None,
    width: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the measurement (module docstring) over frames ``0..frames-1`` of ``domain`` and ``seed``, rendered at
    ``height`` x ``width`` px; returns the report dict (strict-JSON-ready with ``data.fileio.to_json_data``)."""
    scale_error = check_scale_error(scale_error)
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise ConfigError(f"frames = {frames!r} must be a positive integer")
    accumulators = {name: DepthMetricAccumulator(min_depth=MIN_DEPTH_M, max_depth=CAP_M, crop="none")
                    for name in VARIANTS}
    road = RoadScale(settings)
    records: list[FrameRecord] = []
    size = None
    for index in tqdm(range(frames), desc="scale-eval", unit="frame", disable=not progress):
        frame = render_frame(domain, index, seed=seed, height=height, width=width)
        size = (frame.intrinsics.height, frame.intrinsics.width)
        out = estimator.estimate(frame.rgb, camera=frame.intrinsics, output_resolution="input",
                                 outputs=("depth", "semantic"), defer=True)
        # the fit at the network's resolution, as the node's stage; the metrics at the camera's
        scale = road.update(out.depth * scale_error, out.semantic, out.intrinsics)
        unscaled = out.at_output_size(("depth",)).depth
        scaled = unscaled * scale_error
        for name, depth in (("unscaled", unscaled), ("scaled", scaled), ("corrected", scaled * scale)):
            accumulators[name].add(depth.float().cpu().numpy(), frame.depth)
        last = road.last
        plane = last.plane
        records.append(FrameRecord(index=index, true_height=frame.camera_height, reason=last.reason,
                                   road_fraction=last.road_fraction, frame_scale=last.scale, applied_scale=scale, fitted_height=last.fitted_height,
                                   inlier_ratio=plane.inlier_ratio if plane is not None else math.nan,
                                   tilt=last.tilt))
    return _report(estimator, settings, road, records, accumulators, scale_error=scale_error, domain=domain,
                   seed=seed, size=size)


def _report(estimator: EstimatorLike, settings: RoadScaleSettings, road: RoadScale, records: list[FrameRecord],
            accumulators: dict[str, DepthMetricAccumulator], *, scale_error: float, domain: str, seed: int,
            size: tuple[int, int] | None) -> dict[str, Any]:
    """The report dict of :func:`measure_road_scale`."""
    depth = {name: accumulators[name].result() for name in VARIANTS}
    accepted = [r.frame_scale for r in records if r.reason == "accepted"]
    first = next((i for i, r in enumerate(records) if r.reason == "accepted"), len(records))
    applied = [r.applied_scale for r in records[first:]]
    trained = bool(getattr(estimator, "trained", True))
    scale = {
        "ideal": 1.0 / scale_error,
        "per_frame": _stats(accepted),
        "applied": _stats(applied),
        "applied_final": road.scale,
        "recovered_over_ideal": (statistics.median(applied) * scale_error) if applied else math.nan,
        "accepted_fraction": len(accepted) / len(records),
        "accepted": road.accepted,
        "rejected": dict(road.rejected),
    }
    heights = [r.true_height for r in records]
    report: dict[str, Any] = {
        "trained": trained,
        "domain": domain,
        "seed": seed,
        "frames": len(records),
        "image_size": list(size) if size else None,
        "scale_error": scale_error,
        "camera_height": settings.camera_height,
        "camera_pitch": settings.camera_pitch,
        "true_camera_height": _stats(heights),
        "model_camera_height": _stats([r.fitted_height / scale_error for r in records if r.reason == "accepted"]),
        "cap": CAP_M,
        "min_depth": MIN_DEPTH_M,
        "settings": dataclasses.asdict(settings),
        "depth": depth,
        "scale": scale,
        "goals": _goals(depth, scale, scale_error, trained),
        "per_frame": [r.as_dict() for r in records],
    }
    return report


def _goals(depth: dict[str, dict[str, float]], scale: dict[str, Any], scale_error: float,
           trained: bool) -> dict[str, Any]:
    """The issue's goals, each with its value, target and whether it is met."""
    if not trained:
        held = scale["accepted"] == 0 and scale["applied_final"] == 1.0
        return {"untrained_rejected": {"value": scale["accepted"], "target": 0, "met": held}}
    tolerance = GOALS["abs_rel_tolerance"] if scale_error != 1.0 else GOALS["abs_rel_tolerance_no_error"]
    unscaled, corrected = depth["unscaled"]["abs_rel"], depth["corrected"]["abs_rel"]
    relative = corrected / unscaled - 1.0 if unscaled > 0 else math.nan
    spread = scale["applied"]["spread"]
    return {
        "corrected_abs_rel_vs_unscaled": {"value": relative, "target": tolerance, "met": bool(relative <= tolerance)},
        "applied_scale_spread": {"value": spread, "target": GOALS["max_scale_spread"],
                                 "met": bool(spread < GOALS["max_scale_spread"])},
    }


def format_scale_report(report: dict[str, Any]) -> str:
    """Plain-text summary of a :func:`measure_road_scale` report."""
    lines = [f"scale from the road on {report['frames']} generated {report['domain']} frames (seed {report['seed']}, "
             f"{report['image_size'][1]}x{report['image_size'][0]}), scale error E = {report['scale_error']:g}, "
             f"camera_height {report['camera_height']:g} m (true {report['true_camera_height']['median']:.3f} m)"]
    if not report["trained"]:
        lines.append("WARNING: UNTRAINED model: its depth and road labels are noise")
    lines.append(f"{'depth (cap 80 m)':<28}{'abs rel':>9}{'RMSE m':>9}{'d<1.25':>9}")
    titles = {"unscaled": "model", "scaled": "model x E", "corrected": "model x E, road-corrected"}
    for name in VARIANTS:
        m = report["depth"][name]
        lines.append(f"{titles[name]:<28}{m['abs_rel']:>9.4f}{m['rmse']:>9.3f}{m['a1']:>9.4f}")
    s = report["scale"]
    lines.append(f"scale: ideal {s['ideal']:.4f}; applied median {s['applied']['median']:.4f} (x E = "
                 f"{s['recovered_over_ideal']:.4f}), spread {s['applied']['spread']:.4f}; per frame median "
                 f"{s['per_frame']['median']:.4f}, spread {s['per_frame']['spread']:.4f}")
    rejected = ", ".join(f"{k} {v}" for k, v in s["rejected"].items() if v) or "none"
    lines.append(f"frames accepted {s['accepted']}/{report['frames']} ({s['accepted_fraction']:.0%}); "
                 f"rejected: {rejected}")
    for name, goal in report["goals"].items():
        lines.append(f"goal {name}: {goal['value']:.4f} (target {goal['target']:g}) "
                     f"{'met' if goal['met'] else 'NOT met'}")
    return "\n".join(lines) + "\n"

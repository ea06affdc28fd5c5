"""Metric scale from the road: per-camera settings, per-frame acceptance, smoothing and holding.

Each frame, the pixels labelled road (``road_labels``, train id 0 by default) with valid depth are back-projected
with the frame's intrinsics and a plane is fitted (:mod:`.plane`); the camera's distance to it is the *fitted
camera height* in the depth map's own scale, so ``camera_height / fitted height`` is the scale that makes the
depth metric. A frame's scale is accepted only when the fit is trustworthy; the reasons a frame is rejected are
counted (``REJECT_REASONS``):

- ``no_intrinsics``: the outputs carry no intrinsics to back-project with;
- ``few_road_pixels``: fewer than ``road_min_fraction`` of the image's pixels are road with valid depth;
- ``no_plane``: no plane could be fitted (degenerate points);
- ``low_inlier_ratio``: fewer than ``road_min_inlier_ratio`` of the sampled road points lie within
  ``road_inlier_tolerance`` (a fraction of the fitted height) of the plane;
- ``tilted``: the plane's normal is more than ``road_max_tilt`` radians from the expected "up": in the optical
  frame (REP-103: x right, y down, z forward) up is -y, pitched nose-down by ``camera_pitch`` about x, i.e.
  ``(0, -cos p, -sin p)``; without ``camera_pitch`` it is -y, the image's vertical axis.

The scale applied is the median of the last ``scale_window`` accepted frames' scales; frames without an accepted
fit hold it, and before the first accepted frame it is 1. The fit is always made on the depth as it arrives
(never on already-corrected depth), so the correction has no feedback loop.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import RayGrids, cached_rays, ray_grids
from semantic_depth_ros.labels import NUM_CLASSES, ROAD
from semantic_depth_ros.roadscale.plane import (DEFAULT_HYPOTHESES, DEFAULT_MAX_POINTS, PlaneFit, backproject_pixels,
                                                fit_plane, sample_pixels)

SCALE_FROM_ROAD_MODES: tuple[str, ...] = ("off", "on")
ACCEPTED = "accepted"
REJECT_REASONS: tuple[str, ...] = ("no_intrinsics", "few_road_pixels", "no_plane", "low_inlier_ratio", "tilted")
MAX_SCALE_WINDOW = 1000
MAX_CAMERA_HEIGHT_M = 100.0
_MAX_POINTS_LIMIT = 1 << 20


def _number(name: str, value: Any) -> float:
    """``value`` as a finite float, or ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} = {value!r} must be a finite number")
    return float(value)


def _integer(name: str, value: Any, low: int, high: int) -> int:
    """``value`` as an int in [low, high] (whole floats accepted), or ConfigError naming ``name``."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{name} = {value!r} must be an integer in [{low}, {high}]")
    return value


@dataclass(frozen=True)
class RoadScaleSettings:
    """Settings of scale from the road (field names are the node's ROS parameter names; angles in radians).

    ``camera_height``: metres from the optical centre down to the road, > 0 (required); ``camera_pitch``: nose-down
    pitch of the camera, None (or NaN, a ROS parameter's "unset") for "not given"; ``scale_window``: accepted
    frames in the median; ``road_labels``: train ids counted as road (0; add 1 for sidewalk where it is level with
    the road); ``road_min_fraction``: least fraction of the image that must be road with valid depth;
    ``road_min_inlier_ratio``; ``road_inlier_tolerance``: inlier distance as a fraction of the fitted height;
    ``road_max_tilt``: largest angle between the fitted normal and the expected up; ``road_max_points``: road
    points sampled for the fit; ``road_hypotheses``: RANSAC triplets. Construction validates every field
    (ConfigError naming the field and value).
    """

    camera_height: float | None = None
    camera_pitch: float | None = None
    scale_window: int = 15
    road_labels: tuple[int, ...] = (ROAD,)
    road_min_fraction: float = 0.02
    road_min_inlier_ratio: float = 0.6
    road_inlier_tolerance: float = 0.1
    road_max_tilt: float = 0.15
    road_max_points: int = DEFAULT_MAX_POINTS
    road_hypotheses: int = DEFAULT_HYPOTHESES

    def __post_init__(self) -> None:
        height = self.camera_height
        if height is None:
            raise ConfigError("camera_height is not set: it must be > 0 metres when scale_from_road is on")
        if isinstance(height, bool) or not isinstance(height, (int, float)) or not height > 0:
            raise ConfigError(f"camera_height = {height!r} must be > 0 metres when scale_from_road is on")
        if not height <= MAX_CAMERA_HEIGHT_M:
            raise ConfigError(f"camera_height = {height!r} must be at most {MAX_CAMERA_HEIGHT_M:g} metres")
        object.__setattr__(self, "camera_height", float(height))
        pitch = self.camera_pitch
        if pitch is not None and not (isinstance(pitch, float) and math.isnan(pitch)):
            pitch = _number("camera_pitch", pitch)
            if abs(pitch) >= math.pi / 2:
                raise ConfigError(f"camera_pitch = {pitch!r} must be within (-pi/2, pi/2) radians")
        else:
            pitch = None
        object.__setattr__(self, "camera_pitch", pitch)
        object.__setattr__(self, "scale_window", _integer("scale_window", self.scale_window, 1, MAX_SCALE_WINDOW))
        labels = self.road_labels
        # any sequence of ints: a tuple, a list, or the array.array rclpy gives for an integer-list parameter
        labels = tuple(labels) if isinstance(labels, Sequence) and not isinstance(labels, (str, bytes)) else None
        if not labels or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < NUM_CLASSES
                             for v in labels):
            raise ConfigError(f"road_labels = {self.road_labels!r} must be a non-empty list of train ids in "
                              f"0..{NUM_CLASSES - 1}")
        object.__setattr__(self, "road_labels", tuple(sorted(set(labels))))
        for name, low, high in (("road_min_fraction", 0.0, 1.0), ("road_min_inlier_ratio", 0.0, 1.0),
                                ("road_inlier_tolerance", 0.0, 1.0), ("road_max_tilt", 0.0, math.pi / 2)):
            value = _number(name, getattr(self, name))
            if not low < value <= high:
                raise ConfigError(f"{name} = {value!r} must be in ({low:g}, {high:g}]")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "road_max_points",
                           _integer("road_max_points", self.road_max_points, 3, _MAX_POINTS_LIMIT))
        object.__setattr__(self, "road_hypotheses", _integer("road_hypotheses", self.road_hypotheses, 1, 4096))

    def expected_up(self) -> tuple[float, float, float]:
        """The road normal expected in the optical frame: ``(0, -cos p, -sin p)``, p = ``camera_pitch`` or 0."""
        pitch = self.camera_pitch or 0.0
        return (0.0, -math.cos(pitch), -math.sin(pitch))


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(RoadScaleSettings))


def road_scale_settings(scale_from_road: str, values: Mapping[str, Any]) -> RoadScaleSettings | None:
    """Settings for the ``scale_from_road`` mode (``off``: None, nothing else is checked; ``on``: the
    :class:`RoadScaleSettings` of ``values``, a mapping of its field names). ConfigError naming a bad mode,
    an unknown name or a bad value."""
    if scale_from_road not in SCALE_FROM_ROAD_MODES:
        raise ConfigError(f"scale_from_road = {scale_from_road!r} must be one of {', '.join(SCALE_FROM_ROAD_MODES)}")
    if scale_from_road == "off":
        return None
    unknown = sorted(set(values) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(f"unknown road scale setting {unknown[0]!r} (known: {', '.join(SETTING_NAMES)})")
    return RoadScaleSettings(**values)


@dataclass(frozen=True)
class RoadMeasurement:
    """One frame's result: ``reason`` (``ACCEPTED`` or one of ``REJECT_REASONS``), road pixels with valid depth
    and their fraction of the image, the plane (None without one), and from it the fitted camera height (metres
    of the incoming depth), pitch (radians, nose-down), tilt from the expected up (radians) and the frame's scale
    ``camera_height / fitted height`` (NaN where there is no plane)."""

    reason: str
    road_pixels: int
    road_fraction: float
    plane: PlaneFit | None = None
    fitted_height: float = math.nan
    fitted_pitch: float = math.nan
    tilt: float = math.nan
    scale: float = math.nan

    @property
    def accepted(self) -> bool:
        return self.reason == ACCEPTED


def _road_mask(depth: torch.Tensor, semantic: torch.Tensor, labels: Sequence[int]) -> torch.Tensor:
    """Bool HxW: pixels whose label is one of ``labels`` and whose depth is finite and positive."""
    road = semantic == labels[0]
    for label in labels[1:]:
        road |= semantic == label
    return road & torch.isfinite(depth) & (depth > 0)


class RoadScale:
    """Scale from the road for one camera (module docstring); state lives here, tensors stay on their device."""

    def __init__(self, settings: RoadScaleSettings, rays: RayGrids | None = None) -> None:
        if not isinstance(settings, RoadScaleSettings):
            raise ConfigError(f"RoadScale needs RoadScaleSettings, got {type(settings).__name__}")
        self.settings = settings
        self._rays = rays if rays is not None else ray_grids(max_entries=4)
        self._up = settings.expected_up()
        self.reset()

    def reset(self) -> None:
        """Forget every accepted scale and count: the scale is 1 again."""
        self._window: deque[float] = deque(maxlen=self.settings.scale_window)
        self.scale = 1.0
        self.accepted = 0
        self.rejected: dict[str, int] = {reason: 0 for reason in REJECT_REASONS}
        self.last: RoadMeasurement | None = None
        self.last_fit: RoadMeasurement | None = None  # the last frame with a plane, accepted or not

    def measure(self, depth: torch.Tensor, semantic: torch.Tensor, intrinsics: Intrinsics | None) -> RoadMeasurement:
        """Fit and judge one frame without changing any state. ``depth``: HxW float metres (NaN = invalid);
        ``semantic``: HxW integer train ids; ``intrinsics``: of these outputs (HxW), or None."""
        if depth.dim() != 2 or not depth.is_floating_point():
            raise InvalidInputError(f"depth must be a float HxW tensor, got {depth.dtype} {tuple(depth.shape)}")
        if semantic.shape != depth.shape:
            raise InvalidInputError(f"semantic of shape {tuple(semantic.shape)} does not match depth "
                                    f"{tuple(depth.shape)}")
        settings = self.settings
        mask = _road_mask(depth, semantic.to(depth.device), settings.road_labels)
        road_pixels = int(mask.sum())
        fraction = road_pixels / mask.numel()
        if intrinsics is None:
            return RoadMeasurement("no_intrinsics", road_pixels, fraction)
        if (intrinsics.height, intrinsics.width) != tuple(depth.shape):
            raise InvalidInputError(f"intrinsics of {intrinsics.width}x{intrinsics.height} do not match depth "
                                    f"{tuple(depth.shape)} (HxW)")
        if fraction < settings.road_min_fraction or road_pixels < 3:
            return RoadMeasurement("few_road_pixels", road_pixels, fraction)
        indices = sample_pixels(mask, settings.road_max_points)
        points = backproject_pixels(depth, cached_rays(self._rays, intrinsics, 1, depth.device), indices)
        plane = fit_plane(points, inlier_tolerance=settings.road_inlier_tolerance,
                          hypotheses=settings.road_hypotheses)
        if plane is None or plane.offset <= 0:
            return RoadMeasurement("no_plane", road_pixels, fraction)
        nx, ny, nz = plane.normal
        cosine = max(-1.0, min(1.0, nx * self._up[0] + ny * self._up[1] + nz * self._up[2]))
        measured = {"plane": plane, "fitted_height": plane.offset, "fitted_pitch": math.atan2(-nz, -ny),
                    "tilt": math.acos(cosine), "scale": settings.camera_height / plane.offset}
        if plane.inlier_ratio < settings.road_min_inlier_ratio:
            reason = "low_inlier_ratio"
        elif measured["tilt"] > settings.road_max_tilt:
            reason = "tilted"
        else:
            reason = ACCEPTED
        return RoadMeasurement(reason, road_pixels, fraction, **measured)

    def update(self, depth: torch.Tensor, semantic: torch.Tensor, intrinsics: Intrinsics | None) -> float:
        """Measure one frame (see :meth:`measure`), count it, and return the scale to apply to its depth."""
        measurement = self.measure(depth, semantic, intrinsics)
        self.last = measurement
        if measurement.plane is not None:
            self.last_fit = measurement
        if measurement.accepted:
            self.accepted += 1
            self._window.append(measurement.scale)
            self.scale = float(statistics.median(self._window))
        else:
            self.rejected[measurement.reason] += 1
        return self.scale

    def summary(self) -> dict[str, Any]:
        """Counts for reports (``evaluate``, ``infer-bag``): ``scale`` (current), ``frames``, ``accepted``,
        ``rejected`` (per reason) and the settings that matter to read them."""
        settings = self.settings
        return {"scale": self.scale, "frames": self.accepted + sum(self.rejected.values()), "accepted": self.accepted,
                "rejected": dict(self.rejected), "camera_height": settings.camera_height,
                "camera_pitch": settings.camera_pitch, "scale_window": settings.scale_window,
                "road_labels": list(settings.road_labels)}

    def diagnostics(self) -> dict[str, str]:
        """``/diagnostics`` key/values: the scale applied, frames accepted and rejected (in all and per reason),
        the last frame's result and the last fitted camera height (m) and pitch (rad), which also check the
        mounting: a fitted height far from ``camera_height`` means the extrinsics or the model's scale are off."""
        values = {"road_scale": f"{self.scale:.4f}", "road_camera_height": f"{self.settings.camera_height:.3f}",
                  "road_frames_accepted": str(self.accepted),
                  "road_frames_rejected": str(sum(self.rejected.values()))}
        values |= {f"road_rejected_{reason}": str(count) for reason, count in self.rejected.items()}
        values["road_last_frame"] = self.last.reason if self.last is not None else "none"
        fit = self.last_fit
        values["road_fitted_camera_height"] = f"{fit.fitted_height:.3f}" if fit is not None else "none"
        values["road_fitted_camera_pitch"] = f"{fit.fitted_pitch:.4f}" if fit is not None else "none"
        return values

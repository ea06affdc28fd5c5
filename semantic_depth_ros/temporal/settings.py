"""``TemporalSettings``: the temporal filter's knobs, validated, named as the node's ROS parameters.

Each field is one node parameter of the same name (``FIELD_DOCS`` holds the description to declare it with);
construction validates every field and raises ConfigError naming the field and the value.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, fields

from ..errors import ConfigError
from ..labels import BICYCLE, CAR, BUS, MOTORCYCLE, NUM_CLASSES, PERSON, RIDER, TRAIN, TRUCK

TEMPORAL_MODES: tuple[str, ...] = ("off", "auto", "static")
# what users may write: YAML and `-p temporal_filter:=on` turn on/off into booleans; "on" means "auto"
MODE_ALIASES: dict[object, str] = {"on": "auto", True: "auto", False: "off"}
MODE_CHOICES: tuple[str, ...] = ("off", "on", "auto", "static")
MOVING_LABELS: tuple[int, ...] = (PERSON, RIDER, CAR, TRUCK, BUS, TRAIN, MOTORCYCLE, BICYCLE)
MAX_MEMORY_FRAMES = 100.0
MAX_GAP_LIMIT_S = 60.0

FIELD_DOCS: dict[str, str] = {
    "temporal_filter": "temporal fusion of depth: off; on or auto (with a camera pose per frame, from odom_topic, "
                       "the previous fused depth is warped into the current view; without one the camera is "
                       "assumed still); static (a camera on a fixed mount: poses are ignored)",
    "temporal_disagreement": "largest relative difference |new / warped previous - 1| at which a pixel's new depth "
                             "is fused with its history (above it the pixel restarts from the new depth)",
    "temporal_memory": "frames: effective length of each pixel's history (the weight of the past decays by "
                       "1 - 1 / memory per frame; 1 = no fusion)",
    "temporal_max_gap_s": "seconds: a larger gap between two frames' stamps restarts the filter",
    "temporal_scale_smoothing": "0 to <1, frames without a pose only: smoothing of the global depth scale (the "
                                "median log ratio of new to previous depth over static classes), for a still "
                                "camera whose network output jumps in scale; 0 = off (default: on a moving camera "
                                "without poses it biases depth), 0.8 = strong",
    "temporal_moving_memory": "frames: history of the pixels of temporal_moving_labels, fused only where the new and "
                              "warped depths agree within a quarter of temporal_disagreement (a parked car; a car "
                              "that moves disagrees and restarts); 1 = never fused",
    "temporal_moving_labels": "Cityscapes train ids (0..18) of objects that move on their own, never fused with the "
                              "full gate and memory; default: "
                              "person, rider, car, truck, bus, train, motorcycle, bicycle",
}


def temporal_mode(value: object) -> str:
    """``temporal_filter`` as one of ``TEMPORAL_MODES``: on (or true) is auto, false is off; ConfigError naming
    any other value."""
    if isinstance(value, (bool, str)):
        mode = MODE_ALIASES.get(value, value)
        if mode in TEMPORAL_MODES:
            return str(mode)
    raise ConfigError(f"temporal_filter = {value!r} must be one of {', '.join(MODE_CHOICES)}")


def _number(name: str, value: object) -> float:
    """``value`` as a finite float, or ConfigError naming ``name``."""
    if isinstance(value, bool):
        raise ConfigError(f"{name} = {value!r} must be a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} = {value!r} must be a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{name} = {value!r} must be finite")
    return number


def _labels(name: str, value: object) -> tuple[int, ...]:
    """A list of train ids as a sorted tuple without repeats, or ConfigError naming ``name``."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ConfigError(f"{name} = {value!r} must be a list of integers")
    labels = []
    for item in value:  # type: ignore[union-attr]
        if isinstance(item, bool):
            raise ConfigError(f"{name} = {value!r} must be a list of integers")
        try:
            label = operator.index(item)
        except TypeError:
            raise ConfigError(f"{name} = {value!r} must be a list of integers") from None
        if not 0 <= label < NUM_CLASSES:
            raise ConfigError(f"{name}: {label} is not a train id (0..{NUM_CLASSES - 1})")
        labels.append(label)
    return tuple(sorted(set(labels)))


@dataclass(frozen=True)
class TemporalSettings:
    """The temporal filter's settings (see ``FIELD_DOCS``; units: frames, seconds, relative fractions)."""

    temporal_filter: str = "off"
    # defaults tuned with `semantic-depth temporal-eval` on the demo model (two generated drives, seeds 4242 and 7)
    temporal_disagreement: float = 0.2
    temporal_memory: float = 8.0
    temporal_max_gap_s: float = 0.5
    temporal_scale_smoothing: float = 0.0
    temporal_moving_labels: tuple[int, ...] = MOVING_LABELS
    temporal_moving_memory: float = 2.0  # measured with temporal-eval: the moving car within 1 %, flicker lower

    def __post_init__(self) -> None:
        object.__setattr__(self, "temporal_filter", temporal_mode(self.temporal_filter))
        checks = (
            ("temporal_disagreement", lambda x: 0.0 < x <= 1.0, "in (0, 1]"),
            ("temporal_memory", lambda x: 1.0 <= x <= MAX_MEMORY_FRAMES, f"in [1, {MAX_MEMORY_FRAMES:g}] frames"),
            ("temporal_max_gap_s", lambda x: 0.0 < x <= MAX_GAP_LIMIT_S, f"in (0, {MAX_GAP_LIMIT_S:g}] s"),
            ("temporal_scale_smoothing", lambda x: 0.0 <= x < 1.0, "in [0, 1)"),
            ("temporal_moving_memory", lambda x: 1.0 <= x <= MAX_MEMORY_FRAMES,
             f"in [1, {MAX_MEMORY_FRAMES:g}] frames"),
        )
        for name, ok, bound in checks:
            value = _number(name, getattr(self, name))
            if not ok(value):
                raise ConfigError(f"{name} = {getattr(self, name)!r} must be {bound}")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "temporal_moving_labels", _labels("temporal_moving_labels",
                                                                   self.temporal_moving_labels))

    @property
    def enabled(self) -> bool:
        """Whether the filter changes anything (``temporal_filter`` is not ``off``)."""
        return self.temporal_filter != "off"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The fields, i.e. the node parameters, in declaration order."""
        return tuple(f.name for f in fields(cls))

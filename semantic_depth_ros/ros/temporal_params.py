"""The node parameters of the temporal filter and its ego-motion input: specs, and the cameras' mountings.

The filter's own parameters are ``temporal.TemporalSettings``' fields (their descriptions are its ``FIELD_DOCS``);
``odom_topic``, ``odom_wait_s`` and ``camera_extrinsic`` say where the camera poses come from. ``camera_extrinsic``
is the camera optical frame's pose in the odometry child frame (x y z metres, qx qy qz qw), 7 numbers for every
camera, or 7 per camera of ``cameras`` in their order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from ..labels import NUM_CLASSES
from ..temporal import FIELD_DOCS, MODE_CHOICES, TemporalSettings, parse_camera_extrinsic
from ..temporal.settings import MAX_GAP_LIMIT_S, MAX_MEMORY_FRAMES
from .param_spec import ParamSpec

EXTRINSIC_SIZE = 7  # x y z qx qy qz qw
MAX_ODOM_WAIT_S = 1.0
DEFAULT_ODOM_WAIT_S = 0.1

TEMPORAL_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("temporal_filter", "off", FIELD_DOCS["temporal_filter"] + " (computes the semantic head and the "
              "confidence)", dynamic=True, choices=MODE_CHOICES, accepts_bool=True),
    ParamSpec("temporal_disagreement", TemporalSettings.temporal_disagreement, FIELD_DOCS["temporal_disagreement"],
              dynamic=True, value_range=(0.0, 1.0)),
    ParamSpec("temporal_memory", TemporalSettings.temporal_memory, FIELD_DOCS["temporal_memory"], dynamic=True,
              value_range=(1.0, MAX_MEMORY_FRAMES)),
    ParamSpec("temporal_max_gap_s", TemporalSettings.temporal_max_gap_s, FIELD_DOCS["temporal_max_gap_s"],
              dynamic=True, value_range=(0.0, MAX_GAP_LIMIT_S)),
    ParamSpec("temporal_scale_smoothing", TemporalSettings.temporal_scale_smoothing,
              FIELD_DOCS["temporal_scale_smoothing"], dynamic=True, value_range=(0.0, 1.0)),
    ParamSpec("temporal_moving_labels", TemporalSettings.temporal_moving_labels, FIELD_DOCS["temporal_moving_labels"],
              dynamic=True, value_range=(0, NUM_CLASSES - 1), item_type="int"),
    ParamSpec("temporal_moving_memory", TemporalSettings.temporal_moving_memory, FIELD_DOCS["temporal_moving_memory"],
              dynamic=True, value_range=(1.0, MAX_MEMORY_FRAMES)),
    ParamSpec("odom_topic", "", "nav_msgs/Odometry topic with the pose of the odometry child frame (e.g. base_link) "
              "in its world frame, interpolated to each image stamp for temporal_filter on/auto (empty: no "
              "odometry, the filter assumes a still camera)", dynamic=False),
    ParamSpec("odom_wait_s", DEFAULT_ODOM_WAIT_S, "seconds a batch of frames waits for the odometry sample at or "
              "after its newest stamp (odometry often arrives after the image; no wait once odometry has stopped "
              "for over 0.5 s); a frame still without a pose restarts the filter", dynamic=True,
              value_range=(0.0, MAX_ODOM_WAIT_S)),
    ParamSpec("camera_extrinsic", (), "camera optical frame (x right, y down, z forward) in the odometry child "
              "frame: x y z (metres) qx qy qz qw; 7 numbers for every camera, or 7 per camera in `cameras` order; "
              "required with odom_topic", dynamic=False, item_type="float"),
)
TEMPORAL_PARAMETER_NAMES: tuple[str, ...] = tuple(spec.name for spec in TEMPORAL_PARAMETERS)


def camera_mountings(extrinsic: Sequence[float], cameras: Sequence[str], odom_topic: str) -> dict[str, np.ndarray]:
    """``child_from_camera`` (4x4 float64) of each camera name ("" for the unnamed camera) from
    ``camera_extrinsic``; empty without ``odom_topic``. ConfigError naming the parameter: the extrinsic missing
    with ``odom_topic``, a length other than 7 or 7 per camera, non-finite numbers or a non-unit quaternion."""
    names = tuple(cameras) or ("",)
    if not odom_topic:
        return {}
    if not extrinsic:
        raise ConfigError(f"parameter camera_extrinsic is not set: with odom_topic = {odom_topic!r} give the camera "
                          "optical frame's pose in the odometry child frame, x y z qx qy qz qw")
    values = list(extrinsic)
    if len(values) == EXTRINSIC_SIZE:
        values = values * len(names)
    if len(values) != EXTRINSIC_SIZE * len(names):
        per_camera = "" if len(names) == 1 else (f" for every camera or {EXTRINSIC_SIZE * len(names)} "
                                                 f"({EXTRINSIC_SIZE} per camera of {list(names)})")
        raise ConfigError(f"parameter camera_extrinsic has {len(extrinsic)} numbers: give {EXTRINSIC_SIZE} "
                          f"(x y z qx qy qz qw){per_camera}")
    mountings = {}
    for index, name in enumerate(names):
        chunk = values[index * EXTRINSIC_SIZE:(index + 1) * EXTRINSIC_SIZE]
        try:
            mountings[name] = parse_camera_extrinsic(chunk)
        except ConfigError as exc:
            camera = f" (camera {name})" if name else ""
            raise ConfigError(f"parameter {exc}{camera}") from None
    return mountings

"""The scale-from-the-road options that `evaluate`, `scale-eval` and `infer-bag` share.

Thresholds left out keep :class:`~semantic_depth_ros.roadscale.RoadScaleSettings`' defaults, the node's.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError
from ..roadscale import RoadScaleSettings

_THRESHOLDS: tuple[tuple[str, type, str], ...] = (
    ("road_min_fraction", float, "least fraction of the image that must be road with valid depth"),
    ("road_min_inlier_ratio", float, "least fraction of road points on the fitted plane"),
    ("road_inlier_tolerance", float, "inlier distance to the plane, as a fraction of the fitted height"),
    ("road_max_tilt", float, "largest angle between the plane's normal and the expected up, radians"),
    ("road_max_points", int, "road points sampled for the fit"),
)


def add_road_scale_arguments(parser: argparse.ArgumentParser, *, switch: bool, window_help: str,
                             height_help: str = "metres from the camera's optical centre down to the road") -> None:
    """Add --camera-height, --camera-pitch, --scale-window, --road-labels and the thresholds (and, with
    ``switch``, --scale-from-road) to an argument group of ``parser``."""
    group = parser.add_argument_group("scale from the road")
    if switch:
        group.add_argument("--scale-from-road", action="store_true",
                           help="correct the depth scale from the road plane and --camera-height")
    group.add_argument("--camera-height", type=float, default=None, metavar="H", help=height_help)
    group.add_argument("--camera-pitch", type=float, default=None, metavar="P",
                       help="nose-down pitch of the camera, radians (default: not given, the road is expected "
                            "near the image's vertical axis)")
    group.add_argument("--scale-window", type=int, default=None, metavar="N", help=window_help)
    group.add_argument("--road-labels", type=int, nargs="+", default=None, metavar="ID",
                       help="train ids counted as road (default: 0; add 1 for sidewalk)")
    for name, kind, text in _THRESHOLDS:
        default = getattr(RoadScaleSettings, name)
        group.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=f"{text} (default {default})")


def road_scale_settings_from_args(args: argparse.Namespace, *, enabled: bool | None = None,
                                  defaults: dict[str, Any] | None = None) -> RoadScaleSettings | None:
    """The settings of the parsed options, None when the correction is off (``enabled``, else
    ``args.scale_from_road``). ``defaults``: field values used where an option was not given. Options of the
    correction given without it are refused, and a missing or non-positive --camera-height is a ConfigError."""
    given = {"camera_height": args.camera_height, "camera_pitch": args.camera_pitch,
             "scale_window": args.scale_window, "road_labels": args.road_labels}
    given |= {name: getattr(args, name) for name, _, _ in _THRESHOLDS}
    given = {name: value for name, value in given.items() if value is not None}
    on = args.scale_from_road if enabled is None else enabled
    if not on:
        if given:
            option = "--" + next(iter(given)).replace("_", "-")
            raise ConfigError(f"{option} is an option of --scale-from-road, which is not given")
        return None
    values = dict(defaults or {}) | given
    if "road_labels" in values:
        values["road_labels"] = tuple(values["road_labels"])
    if values.get("camera_height") is None:
        raise ConfigError("--camera-height is needed with --scale-from-road: camera_height must be > 0 metres "
                          "when scale_from_road is on")
    return RoadScaleSettings(**values)

"""The temporal filter's options that `temporal-eval` and `infer-bag` share (the node parameters of the same names).

Options left out keep :class:`~semantic_depth_ros.temporal.TemporalSettings`' defaults, the node's.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigError
from ..temporal import FIELD_DOCS, TemporalSettings

TUNABLE: tuple[str, ...] = ("temporal_disagreement", "temporal_memory", "temporal_max_gap_s",
                            "temporal_scale_smoothing", "temporal_moving_memory")


def add_temporal_arguments(parser: argparse.ArgumentParser, *, switch: bool) -> None:
    """Add the filter's thresholds (and, with ``switch``, ``--temporal [MODE]``, ``--odom-topic`` and
    ``--camera-extrinsic``) to an argument group of ``parser``."""
    group = parser.add_argument_group("temporal filter (the node parameters of the same names)")
    if switch:
        group.add_argument("--temporal", nargs="?", const="auto", default=None, choices=("auto", "static"),
                           help="fuse depth over time as the node's temporal_filter: auto (the default when given: "
                                "camera poses from --odom-topic, else a still camera) or static")
        group.add_argument("--odom-topic", default=None, help="nav_msgs/Odometry topic of the bag: the camera "
                           "poses of --temporal auto")
        group.add_argument("--camera-extrinsic", type=float, nargs=7, default=None,
                           metavar=("X", "Y", "Z", "QX", "QY", "QZ", "QW"),
                           help="camera optical frame in the odometry child frame (metres, unit quaternion), as "
                                "the node's camera_extrinsic (default: from /tf_static)")
    defaults = TemporalSettings()
    for name in TUNABLE:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float, default=None,
                           help=f"{FIELD_DOCS[name]} (default: {getattr(defaults, name):g})")
    group.add_argument("--temporal-moving-labels", dest="temporal_moving_labels", type=int, nargs="*",
                       default=None, metavar="ID",
                       help=f"{FIELD_DOCS['temporal_moving_labels']}; give none to fuse every class")


def temporal_settings_from_args(args: argparse.Namespace, mode: str | None) -> TemporalSettings | None:
    """The settings of the parsed options with ``temporal_filter = mode``; None when ``mode`` is None (the filter
    is not asked for: its options are then refused in one line). ConfigError naming a bad value."""
    given = {name: getattr(args, name) for name in (*TUNABLE, "temporal_moving_labels")}
    given = {name: value for name, value in given.items() if value is not None}
    if mode is None:
        extra = [name for name in ("odom_topic", "camera_extrinsic") if getattr(args, name, None) is not None]
        if given or extra:
            option = "--" + next(iter([*given, *extra])).replace("_", "-")
            raise ConfigError(f"{option} is an option of --temporal, which is not given")
        return None
    if "temporal_moving_labels" in given:
        given["temporal_moving_labels"] = tuple(given["temporal_moving_labels"])
    return TemporalSettings(temporal_filter=mode, **given)

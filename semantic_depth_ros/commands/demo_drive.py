"""The demo's drive: a short held-out generated drive through the node with ``scale_from_road`` and, in a second
pass, ``temporal_filter`` on; flicker with and without the filter (``evaluation.temporal_eval``) and the scale the
node recovered from the road (its ``/diagnostics``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..data.synthetic.domains import base_from_camera, domain_spec
from ..data.synthetic.sequence import render_sequence
from ..evaluation.scale_eval import nominal_camera_height
from ..evaluation.temporal_eval import drive_flicker

DRIVE_SEED = 4243  # a drive no training, validation or temporal-eval run saw (temporal-eval uses 4242)
DRIVE_DOMAIN = "kitti_like"


def run_drive_stage(checkpoint: Path, frames: int, size: tuple[int, int], device: str) -> dict[str, Any]:
    """Stream ``frames`` frames (height, width ``size``) of the drive through the node, filter off then on.

    Returns flicker (``off``, ``on``, ``floor``: the true depth's), the filter's flicker ratio, the road scale
    the node applied after both passes and its accepted/rejected frame counts, and the told and fitted camera
    height (metres)."""
    from ..ros.demo_client import drive_frames, stream_drive_through_node  # rclpy is needed only here

    seq = render_sequence(frames, domain=DRIVE_DOMAIN, seed=DRIVE_SEED, height=size[0], width=size[1])
    mount = base_from_camera(domain_spec(DRIVE_DOMAIN))
    height = nominal_camera_height(DRIVE_DOMAIN)
    drive = drive_frames([f.world_from_camera for f in seq.frames], [f.rgb for f in seq.frames],
                         [f.stamp_ns for f in seq.frames], mount)
    passes = stream_drive_through_node(checkpoint, drive, seq.intrinsics, mount, height, device=device)
    flicker = drive_flicker(seq, {"off": passes.depth_off, "on": passes.depth_on})
    values = passes.diagnostics

    def number(key: str) -> float:
        try:
            return float(values[key])
        except (KeyError, ValueError):
            return float("nan")

    return {
        "frames": frames, "seed": DRIVE_SEED, "size": list(size),
        "flicker": flicker,
        "flicker_ratio": flicker["on"] / flicker["off"] if flicker["off"] else float("nan"),
        "road_scale": number("road_scale"),
        "road_frames_accepted": int(number("road_frames_accepted")) if "road_frames_accepted" in values else 0,
        "road_frames_rejected": int(number("road_frames_rejected")) if "road_frames_rejected" in values else 0,
        "camera_height": height,
        "fitted_camera_height": number("road_fitted_camera_height"),
        "temporal_filter": values.get("temporal_filter", "unknown"),  # the node's mode after the switch
        "temporal_fused_fraction": number("temporal_fused_fraction"),
    }


def drive_lines(drive: dict[str, Any]) -> list[str]:
    """The summary's two lines: flicker without and with the filter, and the recovered scale."""
    flicker = drive["flicker"]
    counted = drive["road_frames_accepted"] + drive["road_frames_rejected"]
    return [f"drive of {drive['frames']} held-out frames through the node: flicker (mean |d log depth| on static "
            f"pixels, frame to frame) {flicker['off']:.4f} without temporal_filter, {flicker['on']:.4f} with it "
            f"(x{drive['flicker_ratio']:.2f}; true depth {flicker['floor']:.4f})",
            f"scale_from_road (told camera height {drive['camera_height']:.2f} m): scale x{drive['road_scale']:.3f} "
            f"applied, {drive['road_frames_accepted']}/{counted} frames accepted, last fitted camera height "
            + (f"{drive['fitted_camera_height']:.2f} m" if math.isfinite(drive["fitted_camera_height"]) else "none")]

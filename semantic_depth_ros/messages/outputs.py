"""The node's outputs without ROS: their topics and encodings, and the message fields of one frame.

One frame's host arrays (``pipeline.CameraOutputs`` computes them from the estimator's outputs) become message
fields in ``frame_fields``; the live node and offline bag replay both publish exactly what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import numpy as np

from ..geometry.intrinsics import Intrinsics
from .fields import OutputFields, camera_info_fields, cloud_fields, image_fields

# output key -> topic name, relative to the camera's namespace (depth first: it is published first)
OUTPUT_TOPICS: dict[str, str] = {
    "depth": "depth",
    "depth_info": "depth/camera_info",
    "points": "points",
    "semantic": "semantic",
    "semantic_color": "semantic/color",
    "confidence": "depth/confidence",
    "depth_color": "depth/color",
}
# encodings of the Image outputs
OUTPUT_ENCODINGS: dict[str, str] = {
    "depth": "32FC1", "semantic": "mono8", "semantic_color": "rgb8", "confidence": "32FC1", "depth_color": "rgb8",
}
CAMERA_INFO_OUTPUTS = ("depth_info",)
CLOUD_OUTPUTS = ("points",)
# outputs that need the intrinsics of the depth image
NEEDS_INTRINSICS = ("points", "depth_info")


def frame_fields(wanted: Sequence[str], host: Mapping[str, np.ndarray],
                 intrinsics: Intrinsics | None) -> dict[str, OutputFields]:
    """Message fields of one frame, in ``OUTPUT_TOPICS`` order: host arrays (``HostStaging.fetch``) -> fields.

    ``intrinsics``: of the depth image (``EstimatorOutputs.intrinsics``); ``depth_info`` is built from them when
    wanted, and is absent without them.
    """
    result: dict[str, OutputFields] = {}
    for key in OUTPUT_TOPICS:
        if key not in wanted:
            continue
        if key in CAMERA_INFO_OUTPUTS:
            if intrinsics is not None:
                result[key] = camera_info_fields(intrinsics)
        elif key in host:
            result[key] = cloud_fields(host[key]) if key in CLOUD_OUTPUTS else image_fields(host[key],
                                                                                             OUTPUT_ENCODINGS[key])
    return result

"""The node's outputs without ROS: their topics and encodings, the tensors behind them, and their message fields.

One frame goes ``EstimatorOutputs -> output_tensors (on the device) -> HostStaging.fetch (one copy each) ->
frame_fields``; the live node and offline bag replay both publish exactly what ``frame_fields`` returns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Union

import numpy as np
import torch

from ..geometry.intrinsics import Intrinsics
from ..geometry.pointcloud import RayGridCache, backproject_organised, layout_needs
from ..inference.colorize import colorize_depth, colorize_semantic
from ..inference.estimator import OUTPUTS as ESTIMATOR_OUTPUTS
from ..inference.estimator import EstimatorOutputs
from .fields import CameraInfoFields, CloudFields, ImageFields, camera_info_fields, cloud_fields, image_fields

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
# the estimator outputs each published output needs with the default point layout (``needs_for`` in general)
NEEDS: dict[str, tuple[str, ...]] = {
    "depth": ("depth",), "depth_info": ("depth",), "points": ("depth", "image"), "depth_color": ("depth",),
    "semantic": ("semantic",), "semantic_color": ("semantic",), "confidence": ("confidence",),
}
# outputs that need the intrinsics of the depth image
NEEDS_INTRINSICS = ("points", "depth_info")
OutputFields = Union[ImageFields, CloudFields, CameraInfoFields]


def needs_for(key: str, point_fields: str = "xyzrgb", drop_labels: Sequence[int] = ()) -> tuple[str, ...]:
    """The estimator outputs the output ``key`` needs; ``points`` also needs ``semantic`` for a layout with labels
    or a non-empty ``drop_labels``, and ``confidence`` for ``xyzrgblc``."""
    if key == "points":
        return NEEDS[key] + layout_needs(point_fields, drop_labels)
    return NEEDS[key]


def estimator_outputs_for(wanted: Sequence[str], point_fields: str = "xyzrgb",
                          drop_labels: Sequence[int] = ()) -> tuple[str, ...]:
    """The estimator outputs (depth, semantic, confidence, image) that the output keys ``wanted`` need, for
    ``points`` in the layout ``point_fields`` dropping ``drop_labels``."""
    needed = {name for key in wanted for name in needs_for(key, point_fields, drop_labels)}
    return tuple(name for name in ESTIMATOR_OUTPUTS if name in needed)


def output_tensors(wanted: Sequence[str], outputs: EstimatorOutputs, *, depth_range: tuple[float, float],
                   point_stride: int, rays: RayGridCache, point_fields: str = "xyzrgb",
                   drop_labels: Sequence[int] = ()) -> dict[str, torch.Tensor]:
    """The wanted Image and cloud outputs as tensors on the estimator's device, each one packed buffer.

    ``depth_range``: (min, max) metres of the depth colour map (the estimator's ``depth_range()``);
    ``point_stride``: keep every N-th row and column in ``points``; ``rays``: the ray-grid cache of the caller;
    ``point_fields``/``drop_labels``: the cloud layout and the train ids whose points become NaN (``outputs``
    must then hold what ``estimator_outputs_for(wanted, point_fields, drop_labels)`` asked for).
    ``points`` is left out without intrinsics; ``depth_info`` has no tensor (see ``frame_fields``).
    """
    depth = outputs.depth
    tensors: dict[str, torch.Tensor] = {}
    with torch.inference_mode():
        if "depth" in wanted:
            tensors["depth"] = depth
        if "points" in wanted and outputs.intrinsics is not None:
            grid = rays.get(outputs.intrinsics, point_stride, depth.device)
            tensors["points"] = backproject_organised(
                depth, grid, outputs.image, stride=point_stride, point_fields=point_fields,
                labels=outputs.semantic, confidence=outputs.confidence, drop_labels=drop_labels)
        if "semantic" in wanted:
            tensors["semantic"] = outputs.semantic
        if "semantic_color" in wanted:
            tensors["semantic_color"] = colorize_semantic(outputs.semantic)
        if "confidence" in wanted:
            tensors["confidence"] = outputs.confidence
        if "depth_color" in wanted:
            tensors["depth_color"] = colorize_depth(depth, *depth_range)
    return tensors


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


class HostStaging:
    """Brings a frame's output tensors to the host: one device-to-host copy per output, one synchronisation.

    On CUDA each tensor is copied (non-blocking) into a pinned buffer kept per output name and shape, and the
    stream is synchronised once for all of them; on the CPU the tensors are returned as numpy views (no copy).
    The arrays stay valid until the next ``fetch`` (messages copy them into their own ``data``).
    """

    def __init__(self) -> None:
        self._pinned: dict[str, torch.Tensor] = {}

    def fetch(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
        """``{name: tensor}`` on any device -> ``{name: contiguous numpy array}`` on the host."""
        host: dict[str, torch.Tensor] = {}
        synchronise: list[torch.device] = []
        for name, tensor in tensors.items():
            tensor = tensor.detach()
            if tensor.device.type != "cuda":
                host[name] = tensor.contiguous()
                continue
            buffer = self._pinned.get(name)
            if buffer is None or buffer.shape != tensor.shape or buffer.dtype != tensor.dtype:
                buffer = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
                self._pinned[name] = buffer
            buffer.copy_(tensor, non_blocking=True)
            host[name] = buffer
            if tensor.device not in synchronise:
                synchronise.append(tensor.device)
        for device in synchronise:
            torch.cuda.current_stream(device).synchronize()
        return {name: tensor.numpy() for name, tensor in host.items()}

"""The .onnx file format of this package: graph input/output names and metadata keys (no onnx import needed).

Shared by the exporter (``model/onnx_export``) and the reader (``inference/onnx_runner``), which must agree.
"""

from __future__ import annotations

from collections.abc import Collection

from .network import HEADS

FORMAT_NAME = "semantic_depth_ros.onnx"
FORMAT_VERSION = 1
INPUT_NAME = "image"
# Graph outputs of each network head, named like the keys of SemanticDepthNet.forward's dict.
HEAD_OUTPUTS: dict[str, tuple[str, ...]] = {"drn": ("depth",), "dc": ("dc_depth", "depth_probs"),
                                            "sc": ("semantic_logits",)}
METADATA_KEYS = {name: "semantic_depth_ros." + name for name in (
    "format", "format_version", "model_config", "trained", "class_names", "heads", "input_height", "input_width",
    "weights_precision", "source")}


def output_names(heads: Collection[str]) -> tuple[str, ...]:
    """Graph output names of network ``heads``, in ``HEADS`` order."""
    return tuple(name for head in HEADS if head in heads for name in HEAD_OUTPUTS[head])

"""Export a SemanticDepthNet to ONNX: Bx3xHxW input in [0, 1] -> the network-resolution outputs the estimator needs.

The graph is cut where the estimator's post-processing starts (``SemanticDepthNet.forward(..., upsample=False)``):
the crop of the padding, the up-sampling, the semantic argmax, the confidence, the canonical-camera scaling and
the NaN rules stay in the estimator, ONE copy shared by the PyTorch and the ONNX Runtime backends.

Graph outputs (named like the keys of ``forward``'s dict), per network head:
``drn`` -> ``depth`` Bx1xhxw metres; ``dc`` -> ``dc_depth`` Bx1xhxw metres and ``depth_probs`` BxKxhxw;
``sc`` -> ``semantic_logits`` BxCxhxw (logits, not ids, so the argmax stays in the estimator). ``depth_logits``
is not exported: nothing after the network reads it. h, w = input size / output stride; B is a dynamic axis.
Input and outputs are float32 also with ``fp16`` (fp16 weights and arithmetic, casts at both ends of the graph).

The file's ``metadata_props`` carry everything a checkpoint carries to rebuild the estimator (keys in
``METADATA_KEYS``): the full ModelConfig (JSON, input size = the exported size), trained flag, class names,
network heads, input size, weight precision, format name and version.
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Collection

import onnx
import torch
from torch import nn

from ..errors import ConfigError
from ..labels import CITYSCAPES_TRAIN_ID_NAMES
from .checkpoint import Checkpoint
from .fuse import fold_batchnorm
from .network import HEADS
from .onnx_format import FORMAT_NAME, FORMAT_VERSION, INPUT_NAME, METADATA_KEYS, output_names

DEFAULT_OPSET = 17
MIN_OPSET = 13  # Einsum and Softmax over one axis as the network uses them
USER_HEADS = ("depth", "semantic", "confidence")


def parse_user_heads(text: str | Collection[str]) -> tuple[str, ...]:
    """``"depth,semantic"`` (or a collection) -> validated user heads in ``USER_HEADS`` order; ConfigError if bad."""
    items = [h.strip() for h in text.split(",")] if isinstance(text, str) else [str(h).strip() for h in text]
    items = [h for h in items if h]
    unknown = sorted(set(items) - set(USER_HEADS))
    if unknown or not items:
        raise ConfigError(f"heads '{text if isinstance(text, str) else ','.join(items)}' must be a comma-separated "
                          f"non-empty subset of {', '.join(USER_HEADS)}")
    return tuple(h for h in USER_HEADS if h in items)


def class_names(num_classes: int) -> list[str]:
    """Names of train ids 0..num_classes-1 (Cityscapes names; ``class N`` beyond the table)."""
    table = CITYSCAPES_TRAIN_ID_NAMES
    return [table[i] if i < len(table) else f"class {i}" for i in range(num_classes)]


def network_heads(user_heads: Collection[str], has_drn: bool) -> tuple[str, ...]:
    """User heads -> network heads in ``HEADS`` order: depth -> drn (dc without a DRN), confidence -> dc,
    semantic -> sc."""
    wanted = set()
    if "depth" in user_heads:
        wanted.add("drn" if has_drn else "dc")
    if "confidence" in user_heads:
        wanted.add("dc")
    if "semantic" in user_heads:
        wanted.add("sc")
    return tuple(h for h in HEADS if h in wanted)


class _ExportWrapper(nn.Module):
    """forward(x) -> tuple of the outputs of ``heads`` at output stride, float32 in and out."""

    def __init__(self, model: nn.Module, heads: tuple[str, ...], dtype: torch.dtype) -> None:
        super().__init__()
        self.model = model
        self.heads = heads
        self.names = output_names(heads)
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x.to(self.dtype), heads=self.heads, upsample=False)
        return tuple(out[name].float() for name in self.names)


def export_onnx(checkpoint: Checkpoint, *, heads: Collection[str] | None = None, height: int | None = None,
                width: int | None = None, opset: int = DEFAULT_OPSET, fp16: bool = False) -> onnx.ModelProto:
    """The checked ONNX model of ``checkpoint`` (batch norm folded), with our metadata; nothing is written.

    ``heads``: user heads (``USER_HEADS``; None = all the model has). ``height`` x ``width``: network input size in
    pixels (None = the checkpoint's). ``fp16``: fp16 weights and arithmetic, float32 input and outputs.
    Raises ConfigError for bad heads, size or opset.
    """
    config = checkpoint.config
    user_heads = parse_user_heads(USER_HEADS if heads is None else heads)
    has_drn = config.use_drn
    net_heads = network_heads(user_heads, has_drn)
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= newest:
        raise ConfigError(f"opset {opset!r} must be an integer between {MIN_OPSET} and {newest} (this onnx "
                          "package's newest)")
    config = config.replace(input_height=config.input_height if height is None else height,
                            input_width=config.input_width if width is None else width)
    dtype = torch.float16 if fp16 else torch.float32
    model = fold_batchnorm(checkpoint.build_model()).to(dtype)
    wrapper = _ExportWrapper(model, net_heads, dtype).eval()
    names = wrapper.names
    example = torch.rand(1, 3, config.input_height, config.input_width)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(wrapper, (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(names),
                          dynamic_axes={INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in names}})
    proto = onnx.load_from_string(buffer.getvalue())
    proto.producer_name = "semantic_depth_ros"
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(FORMAT_VERSION),
        "model_config": json.dumps(config.to_dict(), sort_keys=True),
        "trained": json.dumps(bool(checkpoint.trained)),
        "class_names": json.dumps(class_names(config.num_classes)),
        "heads": json.dumps(list(net_heads)),
        "input_height": str(config.input_height),
        "input_width": str(config.input_width),
        "weights_precision": "fp16" if fp16 else "fp32",
        "source": str(checkpoint.path),
    }
    onnx.helper.set_model_props(proto, {METADATA_KEYS[k]: v for k, v in metadata.items()})
    onnx.checker.check_model(proto)
    return proto

"""Network runners: the one seam between the estimator and whatever executes the network.

A runner takes the normalised network input (Bx3xHxW, values in [0, 1], on ``runner.device``, ``runner.input_dtype``,
channels-last) and returns the network-resolution outputs of ``SemanticDepthNet.forward(upsample=False)``:
``depth`` (Bx1xhxw metres, DRN), ``dc_depth`` (Bx1xhxw metres, DC expectation), ``depth_probs`` (BxKxhxw),
``semantic_logits`` (BxCxhxw), for the heads asked for (``dc``, ``sc``, ``drn``; ``drn`` implies ``dc``).
Everything before (letterbox) and after (crop, up-sampling, canonical scale, NaN rules) is the estimator's, shared by
every runner. Returned tensors may be static buffers overwritten by the next call: consume them first.

PyTorch backends here: ``eager``, ``compile`` (``torch.compile``) and ``cudagraphs`` (one CUDA graph per head set
and input shape). Pick one with :func:`make_runner`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch

from ..errors import ConfigError
from ..model.checkpoint import Checkpoint
from ..model.fuse import fold_batchnorm
from ..model.network import HEADS

BACKENDS = ("auto", "eager", "compile", "cudagraphs")

Outputs = dict[str, torch.Tensor]
# A capture turns a forward closure into (replay, static outputs): after replay() the outputs hold the result of
# the closure on the current contents of the tensors it reads. The CUDA one records a CUDA graph.
Capture = Callable[[Callable[[], Outputs]], tuple[Callable[[], None], Outputs]]


@runtime_checkable
class NetworkRunner(Protocol):
    """Executes the network at its input size; see the module docstring for the contract."""

    device: torch.device  # where inputs must be and outputs are
    input_dtype: torch.dtype  # dtype of the input tensor it expects
    description: str  # e.g. "torch cudagraphs fp16 on cuda:0", for logs and diagnostics
    heads: frozenset[str]  # the heads it can run (a subset of model.network.HEADS)

    def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> Outputs:
        """Bx3xHxW input in [0, 1] -> the network-resolution outputs of ``heads`` (in ``HEADS`` order)."""
        ...


def resolve_backend(backend: str, device: torch.device) -> str:
    """``auto`` -> ``cudagraphs`` on CUDA, ``eager`` elsewhere; ConfigError for an unknown or impossible backend."""
    if backend == "onnxruntime":
        raise ConfigError("backend onnxruntime runs .onnx models: export the checkpoint with `semantic-depth export` "
                          "and give the .onnx file")
    if backend not in BACKENDS:
        raise ConfigError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")
    if backend == "cudagraphs" and device.type != "cuda":
        raise ConfigError(f"backend cudagraphs needs a CUDA device, got {device.type}")
    if backend == "auto":
        return "cudagraphs" if device.type == "cuda" else "eager"
    return backend


def make_runner(checkpoint: Checkpoint, *, backend: str, device: torch.device, precision: str,
                dtype: torch.dtype) -> NetworkRunner:
    """The runner of a PyTorch checkpoint for a resolved ``backend`` (eager, compile, cudagraphs), ``device`` and
    ``precision`` (its torch ``dtype``): batch norm folded, weights in ``dtype``, channels-last."""
    model = fold_batchnorm(checkpoint.build_model())
    model = model.to(device=device, dtype=dtype, memory_format=torch.channels_last)
    description = f"torch {backend} {precision} on {device}"
    if backend == "eager":
        return TorchRunner(model, device, dtype, description)
    if backend == "compile":
        options = {"freezing": True} if device.type == "cpu" else None
        compiled = torch.compile(model, dynamic=False, options=options)
        return TorchRunner(model, device, dtype, description, forward=compiled)
    if backend == "cudagraphs":
        return GraphedRunner(model, device, dtype, description, capture=CudaGraphCapture(device))
    raise ConfigError(f"backend '{backend}' is not one of {', '.join(BACKENDS)}")


def model_heads(model: torch.nn.Module) -> frozenset[str]:
    """Heads a SemanticDepthNet has (``drn`` only when it was built with the DRN)."""
    return frozenset(h for h in HEADS if getattr(model, f"{h}_head", None) is not None)


class _ModelRunner:
    """What every PyTorch runner holds: the network (``model``, which may be swapped: tests do) and its metadata."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, description: str) -> None:
        self.model = model
        self.device = device
        self.input_dtype = dtype
        self.description = description
        self.heads = model_heads(model)


class TorchRunner(_ModelRunner):
    """Eager (or ``torch.compile``d: ``forward``) PyTorch network."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, description: str, *,
                 forward: Callable[..., Outputs] | None = None) -> None:
        super().__init__(model, device, dtype, description)
        self._forward = forward

    def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> Outputs:
        forward = self._forward if self._forward is not None else self.model
        return forward(x, heads=heads, upsample=False)


class GraphedRunner(_ModelRunner):
    """The network replayed from a captured graph, one per (head set, input shape).

    Each input shape (batch size included) has one static input buffer, shared by the graphs of every head set; a
    call copies ``x`` into it and replays. The outputs are the graph's static tensors, overwritten by the next call
    of the same key. ``capture`` records a graph (:class:`CudaGraphCapture` on CUDA; tests inject a stand-in).
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype, description: str, *,
                 capture: Capture) -> None:
        super().__init__(model, device, dtype, description)
        self._capture = capture
        self.inputs: dict[tuple[int, ...], torch.Tensor] = {}
        self.graphs: dict[tuple[tuple[str, ...], tuple[int, ...]], tuple[Callable[[], None], Outputs]] = {}

    def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> Outputs:
        shape = tuple(x.shape)
        static = self.inputs.get(shape)
        if static is None:
            static = torch.zeros(shape, dtype=self.input_dtype, device=self.device)
            static = static.contiguous(memory_format=torch.channels_last)
            self.inputs[shape] = static
        static.copy_(x)
        key = (tuple(heads), shape)
        if key not in self.graphs:
            model = self.model
            self.graphs[key] = self._capture(lambda: model(static, heads=key[0], upsample=False))
        replay, outputs = self.graphs[key]
        replay()
        return outputs


class CudaGraphCapture:
    """Records forwards as CUDA graphs on one device, all sharing one memory pool."""

    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._pool = None

    def __call__(self, forward: Callable[[], Outputs]) -> tuple[Callable[[], None], Outputs]:
        side = torch.cuda.Stream(device=self._device)
        side.wait_stream(torch.cuda.current_stream(self._device))
        with torch.cuda.stream(side):
            for _ in range(3):  # settle cuDNN algorithm choice and the allocator before capture
                forward()
        torch.cuda.current_stream(self._device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            outputs = forward()
        if self._pool is None:
            self._pool = graph.pool()
        return graph.replay, outputs

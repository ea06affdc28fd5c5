"""Run an exported .onnx model (``semantic-depth export``) with ONNX Runtime behind the estimator's runner interface.

``OnnxRunner(x, heads)`` takes the Bx3xHxW float32 network input in [0, 1] and returns the network-resolution
outputs of those heads, keyed like ``SemanticDepthNet.forward(x, heads, upsample=False)``: ``depth`` (drn),
``dc_depth`` and ``depth_probs`` (dc), ``semantic_logits`` (sc); ``depth_logits`` is not exported (nothing reads it).

Execution providers are tried in the order TensorRT (fp16, engine cache), CUDA, CPU among those the installed
onnxruntime offers. ORT is fed and read on the host (CPU): it copies to and from its device itself. The runner's
``device`` (where the estimator pre- and post-processes) is the provider's GPU when ORT runs on TensorRT/CUDA AND
this torch build has CUDA, else the CPU: a CPU-only torch (typical beside onnxruntime-gpu on a Jetson) still works,
with the post-processing on the CPU. IO binding of device tensors would save the host copies on CUDA, but no
CUDA/TensorRT provider can be installed where this package is tested, so it is not done (an untested zero-copy
path is worse than a copy).

``load_onnx_runner`` is what ``DepthEstimator`` calls for an ``.onnx`` file: it refuses PyTorch backends and resolves
the TensorRT engine cache folder (``trt_cache_dir``; default ``default_trt_cache_dir()``).
onnxruntime executes the whole graph whatever outputs are requested (measured: all heads and semantic alone cost
the same), so a file should be exported with only the heads it will serve.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..files import ensure_writable_folder
from ..errors import CheckpointError, ConfigError
from ..model.config import ModelConfig
from ..model.network import HEADS
from ..model.onnx_format import FORMAT_NAME, FORMAT_VERSION, INPUT_NAME, METADATA_KEYS, output_names

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
PROVIDER_ORDER = (TENSORRT, CUDA, CPU)
ONNX_BACKENDS = ("auto", "onnxruntime")
ONNX_PRECISIONS = ("auto", "fp32", "fp16")

ProviderSpec = tuple[str, dict[str, str]]
ONNX_SUFFIX = ".onnx"


def is_onnx_path(path: object) -> bool:
    """Whether ``path`` (str or Path; anything else is not) names an ONNX model file, by its ``.onnx`` suffix."""
    return isinstance(path, (str, os.PathLike)) and Path(path).suffix.lower() == ONNX_SUFFIX


def default_trt_cache_dir() -> Path:
    """Where TensorRT engines are cached when no folder is given: ``$XDG_CACHE_HOME/semantic_depth_ros/trt``,
    ``~/.cache/semantic_depth_ros/trt`` without that variable."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "semantic_depth_ros" / "trt"


def resolve_trt_cache_dir(folder: str | Path | None) -> Path:
    """``folder`` with ``~`` expanded; None or "" -> ``default_trt_cache_dir()``."""
    if folder is None or str(folder).strip() == "":
        return default_trt_cache_dir()
    return Path(os.path.expanduser(str(folder)))


def io_device_for(provider: str, device_id: int, *, cuda_available: bool, cuda_count: int) -> torch.device:
    """The torch device the estimator works on around a session running on ``provider``: GPU ``device_id`` for
    TensorRT/CUDA when torch has CUDA and that GPU, else the CPU (ORT takes and gives host arrays either way)."""
    if provider in (TENSORRT, CUDA) and cuda_available and 0 <= device_id < cuda_count:
        return torch.device("cuda", device_id)
    return torch.device("cpu")


@dataclass(frozen=True)
class OnnxMetadata:
    """Our metadata of one .onnx file (see ``model/onnx_export``); heads are network heads (dc, sc, drn)."""

    path: Path
    config: ModelConfig
    trained: bool
    heads: frozenset[str]
    class_names: tuple[str, ...]
    weights_precision: str  # "fp32" or "fp16"
    source: str  # the checkpoint it was exported from


def load_onnx_model(path: str | Path) -> tuple[ModelConfig, bool, frozenset[str], OnnxMetadata]:
    """Validate ``path`` and its metadata: (config, trained, network heads, metadata); CheckpointError otherwise.

    Opens the file with the CPU provider and graph optimisations off (cheap); ``OnnxRunner`` opens its own session.
    """
    session = _open_session(Path(path), [(CPU, {})], optimize=False, num_threads=1)
    meta = read_metadata(Path(path), session)
    return meta.config, meta.trained, meta.heads, meta


def read_metadata(path: Path, session: Any) -> OnnxMetadata:
    """Our metadata from an open session, checked against the graph's input and outputs."""
    props = session.get_modelmeta().custom_metadata_map
    where = f"model file {path}"
    if props.get(METADATA_KEYS["format"]) != FORMAT_NAME:
        raise CheckpointError(f"{where}: has no semantic_depth_ros metadata (export it with `semantic-depth export`)")
    version = props.get(METADATA_KEYS["format_version"], "")
    if not version.isdigit() or int(version) != FORMAT_VERSION:
        newer = version.isdigit() and int(version) > FORMAT_VERSION
        raise CheckpointError(f"{where}: format version {version!r} is not supported (this code reads version "
                              f"{FORMAT_VERSION}){'; update semantic_depth_ros' if newer else '; re-export it'}")
    try:
        config = ModelConfig.from_dict(json.loads(props[METADATA_KEYS["model_config"]]), source="model_config")
        trained = json.loads(props[METADATA_KEYS["trained"]])
        heads = json.loads(props[METADATA_KEYS["heads"]])
        names = json.loads(props[METADATA_KEYS["class_names"]])
        size = (int(props[METADATA_KEYS["input_height"]]), int(props[METADATA_KEYS["input_width"]]))
        precision = props[METADATA_KEYS["weights_precision"]]
    except (KeyError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"{where}: invalid metadata ({str(exc).splitlines()[0][:200]})") from None
    if (not isinstance(trained, bool) or not isinstance(heads, list) or not heads or not set(heads) <= set(HEADS)
            or not isinstance(names, list) or len(names) != config.num_classes or precision not in ("fp32", "fp16")):
        raise CheckpointError(f"{where}: invalid metadata (trained, heads, class_names or weights_precision)")
    if size != (config.input_height, config.input_width):
        raise CheckpointError(f"{where}: metadata input size {size[1]}x{size[0]} differs from its model config "
                              f"{config.input_width}x{config.input_height}")
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise CheckpointError(f"{where}: expected one input named '{INPUT_NAME}', got "
                              f"{[i.name for i in inputs]}")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or shape[1] != 3 or tuple(shape[2:]) != size:
        raise CheckpointError(f"{where}: graph input shape {shape} does not match the metadata input size "
                              f"Bx3x{size[0]}x{size[1]}")
    outputs = {o.name: list(o.shape) for o in session.get_outputs()}
    missing = sorted(set(output_names(heads)) - set(outputs))
    if missing:
        raise CheckpointError(f"{where}: graph lacks the output(s) {', '.join(missing)} of its heads {heads}")
    channels = {"depth": 1, "dc_depth": 1, "depth_probs": config.num_depth_bins, "semantic_logits": config.num_classes}
    for name in output_names(heads):
        shape = outputs[name]
        if len(shape) != 4 or shape[1] != channels[name]:
            raise CheckpointError(f"{where}: graph output {name} has shape {shape}, expected Bx{channels[name]}xhxw "
                                  f"for its model config")
    return OnnxMetadata(path=path, config=config, trained=trained, heads=frozenset(heads), class_names=tuple(names),
                        weights_precision=precision, source=props.get(METADATA_KEYS["source"], ""))


def select_providers(device: str, available: Sequence[str], *, fp16: bool,
                     trt_cache_dir: str | Path | None = None) -> list[ProviderSpec]:
    """Execution providers (name, options) to try, in ``PROVIDER_ORDER`` among ``available``; CPU always last.

    ``device``: ``auto`` (the best available), ``cpu`` (CPU only), ``cuda`` / ``cuda:N`` (TensorRT or CUDA on GPU
    N, ConfigError when neither is available). ``fp16`` enables TensorRT's fp16 kernels; ``trt_cache_dir`` keeps
    built TensorRT engines there, so they are built once.
    """
    text = str(device).strip().lower()
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if text not in ("auto", "cpu") and match is None:
        raise ConfigError(f"device '{device}' is not one of auto, cpu, cuda, cuda:N")
    if text == "cpu":
        return [(CPU, {})]
    index = match.group(1) if match is not None and match.group(1) is not None else "0"
    gpu = [p for p in (TENSORRT, CUDA) if p in available]
    if match is not None and not gpu:
        raise ConfigError(f"device '{device}' needs the TensorRT or CUDA execution provider, but this onnxruntime "
                          f"offers only {', '.join(available) or 'none'} (install onnxruntime-gpu)")
    specs: list[ProviderSpec] = []
    for name in gpu:
        options = {"device_id": index}
        if name == TENSORRT:
            options["trt_fp16_enable"] = "True" if fp16 else "False"
            if trt_cache_dir is not None:
                options.update(trt_engine_cache_enable="True", trt_engine_cache_path=str(trt_cache_dir))
        specs.append((name, options))
    return specs + [(CPU, {})]


def check_onnx_backend(backend: str, path: str | Path) -> None:
    """ConfigError unless ``backend`` can run an .onnx model (``auto`` or ``onnxruntime``)."""
    if backend not in ONNX_BACKENDS:
        raise ConfigError(f"backend '{backend}' runs PyTorch models; model file {path} is ONNX and runs on "
                          f"onnxruntime (use backend {' or '.join(ONNX_BACKENDS)})")


def resolve_onnx_precision(precision: str, provider: str, weights_precision: str, path: str | Path) -> str:
    """The precision an ONNX session runs in (``fp32`` / ``fp16``) for ``precision``; ConfigError with the reason
    when that provider and file cannot honour it.

    ``auto``: fp16 on TensorRT, else the file's weights. ``fp32``: needs fp32 weights (TensorRT fp16 is then off).
    ``fp16``: TensorRT, or a file exported with ``--fp16``. ``bf16``: never (ONNX Runtime has no bf16 path here).
    """
    if precision == "auto":
        return "fp16" if provider == TENSORRT else weights_precision
    if precision == "fp32":
        if weights_precision == "fp16":
            raise ConfigError(f"precision fp32 cannot be honoured: model file {path} has fp16 weights (export "
                              "without --fp16, or use precision auto or fp16)")
        return "fp32"
    if precision == "fp16":
        if provider != TENSORRT and weights_precision != "fp16":
            raise ConfigError(f"precision fp16 cannot be honoured: model file {path} has fp32 weights and the "
                              f"{provider} computes in the file's precision (export with --fp16, or use TensorRT)")
        return "fp16"
    if precision == "bf16":
        raise ConfigError(f"precision bf16 cannot be honoured by an ONNX model ({path}): onnxruntime has no bf16 "
                          f"path for it; choose {', '.join(ONNX_PRECISIONS)}")
    raise ConfigError(f"precision '{precision}' is not one of {', '.join(ONNX_PRECISIONS)} for an ONNX model ({path})")


class OnnxRunner:
    """An .onnx model behind the estimator's runner interface (``device``, ``input_dtype``, ``description``,
    ``heads``, ``__call__(x, heads)``); see the module docstring.

    ``device`` (argument): ``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` (the execution provider's device, see
    ``select_providers``); the attribute ``device`` is the torch device of the input and outputs
    (``io_device_for``). ``batch_size``: None for a dynamic batch axis, else the graph's fixed batch.
    ``precision``: ``auto`` | ``fp32`` | ``fp16`` (``resolve_onnx_precision``).
    ``trt_cache_dir``: TensorRT engine cache folder (None: engines are rebuilt at every start, minutes on a
    Jetson). ``num_threads``: CPU provider threads (None: onnxruntime's default, one per core).
    ``available_providers``: for tests; default ``onnxruntime.get_available_providers()``.
    """

    def __init__(self, path: str | Path, *, device: str = "auto", precision: str = "auto",
                 trt_cache_dir: str | Path | None = None, num_threads: int | None = None,
                 available_providers: Sequence[str] | None = None) -> None:
        self.path = Path(path)
        if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(num_threads, int)
                                        or num_threads < 1):
            raise ConfigError(f"num_threads = {num_threads!r} must be a positive integer")
        if precision not in ONNX_PRECISIONS:
            resolve_onnx_precision(precision, CPU, "fp32", self.path)  # raises with the reason
        available = list(_onnxruntime().get_available_providers() if available_providers is None else available_providers)
        wants_fp16 = precision in ("auto", "fp16")
        specs = select_providers(device, available, fp16=wants_fp16, trt_cache_dir=trt_cache_dir)
        if trt_cache_dir is not None and specs[0][0] == TENSORRT:
            ensure_writable_folder(Path(trt_cache_dir), f"trt_cache_dir {trt_cache_dir}")
        self._session = _open_session(self.path, specs, optimize=True, num_threads=num_threads)
        self.metadata = read_metadata(self.path, self._session)
        self.config = self.metadata.config
        self.trained = self.metadata.trained
        self.heads: frozenset[str] = self.metadata.heads
        self.provider: str = self._session.get_providers()[0]
        self.precision = resolve_onnx_precision(precision, self.provider, self.metadata.weights_precision, self.path)
        batch = self._session.get_inputs()[0].shape[0]
        self.batch_size: int | None = batch if isinstance(batch, int) and batch > 0 else None  # None: dynamic
        device_id = int(dict(specs[0][1]).get("device_id", "0"))
        self.device = io_device_for(self.provider, device_id, cuda_available=torch.cuda.is_available(),
                                    cuda_count=torch.cuda.device_count() if torch.cuda.is_available() else 0)
        self.input_dtype = torch.float32
        where = "" if self.provider == CPU else f" gpu {device_id}"
        self.description = f"onnxruntime {self.provider}{where} ({self.precision})"  # logged by the estimator

    def __call__(self, x: torch.Tensor, heads: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Bx3xHxW float32 in [0, 1] -> {output name: host float32 tensor at output stride} of ``heads``."""
        lacking = sorted(set(heads) - self.heads)
        if lacking:
            raise ConfigError(f"model file {self.path} was exported without the head(s) {', '.join(lacking)} "
                              f"(it has {', '.join(h for h in HEADS if h in self.heads)}); re-export with "
                              "`semantic-depth export --heads ...`")
        expected = (3, self.config.input_height, self.config.input_width)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ConfigError(f"network input shape {tuple(x.shape)} must be Bx{expected[0]}x{expected[1]}x"
                              f"{expected[2]} for model file {self.path}")
        if self.batch_size is not None and x.shape[0] != self.batch_size:
            raise ConfigError(f"model file {self.path} takes batches of exactly {self.batch_size} frame(s), got "
                              f"{x.shape[0]}; re-export it with `semantic-depth export` (dynamic batch)")
        names = list(output_names(heads))
        array = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        results = self._session.run(names, {INPUT_NAME: array})
        if self.device.type == "cpu":
            return {name: torch.from_numpy(value) for name, value in zip(names, results)}
        return {name: torch.from_numpy(value).to(self.device, non_blocking=True) for name, value in zip(names, results)}


def load_onnx_runner(path: str | Path, *, device: str = "auto", precision: str = "auto", backend: str = "auto",
                     trt_cache_dir: str | Path | None = None, num_threads: int | None = None) -> OnnxRunner:
    """The runner of an ``.onnx`` file for the estimator's options; ConfigError (one line, with the reason) for a
    backend or precision the file cannot honour, CheckpointError for a missing, corrupt or foreign file.

    ``trt_cache_dir``: TensorRT engine cache (None or "": ``default_trt_cache_dir()``; used only by TensorRT).
    """
    check_onnx_backend(backend, path)
    return OnnxRunner(path, device=device, precision=precision, trt_cache_dir=resolve_trt_cache_dir(trt_cache_dir),
                      num_threads=num_threads)


def _open_session(path: Path, providers: list[ProviderSpec], *, optimize: bool,
                  num_threads: int | None) -> Any:
    """An inference session of ``path``; CheckpointError naming the file for a missing or unreadable model."""
    if not path.exists():
        raise CheckpointError(f"model file {path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"model file {path}: not a regular file")
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: ORT's own warnings go to stderr, not through logging
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=[n for n, _ in providers],
                                    provider_options=[o for _, o in providers])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own pybind types (InvalidProtobuf, Fail, ...)
        raise CheckpointError(f"model file {path}: cannot be loaded by onnxruntime ({_first_line(exc)})") from None


def _onnxruntime() -> ModuleType:
    """The onnxruntime module, imported on first use: a vehicle installs onnxruntime-gpu (CUDA, TensorRT) or
    onnxruntime (CPU), which provide the same module; .pt models need neither. ConfigError when neither is there."""
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("onnxruntime is not installed: `pip install onnxruntime-gpu` (CUDA and TensorRT "
                          "providers) or `pip install onnxruntime` (CPU) to run .onnx models") from None
    return onnxruntime


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : ", "", line)[:200]


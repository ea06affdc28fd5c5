"""Device and precision rules, in one place for inference and training.

- Devices: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda``, ``cuda:N``.
- Precisions: ``fp32``, ``fp16`` (CUDA only), ``bf16`` (CUDA, or a CPU; fast only on CPUs with native bf16) and,
  where the caller allows it, ``auto``: fp16 on CUDA; bf16 on CPUs with native bf16 (about twice fp32), else fp32.
- Mixed precision for training: :func:`autocast_factory` (fp32: no autocast).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import torch

from .errors import ConfigError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FIXED_PRECISIONS = tuple(DTYPES)  # what a precision resolves to
PRECISIONS = (*FIXED_PRECISIONS, "auto")
DEVICE_CHOICES = "auto, cpu, cuda, cuda:N"
CPU_BF16_ENV = "SEMANTIC_DEPTH_CPU_BF16"  # forces cpu_has_native_bf16 (1/0)


def resolve_device(spec: str, *, local_rank: int | None = None) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` -> a usable device; ConfigError if unknown or absent.

    ``cuda`` without an index (and ``auto`` on a CUDA machine) is device ``local_rank % count`` when a
    ``local_rank`` is given (one GPU per ``torchrun`` process), else the current CUDA device.
    """
    text = str(spec).strip().lower()
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ConfigError(f"device '{spec}' is not one of {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise ConfigError(f"device '{spec}' is not available: this machine has no usable CUDA device")
    count = torch.cuda.device_count()
    if match.group(1) is not None:
        index = int(match.group(1))
    else:
        index = local_rank % count if local_rank is not None else torch.cuda.current_device()
    if index >= count:
        raise ConfigError(f"device '{spec}' is not available: this machine has {count} CUDA device(s)")
    return torch.device("cuda", index)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16 in /proc/cpuinfo; False elsewhere).

    ``SEMANTIC_DEPTH_CPU_BF16=1`` or ``0`` overrides the detection (a VM that hides CPU flags; the test suite runs
    with it forced both ways); any other value is a ConfigError naming it.
    """
    forced = os.environ.get(CPU_BF16_ENV)
    if forced is not None:
        if forced.strip() not in ("0", "1"):
            raise ConfigError(f"{CPU_BF16_ENV} = {forced!r} must be 0 or 1")
        return forced.strip() == "1"
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"\b(avx512_bf16|amx_bf16)\b", text) is not None


def resolve_precision(precision: str, device: torch.device, *, allow_auto: bool = True) -> str:
    """The precision used on ``device`` for the requested one (``auto`` resolved); ConfigError if impossible.

    The one place that decides "fp16 needs CUDA".
    """
    if precision == "auto" and allow_auto:
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in DTYPES:
        choices = PRECISIONS if allow_auto else FIXED_PRECISIONS
        raise ConfigError(f"precision '{precision}' is not one of {', '.join(choices)}")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError(f"precision fp16 needs a CUDA device, got {device.type}")
    return precision


def dtype_of(precision: str) -> torch.dtype:
    """torch dtype of a resolved precision (``fp32``, ``fp16``, ``bf16``)."""
    return DTYPES[precision]


def autocast_factory(precision: str, device: torch.device) -> Callable[[], AbstractContextManager[Any]]:
    """A factory of autocast contexts for mixed-precision training (fp32: no autocast; fp16 needs CUDA)."""
    precision = resolve_precision(precision, device, allow_auto=False)
    if precision == "fp32":
        return contextlib.nullcontext
    return functools.partial(torch.autocast, device_type=device.type, dtype=DTYPES[precision])

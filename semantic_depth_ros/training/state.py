"""Run-state checkpoints: everything needed to continue a killed run exactly, as plain tensors and Python data.

A run-state file (``<run>/checkpoints/state_<step>.pt``) holds the model weights, the optimiser, scheduler and
grad-scaler state dicts, the step, the random generator states (as tensors), the resolved training and model
configs, the best validation so far and the validation history. It loads with ``torch.load(weights_only=True)``
and is written atomically; the last ``keep_last`` are kept. Model checkpoints (``model.pt``, ``best.pt``) are
separate files in the format of ``model.checkpoint``.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..model.checkpoint import atomic_torch_save

RUN_STATE_FORMAT = "semantic_depth_ros.run_state"
RUN_STATE_VERSION = 1
_STATE_NAME = re.compile(r"^state_(\d{8,})\.pt$")


def rng_states() -> dict[str, Any]:
    """The torch (CPU and CUDA), numpy and Python random generator states, as tensors."""
    np_state = np.random.get_state()
    py_version, py_internal, _ = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy_keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
        "numpy_pos": int(np_state[2]),
        "numpy_gauss": [int(np_state[3]), float(np_state[4])],
        "python": torch.tensor(py_internal, dtype=torch.int64),
        "python_version": int(py_version),
    }


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states` (CUDA states only when the same number of devices is visible)."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    keys = states["numpy_keys"].numpy().astype(np.uint32)
    has_gauss, cached = states["numpy_gauss"]
    np.random.set_state(("MT19937", keys, int(states["numpy_pos"]), int(has_gauss), float(cached)))
    random.setstate((int(states["python_version"]), tuple(int(v) for v in states["python"].tolist()), None))


def state_path(directory: Path, step: int) -> Path:
    """``<directory>/state_<step, 8 digits>.pt``."""
    return Path(directory) / f"state_{step:08d}.pt"


def list_run_states(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run-state files in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STATE_NAME.match(p.name))]
    return sorted(found)


def latest_run_state(directory: Path) -> Path | None:
    """The newest run-state file in ``directory`` or None."""
    states = list_run_states(directory)
    return states[-1][1] if states else None


def save_run_state(directory: Path, payload: dict[str, Any], *, step: int, keep_last: int) -> Path:
    """Write ``payload`` (see :func:`build_payload`) atomically as step ``step``; delete all but the last N."""
    path = state_path(directory, step)
    atomic_torch_save({"format": RUN_STATE_FORMAT, "version": RUN_STATE_VERSION, **payload}, path)
    for _, old in list_run_states(directory)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def build_payload(*, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                  train_config: dict[str, Any], model_config: dict[str, Any], best: dict[str, Any] | None,
                  history: list[dict[str, Any]], extra: dict[str, Any]) -> dict[str, Any]:
    """The run state at ``step`` (completed optimiser updates) as plain tensors and Python data."""
    module = getattr(model, "module", model)
    return {
        "step": int(step),
        "model": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rng_states(),
        "train_config": train_config,
        "model_config": model_config,
        "best": best,
        "history": history,
        "extra": extra,
    }


def load_run_state(path: Path) -> dict[str, Any]:
    """Read and check a run-state file (weights only); CheckpointError names the file."""
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"run state {path}: file not found") from None
    except Exception as exc:  # noqa: BLE001 - corrupt archive, disallowed globals, ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"run state {path}: cannot be read ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != RUN_STATE_FORMAT:
        raise CheckpointError(f"run state {path}: not a semantic_depth_ros run-state file")
    if payload.get("version") != RUN_STATE_VERSION:
        raise CheckpointError(f"run state {path}: version {payload.get('version')!r} is not {RUN_STATE_VERSION}")
    missing = [k for k in ("step", "model", "optimizer", "scheduler", "scaler", "rng", "train_config",
                           "model_config", "history", "extra") if k not in payload]
    if missing:
        raise CheckpointError(f"run state {path}: missing '{missing[0]}'")
    return payload


def restore_training_state(payload: dict[str, Any], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           scheduler: torch.optim.lr_scheduler.LRScheduler, scaler: torch.amp.GradScaler,
                           source: str) -> None:
    """Load weights, optimiser, scheduler, scaler and RNG states from a run-state payload."""
    module = getattr(model, "module", model)
    try:
        module.load_state_dict(payload["model"], strict=True)
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        scaler.load_state_dict(payload["scaler"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"run state {source}: does not fit this run ({str(exc).splitlines()[0][:200]})") from None
    restore_rng_states(payload["rng"])

"""Checkpoints: one file holding the state dict and the full model config, so it alone rebuilds its model.

Files are plain dicts of tensors and Python primitives, written atomically (``files.atomic_path``) and
read with ``torch.load(weights_only=True)``: loading a checkpoint never executes code from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError, ConfigError
from ..files import atomic_path
from .config import ModelConfig
from .network import SemanticDepthNet

FORMAT_NAME = "semantic_depth_ros.checkpoint"
FORMAT_VERSION = 1


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model config, weights, whether it was trained, and free-form metadata."""

    path: Path
    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    trained: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def build_model(self, *, strict: bool = True) -> SemanticDepthNet:
        """The network with these weights, in eval mode, on the CPU."""
        model = SemanticDepthNet(self.config)
        load_weights(model, self.state_dict, source=f"checkpoint {self.path}", strict=strict)
        return model.eval()


def load_weights(model: SemanticDepthNet, state_dict: dict[str, torch.Tensor], *, source: str,
                 strict: bool = True, allow_missing_prefixes: tuple[str, ...] = ()) -> None:
    """Load ``state_dict`` into ``model``; mismatches raise CheckpointError naming the first offending keys.

    ``allow_missing_prefixes`` lets phase 2 add new layers (``("drn_head.",)``) to a phase-1 checkpoint.
    """
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:
        detail = next((line.strip() for line in str(exc).splitlines() if "size mismatch" in line), str(exc))
        raise CheckpointError(f"{source}: incompatible weights ({detail})") from None
    missing = [k for k in missing if not k.startswith(allow_missing_prefixes)]
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"{source}: weights do not match its config: {'; '.join(parts)}")


def atomic_torch_save(payload: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` written atomically (``files.atomic_path``: temp file, fsync, rename over ``path``)."""
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def save_checkpoint(path: str | Path, model: torch.nn.Module, config: ModelConfig, *, trained: bool,
                    extra: dict[str, Any] | None = None) -> None:
    """Write the model's weights (on the CPU) and config atomically to ``path``."""
    module = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "config": config.to_dict(),
        "state_dict": state,
        "trained": bool(trained),
        "extra": dict(extra or {}),
    }
    atomic_torch_save(payload, path)


def read_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """The raw payload of any checkpoint file, safely (weights only); errors name the file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path}: file not found")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: not a regular file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated file, disallowed pickle globals...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it contains objects other than tensors and plain data, refused for safety"
        raise CheckpointError(f"checkpoint {path}: cannot be read ({reason[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CheckpointError(f"checkpoint {path}: not a semantic_depth_ros checkpoint")
    version = payload.get("version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path}: format version {version!r} is newer than this code "
                              f"supports ({FORMAT_VERSION}); update semantic_depth_ros")
    return payload


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint file (config, weight names and shapes)."""
    path = Path(path)
    payload = read_checkpoint_file(path)
    state = payload.get("state_dict")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path}: has no valid state_dict")
    try:
        config = ModelConfig.from_dict(payload.get("config"), source="config")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {path}: {exc}") from None
    extra = payload.get("extra") if isinstance(payload.get("extra"), dict) else {}
    checkpoint = Checkpoint(path=path, config=config, state_dict=state, trained=bool(payload.get("trained")),
                            extra=extra)
    load_weights(SemanticDepthNet(config), state, source=f"checkpoint {path}")
    return checkpoint

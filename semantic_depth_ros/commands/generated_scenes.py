"""The demo's generated-scene training set-up, shared by `semantic-depth demo` and `semantic-depth ablate`.

The installed demo configs (``train_demo_phase1.yaml``, ``train_demo_phase2.yaml``), the held-out seed and camera
size both commands evaluate on, and training that reuses a finished run folder and resumes an interrupted one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..resources import find_data_file
from ..training.config import TrainConfig, load_config
from ..training.run_folder import MODEL_FILE
from ..training.trainer import run_training

PHASE_CONFIGS = {("small", 1): "train_demo_phase1.yaml", ("small", 2): "train_demo_phase2.yaml",
                 ("full", 1): "train_demo_full_phase1.yaml", ("full", 2): "train_demo_full_phase2.yaml"}
SIZES = ("small", "full")  # small: minutes on 2 CPU cores; full: the network a vehicle runs, minutes on a GPU
HELDOUT_SEED = 5000  # training uses seed 0 and validation seed 1000: these frames were never seen
CAMERA_SIZE = (188, 620)  # height, width of the held-out camera frames (the network input is smaller)
MIN_DEPTH_M = 1.0  # evaluation's lower depth bound, metres


def load_demo_config(phase: int, size: str = "small") -> TrainConfig:
    """The installed demo training config of ``phase`` (1 or 2) and ``size`` (``SIZES``)."""
    if size not in SIZES:
        raise ConfigError(f"demo size {size!r} is not one of {', '.join(SIZES)}")
    path = find_data_file("config", PHASE_CONFIGS[(size, phase)])
    if path is None:
        raise ConfigError(f"demo training config {PHASE_CONFIGS[(size, phase)]} is not installed")
    return load_config(path)


def with_steps(config: TrainConfig, steps: int) -> TrainConfig:
    """``config`` shortened or lengthened to ``steps``, validating and saving at least once."""
    every = max(1, min(config.validation.every, steps))
    return config.replace(steps=steps,
                          validation={**dataclasses.asdict(config.validation), "every": every},
                          checkpoint={**dataclasses.asdict(config.checkpoint), "every": every})


def train_or_reuse(config: TrainConfig, *, retrain: bool, progress: bool) -> tuple[Path, dict[str, Any]]:
    """Train ``config`` into its run folder, reusing a finished model and resuming an interrupted run.

    Returns the model checkpoint and a training summary.
    """
    run_dir = config.run_dir()
    model_path = run_dir / MODEL_FILE
    if model_path.is_file() and not retrain:
        print(f"{config.name}: reusing {model_path} (pass --retrain to train again)")
        return model_path, {"reused": True}
    print(f"{config.name}: training {config.steps} steps -> {run_dir}")
    result = run_training(config, resume=run_dir.is_dir() and not retrain, progress=progress)
    if result.checkpoint_path is None:
        raise ConfigError(f"{config.name} stopped before its last step; run the command again to resume it")
    return result.checkpoint_path, {"steps": result.steps, "seconds": round(result.seconds, 1),
                                    "final_validation": result.final_metrics,
                                    "validation_before": result.metrics_before}

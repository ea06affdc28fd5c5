"""Two-phase conditional-flow training: ``run_training(load_config(path), out_dir=...)`` -> ``TrainResult``."""

from .config import TrainConfig, config_from_dict, load_config
from .run import TrainResult
from .trainer import run_training

__all__ = ["TrainConfig", "TrainResult", "config_from_dict", "load_config", "run_training"]

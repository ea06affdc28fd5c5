"""The layout of a run folder (file and folder names), shared by the trainer and the commands that read runs.

``config.yaml`` and ``model_config.yaml``: the resolved configs; ``checkpoints/state_<step>.pt``: run states (the
last N, for an exact resume); ``best.pt``: the best model by the validation metric; ``model.pt``: the final model
checkpoint (``trained=True``, loadable by ``DepthEstimator``); ``metrics.json``: the validation history;
``tensorboard/``: event files.
"""

from __future__ import annotations

MODEL_FILE = "model.pt"
BEST_FILE = "best.pt"
CONFIG_FILE = "config.yaml"
MODEL_CONFIG_FILE = "model_config.yaml"
METRICS_FILE = "metrics.json"
STATE_DIR = "checkpoints"

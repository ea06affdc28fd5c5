"""Shared test set-up: an isolated ROS 2 graph and a tiny untrained checkpoint.

ROS isolation is set here, at import time, before any test imports rclpy or starts a node subprocess: a random
``ROS_DOMAIN_ID`` per test session (so test runs started at the same time do not see each other) and discovery
limited to this machine.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the variable above
os.environ.pop("ROS_STATIC_PEERS", None)

REPO_ROOT = Path(__file__).resolve().parent.parent

# A small network for fast tests: resnet18 encoder, 64x192 input, two decoder stages (heads at stride 8).
TINY_MODEL = {
    "name": "tiny_test",
    "encoder": "resnet18",
    "input_height": 64,
    "input_width": 192,
    "num_depth_bins": 16,
    "min_depth": 1.0,
    "max_depth": 80.0,
    "num_classes": 19,
    "decoder_channels": (32, 16),
    "focal_px": 100.0,
}


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of an UNTRAINED checkpoint of ``TINY_MODEL`` (seeded, so every session gets the same weights)."""
    import torch

    from semantic_depth_ros.model.checkpoint import save_checkpoint
    from semantic_depth_ros.model.config import ModelConfig
    from semantic_depth_ros.model.network import SemanticDepthNet

    config = ModelConfig(**TINY_MODEL)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny.pt"
    save_checkpoint(path, SemanticDepthNet(config), config, trained=False, extra={"seed": 0})
    return path

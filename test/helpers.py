"""Helpers shared by several test modules (import them from here, never from another test module)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from semantic_depth_ros.model.checkpoint import Checkpoint
from semantic_depth_ros.model.config import ModelConfig
from semantic_depth_ros.model.network import SemanticDepthNet

# A small network for fast tests: resnet18 encoder, 64x192 input, two decoder stages (heads at stride 8); the
# ``tiny_checkpoint`` fixture of conftest.py writes it.
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

# The estimator tests' network: 64x160 input, two decoder stages, the heads at stride 8 (an 8x20 output map).
CONFIG = ModelConfig(name="tiny", input_height=64, input_width=160, num_depth_bins=16, min_depth=1.0,
                     max_depth=80.0, decoder_channels=(32, 16), focal_px=100.0)


def make_checkpoint(config: ModelConfig = CONFIG, *, trained: bool = True,
                    edit: Callable[[SemanticDepthNet], None] | None = None) -> Checkpoint:
    """An in-memory checkpoint of a seeded random network, optionally edited (weights forced) first."""
    torch.manual_seed(0)
    model = SemanticDepthNet(config).eval()
    if edit is not None:
        with torch.no_grad():
            edit(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return Checkpoint(path=Path(f"memory/{config.name}.pt"), config=config, state_dict=state, trained=trained)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """HxWx3 uint8 noise, the same for the same seed."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def distort_image(rgb: np.ndarray, K: np.ndarray, distortion) -> np.ndarray:
    """The pinhole image ``rgb`` (camera matrix K) as seen through a plumb_bob lens: each distorted pixel reads the
    pinhole image where its ray lands (``cv2.undistortPoints``, bilinear, edge replicated)."""
    v, u = np.mgrid[0:rgb.shape[0], 0:rgb.shape[1]].astype(np.float64)
    rays = cv2.undistortPoints(np.stack((u, v), axis=-1).reshape(-1, 1, 2), K, np.asarray(distortion))
    rays = rays.reshape(*u.shape, 2)
    map_x = (rays[..., 0] * K[0, 0] + K[0, 2]).astype(np.float32)
    map_y = (rays[..., 1] * K[1, 1] + K[1, 2]).astype(np.float32)
    return cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

"""Generated frames as a torch Dataset of training samples."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from semantic_depth_ros.data.synthetic.domains import (
    MAX_SIZE,
    MIN_SIZE,
    TASKS,
    check_int,
    domain_intrinsics,
    domain_spec,
)
from semantic_depth_ros.data.synthetic.render import render_frame
from semantic_depth_ros.cache import BoundedCache
from semantic_depth_ros.errors import ConfigError


RENDERED: BoundedCache[tuple, dict[str, np.ndarray]] = BoundedCache(2048, "rendered synthetic frames")


def render_arrays(key: tuple) -> dict[str, np.ndarray]:
    """The arrays of the frame a ``SyntheticDataset.cache_key`` names: ``rgb`` and the task's labels."""
    domain, seed, height, width, task, index = key
    frame = render_frame(domain, index, seed=seed, height=height, width=width)
    arrays = {"rgb": frame.rgb}
    if task in ("depth", "both"):
        arrays["depth"] = frame.depth
    if task in ("semantic", "both"):
        arrays["semantic"] = frame.semantic
    return arrays


class SyntheticDataset(Dataset):
    """``length`` generated frames of one domain as training samples (the keys the KITTI and Cityscapes datasets use).

    ``task`` "depth" gives {"image", "depth", "fx"}, "semantic" {"image", "semantic", "fx"}, "both" all four:
    image float32 3xHxW in [0, 1], depth float32 1xHxW metres (0 = invalid), semantic int64 HxW train ids,
    fx float pixels at HxW. With ``cache`` each frame is rendered once per process and kept (uint8/float32 arrays,
    in ``RENDERED``, shared by every dataset of the same domain, seed, size and task: a phase-2 run or an evaluation
    after phase 1 trains instead of rendering again).
    """

    def __init__(self, domain: str, task: str, length: int, *, seed: int = 0, height: int, width: int,
                 cache: bool = True) -> None:
        domain_spec(domain)
        if task not in TASKS:
            raise ConfigError(f"unknown synthetic task {task!r} (expected one of: {', '.join(TASKS)})")
        self.domain = domain
        self.task = task
        self.length = check_int("length", length, 1)
        self.seed = check_int("seed", seed, 0)
        self.intrinsics = domain_intrinsics(domain, check_int("height", height, MIN_SIZE, MAX_SIZE),
                                            check_int("width", width, MIN_SIZE, MAX_SIZE))
        self.cache = bool(cache)

    def __len__(self) -> int:
        return self.length

    def cache_key(self, index: int) -> tuple:
        """The key of frame ``index`` in ``RENDERED``."""
        intr = self.intrinsics
        return (self.domain, self.seed, intr.height, intr.width, self.task, index)

    def _arrays(self, index: int) -> dict[str, np.ndarray]:
        """The numpy arrays this task needs for frame ``index`` (cached when enabled)."""
        key = self.cache_key(index)
        return RENDERED.get(key, lambda: render_arrays(key)) if self.cache else render_arrays(key)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | float]:
        if not 0 <= index < self.length:
            raise IndexError(f"synthetic dataset index {index} out of range [0, {self.length})")
        arrays = self._arrays(int(index))
        # numpy, not torch ops: torch's intra-op threads make this 300x slower on a busy machine
        image = arrays["rgb"].transpose(2, 0, 1).astype(np.float32, order="C") / np.float32(255.0)
        sample: dict[str, torch.Tensor | float] = {
            "image": torch.from_numpy(image),
            "fx": float(self.intrinsics.fx),
        }
        if "depth" in arrays:
            sample["depth"] = torch.from_numpy(arrays["depth"].copy())[None]
        if "semantic" in arrays:
            sample["semantic"] = torch.from_numpy(arrays["semantic"].astype(np.int64))
        return sample


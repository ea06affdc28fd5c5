"""``infer-bag --benchmark``: frames per second of the whole replay against the bare estimator, same frames.

The selected frames are decoded into memory first (keep the selection short with ``--end`` / ``--every``), the
estimator is warmed up on the first frame's size at the replay's batch size, then ``DepthEstimator.estimate`` runs
on every frame alone (the estimator outputs the replay needs, device synchronised at the end), then the replay
itself runs over the same frames. The ratio replay / bare says what reading, batching and writing cost or gain.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.bag_reader import BagReader
from ..errors import InvalidInputError
from ..inference.estimator import DepthEstimator
from ..messages import NEEDS_INTRINSICS, estimator_outputs_for
from .frames import FrameSource, InputFrame
from .pipeline import ReplayOptions, ReplaySummary, estimate, replay_bag


@dataclass(frozen=True)
class BenchmarkResult:
    """Frames per second of the bare estimator and of the replay, over ``frames`` frames."""

    frames: int
    bare_fps: float
    replay: ReplaySummary

    def line(self) -> str:
        ratio = self.replay.fps / self.bare_fps if self.bare_fps > 0 else float("nan")
        return (f"benchmark over {self.frames} frames: bare DepthEstimator.estimate {self.bare_fps:.1f} frames/s, "
                f"infer-bag {self.replay.fps:.1f} frames/s (ratio {ratio:.2f})")


def _synchronise(estimator: DepthEstimator) -> None:
    if estimator.device.type == "cuda":
        torch.cuda.synchronize(estimator.device)


def benchmark(bag_path: str | Path, out: str | Path, estimator: DepthEstimator, options: ReplayOptions
              ) -> BenchmarkResult:
    """Time the bare estimator, then the replay (written to ``out``), over the same selected frames."""
    scoring = options.lidar_topic is not None
    needs_camera = scoring or any(key in NEEDS_INTRINSICS or key == "depth" for key in options.outputs)
    with BagReader(bag_path) as bag:
        source = FrameSource(bag, options.image_topic, options.camera_info_topic, needs_camera=needs_camera,
                             selection=options.selection)
        frames = [item for item in source.items() if isinstance(item, InputFrame)]
    if not frames:
        raise InvalidInputError(f"no decodable frame on {options.image_topic} to benchmark")
    outputs = tuple(set(estimator_outputs_for(options.outputs)) | ({"depth"} if scoring else set()))
    for _ in range(2):
        estimate(estimator, frames[:options.batch], outputs)
        estimate(estimator, frames[:1], outputs)
    _synchronise(estimator)
    started = time.perf_counter()
    for frame in frames:
        estimator.estimate(frame.rgb, intrinsics=frame.camera.intrinsics if frame.camera else None, outputs=outputs)
    _synchronise(estimator)
    bare_fps = len(frames) / (time.perf_counter() - started)
    count = len(frames)
    del frames
    replay = replay_bag(bag_path, out, estimator, options)
    return BenchmarkResult(frames=count, bare_fps=bare_fps, replay=replay)

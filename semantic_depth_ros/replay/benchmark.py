"""``infer-bag --benchmark``: frames per second of the whole replay against the bare estimator, same frames.

The selected frames are decoded into memory first (keep the selection short with ``--end`` / ``--every``), the
estimator is warmed up on the first frame's size at the replay's batch size, then, three rounds of:
``DepthEstimator.estimate`` on every frame alone (the estimator outputs the replay needs, device synchronised at the
end), then the replay itself over the same frames (the last round writes ``out``, the others a scratch folder
beside it). The best round of each is reported (other processes on a shared machine only slow rounds down). The
ratio replay / bare says what reading, batching, message building and writing cost or gain.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..data.bag_reader import BagReader
from ..errors import InvalidInputError
from ..inference.estimator import DepthEstimator
from .frames import FrameSource, InputFrame
from .pipeline import ReplayOptions, ReplaySummary, estimate, replay_bag

ROUNDS = 3  # best of: the machine may be shared


@dataclass(frozen=True)
class BenchmarkResult:
    """Frames per second of the bare estimator and of the replay over the same ``frames`` frames."""

    frames: int
    bare_fps: float  # best round
    replay_fps: float  # best round
    replay: ReplaySummary  # the last round (the one that wrote ``out``)

    def line(self) -> str:
        ratio = self.replay_fps / self.bare_fps if self.bare_fps > 0 else float("nan")
        return (f"benchmark over {self.frames} frames, best of {ROUNDS} rounds: bare DepthEstimator.estimate "
                f"{self.bare_fps:.1f} frames/s, infer-bag {self.replay_fps:.1f} frames/s (ratio {ratio:.2f})")


def _synchronise(estimator: DepthEstimator) -> None:
    if estimator.device.type == "cuda":
        torch.cuda.synchronize(estimator.device)


def benchmark(bag_path: str | Path, out: str | Path, estimator: DepthEstimator, options: ReplayOptions
              ) -> BenchmarkResult:
    """Time the bare estimator, then the replay (written to ``out``), over the same selected frames."""
    with BagReader(bag_path) as bag:
        source = FrameSource(bag, options.image_topic, options.camera_info_topic, needs_camera=options.needs_camera,
                             selection=options.selection, rectified=options.rectified)
        frames = [item for item in source.items() if isinstance(item, InputFrame)]
    if not frames:
        raise InvalidInputError(f"no decodable frame on {options.image_topic} to benchmark")
    outputs = options.plan.estimator_outputs()
    for _ in range(2):
        estimate(estimator, frames[:options.batch], outputs)
        estimate(estimator, frames[:1], outputs)
    _synchronise(estimator)
    bare_fps = replay_fps = 0.0
    scratch = Path(out).with_name(f"{Path(out).name}.benchmark-{os.getpid()}")
    for round_ in range(ROUNDS):
        started = time.perf_counter()
        for frame in frames:
            estimator.estimate(frame.rgb, camera=frame.camera, outputs=outputs)  # the lens too, as replayed
        _synchronise(estimator)
        bare_fps = max(bare_fps, len(frames) / (time.perf_counter() - started))
        last = round_ == ROUNDS - 1
        round_options = dataclasses.replace(options, progress=options.progress and last)
        summary = replay_bag(bag_path, out if last else scratch, estimator, round_options)
        if not last:
            shutil.rmtree(scratch, ignore_errors=True)
        replay_fps = max(replay_fps, summary.fps)
    return BenchmarkResult(frames=len(frames), bare_fps=bare_fps, replay_fps=replay_fps, replay=summary)

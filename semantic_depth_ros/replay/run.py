"""One ``infer-bag`` run as data: the model, the replay options and the stage settings of a run, and the function
that executes it. ``semantic-depth infer-bag`` runs one; each task of ``semantic-depth fleet`` runs one (the same
function, so a drive replayed by the fleet is the drive ``infer-bag`` writes).

A :class:`BagRun` is plain picklable data (no model, no stage state): a worker process builds the estimator from
it (:func:`estimator_for`, kept per process so a worker loads a model once) and a fresh chain of stages per bag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..inference.estimator import DepthEstimator
from ..pipeline import FrameStage
from ..pipeline.chain import frame_stages
from ..roadscale import RoadScaleSettings
from ..temporal import TemporalSettings, TemporalStage
from .pipeline import ReplayOptions, ReplaySummary, replay_bag


@dataclass(frozen=True)
class ModelSpec:
    """The estimator of a run: ``DepthEstimator``'s arguments."""

    checkpoint: str
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    num_threads: int | None = None

    def load(self) -> DepthEstimator:
        return DepthEstimator(self.checkpoint, device=self.device, precision=self.precision, backend=self.backend,
                              num_threads=self.num_threads)


@dataclass(frozen=True)
class BagRun:
    """Everything one replay needs besides its bag and output folder."""

    model: ModelSpec
    options: ReplayOptions
    road_scale: RoadScaleSettings | None = None
    temporal: TemporalSettings | None = None
    benchmark: bool = False  # also time the bare estimator (infer-bag --benchmark; no stages)

    def stages(self) -> list[FrameStage]:
        """A new chain of stages (each bag starts with fresh filter state), in the node's order."""
        return frame_stages(self.road_scale, self.temporal)


@dataclass
class BagRunResult:
    """What a run did: the replay's summary and the lines ``infer-bag`` prints (the last is the summary line)."""

    summary: ReplaySummary
    lines: list[str] = field(default_factory=list)


_LOADED: dict[ModelSpec, DepthEstimator] = {}


def estimator_for(model: ModelSpec) -> DepthEstimator:
    """The estimator of ``model``, loaded once per process (the last one asked for is kept)."""
    if model not in _LOADED:
        _LOADED.clear()
        _LOADED[model] = model.load()
    return _LOADED[model]


def run_bag(bag: str | Path, out: str | Path, run: BagRun, estimator: DepthEstimator | None = None
            ) -> BagRunResult:
    """Replay ``bag`` into ``out`` as ``run`` says (``estimator``: an already loaded one of ``run.model``)."""
    estimator = estimator if estimator is not None else run.model.load()
    stages = run.stages()
    lines: list[str] = []
    if run.options.rectified:
        lines.append(f"input {run.options.image_topic} taken as rectified (--input-rectified "
                     f"{run.options.input_rectified}): camera from camera_info P, no undistortion")
    if run.benchmark:
        from .benchmark import benchmark

        result = benchmark(bag, out, estimator, run.options)
        lines.append(result.line())
        summary = result.replay
    else:
        summary = replay_bag(bag, out, estimator, run.options, stages)
    for stage in stages:
        what = "temporal filter" if isinstance(stage, TemporalStage) else "scale from the road"
        lines.append(f"{what}: " + ", ".join(f"{key} {value}" for key, value in stage.diagnostics().items()))
    if summary.odometry_line:
        lines.append(summary.odometry_line)
    lines.append(summary.line())
    return BagRunResult(summary, lines)

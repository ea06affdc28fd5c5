"""``TemporalStage``: the temporal filter as a per-camera ``pipeline.stages.FrameStage``.

It reads the estimator's depth, confidence and semantic outputs and the frame's ``FrameContext`` (stamp, and
``pose`` = ``world_from_camera`` or None) and returns the outputs with fused depth and confidence, every other field
unchanged. Frames must come in stamp order; an older (or repeated) stamp restarts the filter. With
``temporal_filter: off`` the outputs pass through untouched.
"""

from __future__ import annotations

import dataclasses

from ..errors import InvalidInputError
from ..inference.estimator import EstimatorOutputs
from ..pipeline.stages import FrameContext
from .filter import TemporalFilter
from .settings import TemporalSettings


class TemporalStage:
    """Temporal fusion of one camera's depth (``FrameStage``); one instance per camera."""

    NEEDS: tuple[str, ...] = ("depth", "confidence", "semantic")
    name = "temporal"

    def __init__(self, settings: TemporalSettings) -> None:
        self.filter = TemporalFilter(settings)

    @property
    def enabled(self) -> bool:
        """Whether the filter is on (``temporal_filter`` not ``off``)."""
        return self.settings.enabled

    @property
    def needs(self) -> tuple[str, ...]:
        """The estimator outputs the filter reads; none while it is off (no head is computed for it)."""
        return self.NEEDS if self.settings.enabled else ()

    @property
    def settings(self) -> TemporalSettings:
        """The settings in use."""
        return self.filter.settings

    def configure(self, settings: TemporalSettings) -> None:
        """New settings from the next frame on (the node's run-time parameter change); the history is kept unless
        ``temporal_filter`` changes."""
        self.filter.configure(settings)

    def process(self, outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
        """This frame's outputs with fused ``depth`` and ``confidence`` (same sizes, dtypes and device)."""
        if not self.settings.enabled:
            return outputs
        missing = [name for name in self.NEEDS if getattr(outputs, name) is None]
        if missing:
            raise InvalidInputError(f"temporal stage needs the estimator outputs {', '.join(self.NEEDS)}; "
                                    f"missing: {', '.join(missing)}")
        depth, confidence = self.filter.update(outputs.depth, outputs.confidence, outputs.semantic,
                                               outputs.intrinsics, context.stamp_ns, context.pose)
        return dataclasses.replace(outputs, depth=depth.to(outputs.depth.dtype), confidence=confidence)

    def reset(self) -> None:
        """Forget the history (lifecycle deactivate/cleanup, a new replay)."""
        self.filter.reset()

    def diagnostics(self) -> dict[str, str]:
        """The filter's counters and last-frame numbers (``TemporalFilter.diagnostics``)."""
        return self.filter.diagnostics()

"""What one camera publishes, decided once: the output keys and the layout of its point cloud.

An :class:`OutputPlan` names the published outputs (keys of ``messages.OUTPUT_TOPICS``) and the
:class:`CloudLayout` of ``points``; both are frozen and validated when built, and the plan derives everything the
frame path needs from them: which estimator outputs to compute (``estimator_outputs``) and which outputs a frame
without intrinsics can still have (``servable``). The node builds its plans from its parameters, ``infer-bag``
from its options; ``CameraOutputs`` runs them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..geometry.pointcloud import (DEFAULT_POINT_FIELDS, check_drop_labels, check_point_fields, check_stride,
                                   layout_needs)
from ..inference.estimator import ESTIMATOR_OUTPUTS
from ..messages import NEEDS_INTRINSICS, OUTPUT_TOPICS

# the estimator outputs behind each published output with the default cloud layout (``OutputPlan`` adds the
# layout's own: labels need ``semantic``, ``xyzrgblc`` needs ``confidence``)
ESTIMATOR_NEEDS: dict[str, tuple[str, ...]] = {
    "depth": ("depth",), "depth_info": ("depth",), "points": ("depth", "image"), "depth_color": ("depth",),
    "semantic": ("semantic",), "semantic_color": ("semantic",), "confidence": ("confidence",),
}


@dataclass(frozen=True)
class CloudLayout:
    """The layout of ``points``: ``fields`` (a ``geometry.pointcloud.POINT_LAYOUTS`` name), the train ids whose
    points are NaN (``drop_labels``, sorted without repeats) and ``stride`` (keep every N-th row and column).

    InvalidInputError naming the value for an unknown layout, a label outside 0..18 or a stride below 1.
    """

    fields: str = DEFAULT_POINT_FIELDS
    drop_labels: tuple[int, ...] = ()
    stride: int = 1

    def __post_init__(self) -> None:
        check_point_fields(self.fields)
        object.__setattr__(self, "drop_labels", tuple(sorted(set(check_drop_labels(self.drop_labels)))))
        check_stride(self.stride)

    def needs(self) -> tuple[str, ...]:
        """Estimator outputs a cloud in this layout needs besides depth and colours (``semantic``, ``confidence``)."""
        return layout_needs(self.fields, self.drop_labels)


@dataclass(frozen=True)
class OutputPlan:
    """The outputs one camera publishes (``outputs``, keys of ``OUTPUT_TOPICS``, kept in that order) and ``cloud``.

    ``needs``: estimator outputs to compute besides those of ``outputs`` (``CameraOutputs`` adds its stages'
    needs); ``host_depth``: bring the depth to the host even when it is not published (``FrameMessages.depth``,
    for scoring). ConfigError naming an unknown output key or estimator output.
    """

    outputs: tuple[str, ...]
    cloud: CloudLayout = field(default_factory=CloudLayout)
    needs: tuple[str, ...] = ()
    host_depth: bool = False

    def __post_init__(self) -> None:
        unknown = [key for key in self.outputs if key not in OUTPUT_TOPICS]
        if unknown:
            raise ConfigError(f"output {unknown[0]!r} is not one of {', '.join(OUTPUT_TOPICS)}")
        strange = [name for name in self.needs if name not in ESTIMATOR_OUTPUTS]
        if strange:
            raise ConfigError(f"estimator output {strange[0]!r} is not one of {', '.join(ESTIMATOR_OUTPUTS)}")
        object.__setattr__(self, "outputs", tuple(key for key in OUTPUT_TOPICS if key in self.outputs))
        object.__setattr__(self, "needs", tuple(name for name in ESTIMATOR_OUTPUTS if name in self.needs))

    def estimator_outputs(self) -> tuple[str, ...]:
        """The estimator outputs (``ESTIMATOR_OUTPUTS`` order) that the outputs, ``needs`` and ``host_depth`` need."""
        wanted = {name for key in self.outputs for name in ESTIMATOR_NEEDS[key]}
        if "points" in self.outputs:
            wanted.update(self.cloud.needs())
        wanted.update(self.needs)
        if self.host_depth:
            wanted.add("depth")
        return tuple(name for name in ESTIMATOR_OUTPUTS if name in wanted)

    @property
    def needs_intrinsics(self) -> bool:
        """Whether some output needs the camera's intrinsics (``points``, ``depth_info``)."""
        return any(key in NEEDS_INTRINSICS for key in self.outputs)

    def servable(self, has_intrinsics: bool) -> OutputPlan:
        """This plan for a frame with or without intrinsics: without, the outputs that need them are left out."""
        if has_intrinsics or not self.needs_intrinsics:
            return self
        return dataclasses.replace(self, outputs=tuple(key for key in self.outputs if key not in NEEDS_INTRINSICS))

    def with_needs(self, needs: Sequence[str]) -> OutputPlan:
        """This plan also computing the estimator outputs ``needs``."""
        return dataclasses.replace(self, needs=(*self.needs, *needs))


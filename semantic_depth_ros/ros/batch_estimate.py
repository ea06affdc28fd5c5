"""One batch of the node's cameras through the estimator, with a failure kept to the camera that caused it."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidInputError
from ..inference.estimator import DepthEstimator, EstimatorOutputs
from .camera_channel import CameraChannel, PreparedFrame
from .params import NodeSettings


def estimate_prepared(estimator: DepthEstimator, settings: NodeSettings,
                      prepared: list[tuple[CameraChannel, PreparedFrame]],
                      on_error: Callable[[BaseException], None]) -> list[EstimatorOutputs | None]:
    """One batch for all frames (the union of their outputs). If the estimator refuses the batch, each frame
    runs alone, so that a frame it refuses is rejected for its own camera only and a frame it fails on (any
    other exception) is counted as failed for its own camera only and handed to ``on_error`` (None in their
    place)."""
    wanted = {name for _, ready in prepared for name in ready.estimator_outputs}
    frames = [(ready.rgb, ready.camera) for _, ready in prepared]
    defer = [channel.outputs.defers_upsampling for channel, _ in prepared]  # stages at the network's size
    if len(frames) > 1:
        try:
            return list(estimator.estimate_batch(frames, output_resolution=settings.output_resolution,
                                                 outputs=wanted, defer=defer))
        except InvalidInputError:
            pass
    results: list[EstimatorOutputs | None] = []
    for (channel, ready), frame, later in zip(prepared, frames, defer):
        try:
            results.append(estimator.estimate_batch([frame], output_resolution=settings.output_resolution,
                                                    outputs=ready.estimator_outputs, defer=later)[0])
        except InvalidInputError as exc:
            channel.reject(channel.image_topic, exc)
            results.append(None)
        except Exception as exc:  # noqa: BLE001 - e.g. a CUDA error: counted, logged, the next frame is tried
            channel.record_failure(exc)
            on_error(exc)
            results.append(None)
    return results

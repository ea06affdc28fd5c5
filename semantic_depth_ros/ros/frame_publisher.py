"""The depth node's publisher thread: serialized frames to DDS, off the worker thread.

The worker (network, stages, outputs, CDR bytes) hands each camera's serialized frame over with :meth:`submit`;
one thread publishes them (``CameraChannel.publish``: rcl with the GIL released, ``ros.serialized_publish``), so
the network of frame N+1 runs while frame N is written to DDS. One slot per camera (a ``BatchWorker``): a frame
still waiting when the camera's next one is handed over is replaced and counted as dropped, as the input side
does (latest frame wins). A frame publishes only while the activation generation it was received in is current
(``still_serving``, checked before each of its messages): a deactivate stops a frame already handed over.
"""

from __future__ import annotations

from collections.abc import Callable

from .batch_worker import BatchWorker
from .camera_channel import CameraChannel, SerializedFrame

ReadyFrame = tuple[CameraChannel, SerializedFrame, int]  # with the activation generation it was received in


class FramePublisher:
    """One publisher thread for every camera of a node; ``on_error`` gets (and logs) what publishing raised.

    ``still_serving(generation)``: whether the node is still active in the generation a frame was received in.
    """

    def __init__(self, still_serving: Callable[[int], bool], on_error: Callable[[BaseException], None]) -> None:
        self._still_serving = still_serving
        self._on_error = on_error
        self.worker: BatchWorker[str, ReadyFrame] = BatchWorker(self._publish, name="depth_publisher",
                                                                on_error=on_error)

    def submit(self, channel: CameraChannel, frame: SerializedFrame, generation: int) -> None:
        """Hand ``frame`` of ``channel`` to the thread (replacing, and counting as dropped, one still waiting)."""
        self.worker.submit(channel.name, (channel, frame, generation))

    def _publish(self, batch: list[tuple[str, ReadyFrame]]) -> None:
        """Publisher thread: each camera's newest frame; one stopped by a deactivate counts as dropped."""
        for name, (channel, frame, generation) in batch:
            try:
                served = channel.publish(frame, lambda: self._still_serving(generation))
            except Exception as exc:  # noqa: BLE001 - e.g. bookkeeping: the other cameras still publish
                channel.record_failure(exc)
                self._on_error(exc)
                continue
            if not served:
                self.worker.count_dropped(name)

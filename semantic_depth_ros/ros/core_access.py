"""Read-only views of the depth node's core, shared by the plain and the managed node (``ros.node``,
``ros.lifecycle_node``) for tools and tests."""

from __future__ import annotations

from typing import Any

from ..inference.estimator import DepthEstimator
from .batch_worker import BatchWorker
from .camera_channel import CameraChannel
from .diagnostics import NodeStats
from .node_core import ChannelFrame, DepthNodeCore
from .params import NodeSettings


class CoreAccess:
    """Read-only views of a host node's ``core`` used by tools and tests (the first camera for one-camera views)."""

    core: DepthNodeCore

    @property
    def estimator(self) -> DepthEstimator | None:
        return self.core.estimator

    @property
    def worker(self) -> BatchWorker[str, ChannelFrame] | None:
        return self.core.worker

    def dropped_of(self, name: str) -> int:
        """Frames of camera ``name`` dropped so far (before the network or before publishing)."""
        return self.core.dropped_of(name)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no frame waits, runs or is being published; True if that happened within ``timeout`` s."""
        return self.core.wait_idle(timeout)

    @property
    def stats(self) -> NodeStats:
        return self.core.stats

    @property
    def settings(self) -> NodeSettings:
        return self.core.settings

    @property
    def channels(self) -> dict[str, CameraChannel]:
        return self.core.channels

    @property
    def latest_camera_info(self) -> Any:
        """The first camera's newest camera_info, or None."""
        channel = next(iter(self.core.channels.values()), None)
        return None if channel is None else channel.latest_camera_info

    def subscribed_outputs(self) -> list[str]:
        """Output keys with subscribers on the first camera (every camera's: ``channels[name].subscribed_outputs``)."""
        channel = next(iter(self.core.channels.values()), None)
        return [] if channel is None else channel.subscribed_outputs()

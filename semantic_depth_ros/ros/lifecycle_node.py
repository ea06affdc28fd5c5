"""The managed (lifecycle) depth node: ``ros2 run semantic_depth_ros depth_lifecycle_node``.

Same parameters, topics and default node name (``depth_node``) as the plain node, and the same implementation
(``ros.node_core``), driven by ROS 2 managed-node transitions (``ros2 lifecycle set``, Nav2's lifecycle manager):

- unconfigured: parameters declared (static ones may still be set), nothing loaded, nothing published;
- ``configure``: validate the parameters, load the model, warm up, create the topics. On failure the one-line
  error the plain node exits with is logged, the transition returns FAILURE and the node stays unconfigured and
  alive (fix the parameter and configure again);
- ``activate``: serve frames; ``deactivate``: incoming frames are dropped (counted), the model stays loaded;
- ``cleanup``: topics destroyed, model and GPU memory released; ``shutdown`` from any state.

Outputs use plain publishers gated by the core's active state rather than lifecycle publishers, so that one
implementation serves both nodes; the effect on the graph is the same (nothing is published unless active).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from ..errors import SemanticDepthError
from .node import spin_node
from .core_access import CoreAccess
from .node_core import NODE_NAME, DepthNodeCore


class DepthLifecycleNode(CoreAccess, LifecycleNode):
    """Managed depth node; see the module docstring. Construction raises ConfigError only for a parameter override
    that violates its descriptor (the same error the plain node exits with)."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: object) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self.core = DepthNodeCore(self)
        except BaseException:
            self.destroy_node()
            raise

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            warmup_ms = self.core.configure()
        except SemanticDepthError as exc:
            self.core.cleanup()
            self.get_logger().error(f"error: {exc}")
            return TransitionCallbackReturn.FAILURE
        self.get_logger().info(f"configured: {self.core.describe(warmup_ms)}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.activate()
        self.get_logger().info("active: serving frames")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.deactivate()
        self.get_logger().info("inactive: incoming frames are dropped")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()
        self.get_logger().info("cleaned up: model released")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.core.cleanup()  # back to unconfigured with nothing loaded
        return TransitionCallbackReturn.SUCCESS

    def close(self) -> None:
        """Release everything and destroy the node (process exit)."""
        self.core.cleanup()
        self.destroy_node()


def run(argv: Sequence[str]) -> int:
    """Spin a ``DepthLifecycleNode`` until shutdown; 1 with ``error: ...`` when its parameters cannot be declared."""
    return spin_node(argv, DepthLifecycleNode)


def main_ros() -> int:
    """Entry point of ``ros2 run semantic_depth_ros depth_lifecycle_node`` (ROS arguments in ``sys.argv``)."""
    return run(sys.argv)

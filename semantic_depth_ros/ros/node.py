"""The depth node: camera images in; metric depth, semantics, confidence and point clouds out.

An adapter only: ``ros.node_core.DepthNodeCore`` holds the implementation (shared with the managed
``ros.lifecycle_node``), ``ros.camera_channel`` one camera's topics, ``ros.batch_worker`` the latest-frame-wins
hand-off to one worker thread, and the ROS-free message core (``semantic_depth_ros.messages``) what each output
holds. This plain node configures and activates itself in its constructor.

Run it with ``ros2 run semantic_depth_ros depth_node --ros-args -p model_path:=model.pt`` or
``semantic-depth node --model-path model.pt`` (``commands/node.py``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import rclpy
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node

from ..errors import SemanticDepthError
from .core_access import CoreAccess
from .node_core import NODE_NAME, DepthNodeCore

__all__ = ["DepthNode", "main_ros", "run", "spin_node"]


class DepthNode(CoreAccess, Node):
    """ROS 2 node around ``DepthEstimator``; see the README for topics and parameters.

    Construction declares and validates the parameters, loads the checkpoint, runs the warm-up and starts serving;
    it raises a ``SemanticDepthError`` (one line naming the file or parameter) when any of that fails, leaving no
    node behind.
    """

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs: object) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self.core = DepthNodeCore(self)
            warmup_ms = self.core.configure()
        except BaseException:
            self.destroy_node()  # leave no half-built node in the graph
            raise
        self.core.activate()
        self.get_logger().info(f"ready: {self.core.describe(warmup_ms)}")

    def close(self) -> None:
        """Stop the worker (finishing its current batch), release the model and destroy the node."""
        self.core.cleanup()
        self.destroy_node()


def spin_node(argv: Sequence[str], make_node: Callable[[], Node]) -> int:
    """Initialise rclpy with ``argv`` (ROS arguments included), spin ``make_node()`` until shutdown.

    Returns 0 after SIGINT or an external shutdown, 1 after printing ``error: <message>`` when the node cannot
    start (missing/corrupt/incompatible checkpoint, invalid parameter).
    """
    rclpy.init(args=list(argv))
    node: Node | None = None
    try:
        executor = SingleThreadedExecutor()
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except SemanticDepthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RuntimeError:
        # SIGTERM/SIGINT shut the context down while the executor was building its wait set: rclpy raises its
        # RCLError ("the given context is not valid") there instead of ExternalShutdownException. A shutdown.
        if rclpy.ok():
            raise
    finally:
        if node is not None:
            node.close()
        rclpy.try_shutdown()
    return 0


def run(argv: Sequence[str]) -> int:
    """``spin_node`` for the plain ``DepthNode``."""
    return spin_node(argv, DepthNode)


def main_ros() -> int:
    """Entry point of ``ros2 run semantic_depth_ros depth_node`` (ROS arguments in ``sys.argv``)."""
    return run(sys.argv)

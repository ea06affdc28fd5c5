"""Camera poses of a recorded drive for ``infer-bag --temporal``: the bag's ``nav_msgs/Odometry`` read up front
into one ``temporal.OdometryBuffer``, and the camera's mounting from ``--camera-extrinsic`` or ``/tf_static``.

The mounting is ``child_from_camera``: the image's optical frame (its ``header.frame_id``) in the odometry's
``child_frame_id``, as the node's ``camera_extrinsic`` parameter gives it. From ``/tf_static`` it is the path
between the two frames; it is looked up for the first image before any frame runs (one line naming the frames
when there is none), and for any other frame id when it first appears.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..data.bag_reader import TF_MESSAGE_TYPE, TF_STATIC_TOPIC, BagReader, tf_message_transforms
from ..data.tf_chain import TransformTree, normalize_frame
from ..errors import ConfigError, ExtractionError, InvalidInputError
from ..temporal import CameraPoses, OdometryBuffer
from ..temporal.odometry import REJECTED_HINT

LOGGER = logging.getLogger(__name__)
ODOMETRY_TYPE = "nav_msgs/msg/Odometry"


class BagPoses:
    """``world_from_camera`` at image stamps of one drive (see the module docstring)."""

    def __init__(self, bag: BagReader, odom_topic: str, image_conns: list[Any],
                 extrinsic: np.ndarray | None = None) -> None:
        connections = bag.connections(odom_topic, {ODOMETRY_TYPE})
        total = sum(int(c.msgcount) for c in connections)
        self.buffer = OdometryBuffer(capacity=max(2, total))
        self.received = self.rejected = 0
        self.child_frame = ""
        for message in bag.messages(connections):
            msg = message.msg
            try:
                self.buffer.add_message(msg)
            except InvalidInputError as exc:
                self.rejected += 1
                if self.rejected == 1:
                    stamp = msg.header.stamp
                    LOGGER.warning("rejected %s message at stamp %d.%09d: %s; %s", odom_topic, stamp.sec,
                                   stamp.nanosec, exc, REJECTED_HINT)
                continue
            self.received += 1
            self.child_frame = self.child_frame or normalize_frame(str(msg.child_frame_id))
        if not self.received:
            raise ConfigError(f"--odom-topic {odom_topic!r} has no usable odometry message ({self.rejected} rejected)")
        self._extrinsic = extrinsic
        self._tree: TransformTree | None = None
        if extrinsic is None:
            self._tree = TransformTree()
            tf_conns = bag.connections(TF_STATIC_TOPIC, {TF_MESSAGE_TYPE}, required=False)
            for message in bag.messages(tf_conns) if tf_conns else ():  # no connections would read every topic
                for parent, child, transform in tf_message_transforms(message.msg):
                    self._tree.add(parent, child, transform)
        self._poses: dict[str, CameraPoses] = {}
        first = next(iter(bag.messages(image_conns)), None)
        if first is not None:
            self._camera_poses(str(first.msg.header.frame_id))

    def _camera_poses(self, frame_id: str) -> CameraPoses:
        """The poses of the camera whose images carry ``frame_id`` (its mounting resolved once)."""
        poses = self._poses.get(frame_id)
        if poses is None:
            poses = self._poses[frame_id] = CameraPoses(self.buffer, self._mounting(frame_id))
        return poses

    def _mounting(self, frame_id: str) -> np.ndarray:
        """``child_from_camera`` of the image frame ``frame_id`` (ConfigError naming the frames)."""
        if self._extrinsic is not None:
            return self._extrinsic
        if not self.child_frame or not normalize_frame(frame_id):
            raise ConfigError(f"odometry child frame {self.child_frame!r} or image frame {frame_id!r} is empty: pass "
                              "--camera-extrinsic")
        try:
            return self._tree.lookup(self.child_frame, frame_id)  # type: ignore[union-attr]
        except ExtractionError as exc:
            raise ConfigError(f"no transform from image frame {frame_id!r} to odometry child frame "
                              f"{self.child_frame!r} in {TF_STATIC_TOPIC} ({exc}); pass --camera-extrinsic") from None

    def pose_at(self, stamp_ns: int, frame_id: str) -> np.ndarray | None:
        """``world_from_camera`` (4x4) of the image ``frame_id`` at ``stamp_ns``, or None (counted)."""
        return self._camera_poses(frame_id).pose_at(stamp_ns)

    @property
    def misses(self) -> int:
        """Frames that got no pose."""
        return sum(poses.misses for poses in self._poses.values())

    def line(self) -> str:
        """What the odometry gave, for the command's output."""
        return (f"odometry: {self.received} poses, {self.rejected} rejected; frames without a pose {self.misses}")

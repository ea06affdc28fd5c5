"""Camera poses from odometry: a bounded, thread-safe buffer of odometry poses, interpolated at image stamps, and
the camera's mounting (``camera_extrinsic``).

The buffer holds ``world_from_child`` poses (``nav_msgs/Odometry``: ``header.frame_id`` = world, ``child_frame_id`` =
child, ``pose.pose`` = the child's position and orientation in the world) as plain numbers, so no ROS type is
needed here. A camera pose is ``world_from_camera = world_from_child(t) @ child_from_camera``
(:func:`world_from_camera`), where ``child_from_camera`` comes from ``camera_extrinsic`` =
[x, y, z, qx, qy, qz, qw]: the camera *optical* frame (x right, y down, z forward) in the child frame, metres.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..data.tf_chain import make_transform, quaternion_to_matrix, rigid_transform
from ..errors import ConfigError, InvalidInputError

REJECTED_HINT = "frames near it run without a pose"  # what a refused odometry sample means, for its log line
QUATERNION_TOLERANCE = 1e-3  # largest accepted | |q| - 1 | of an orientation (it is then normalised)
DEFAULT_CAPACITY = 400  # samples kept: 4 s of 100 Hz odometry
DEFAULT_MAX_INTERVAL_S = 0.5  # two samples farther apart than this are not interpolated between


@dataclass(frozen=True)
class PoseSample:
    """One odometry pose: ``stamp_ns`` (int ns), ``position`` (3,) metres, ``orientation`` (4,) unit quaternion
    x, y, z, w, both float64, of the child frame in the world."""

    stamp_ns: int
    position: np.ndarray
    orientation: np.ndarray


def _finite_vector(name: str, values: Sequence[float], size: int, error: type[Exception]) -> np.ndarray:
    """``values`` as a float64 vector of ``size`` finite numbers, or ``error`` naming ``name`` and the values."""
    try:
        vector = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise error(f"{name} = {values!r} is not a list of numbers") from None
    if vector.size != size:
        raise error(f"{name} has {vector.size} values, expected {size}")
    if not np.all(np.isfinite(vector)):
        raise error(f"{name} = {vector.tolist()} must be finite")
    return vector


def _unit_quaternion(name: str, values: Sequence[float], tolerance: float, error: type[Exception]) -> np.ndarray:
    """A quaternion (x, y, z, w) whose norm is within ``tolerance`` of 1, normalised; else ``error`` naming it."""
    quaternion = _finite_vector(name, values, 4, error)
    norm = float(np.linalg.norm(quaternion))
    if abs(norm - 1.0) > tolerance:
        raise error(f"{name} = {quaternion.tolist()} is not a unit quaternion (norm {norm:.6g})")
    return quaternion / norm


def slerp(q0: np.ndarray, q1: np.ndarray, fraction: float) -> np.ndarray:
    """Spherical interpolation of unit quaternions (x, y, z, w) along the shorter arc; ``fraction`` in [0, 1]."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # q and -q are the same rotation: take the shorter way
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly equal: normalised lerp is exact to float precision and avoids dividing by sin ~ 0
        q = q0 + fraction * (q1 - q0)
        return q / np.linalg.norm(q)
    angle = math.acos(min(dot, 1.0))
    sin_angle = math.sin(angle)
    return (math.sin((1.0 - fraction) * angle) * q0 + math.sin(fraction * angle) * q1) / sin_angle


class OdometryBuffer:
    """The last ``capacity`` odometry poses in stamp order; :meth:`pose_at` interpolates them. Thread-safe: the
    odometry callback may :meth:`add` while the worker calls :meth:`pose_at` (or :meth:`wait_for`).

    ``max_interval_s``: samples farther apart than this are not interpolated between (the stamp gets no pose).
    A sample refused by :meth:`add` (NaN, a non-unit quaternion) is remembered by its stamp: no pose is
    interpolated across it, so the frames it would have posed run without a pose instead of a guessed one.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, max_interval_s: float = DEFAULT_MAX_INTERVAL_S,
                 quaternion_tolerance: float = QUATERNION_TOLERANCE) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 2:
            raise ConfigError(f"odometry buffer capacity = {capacity!r} must be an integer >= 2")
        if not (isinstance(max_interval_s, (int, float)) and math.isfinite(max_interval_s) and max_interval_s > 0):
            raise ConfigError(f"odometry max_interval_s = {max_interval_s!r} must be a positive number of seconds")
        self.capacity = capacity
        self.max_interval_ns = round(max_interval_s * 1e9)
        self.quaternion_tolerance = float(quaternion_tolerance)
        self._stamps: list[int] = []
        self._samples: list[PoseSample] = []
        self._rejected: list[int] = []  # stamps of refused samples, sorted, at most ``capacity``
        self._newest_seen = -1  # newest stamp of any sample offered, accepted or refused
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)

    def add(self, stamp_ns: int, position: Sequence[float], orientation: Sequence[float]) -> None:
        """Add the pose at ``stamp_ns`` (position x y z metres, orientation x y z w); samples may arrive out of order
        (a repeated stamp replaces its sample). InvalidInputError naming the value for a negative stamp, a
        non-finite number or a quaternion whose norm is not 1 within ``quaternion_tolerance``."""
        if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, (int, np.integer)) or stamp_ns < 0:
            raise InvalidInputError(f"odometry stamp {stamp_ns!r} must be a non-negative integer of nanoseconds")
        try:
            sample = PoseSample(
                stamp_ns=int(stamp_ns),
                position=_finite_vector("odometry position", position, 3, InvalidInputError),
                orientation=_unit_quaternion("odometry orientation", orientation, self.quaternion_tolerance,
                                             InvalidInputError),
            )
        except InvalidInputError:
            self._reject(int(stamp_ns))
            raise
        with self._arrived:
            self._newest_seen = max(self._newest_seen, sample.stamp_ns)
            self._arrived.notify_all()
            index = bisect.bisect_left(self._stamps, sample.stamp_ns)
            if index < len(self._stamps) and self._stamps[index] == sample.stamp_ns:
                self._samples[index] = sample
                return
            self._stamps.insert(index, sample.stamp_ns)
            self._samples.insert(index, sample)
            if len(self._stamps) > self.capacity:
                del self._stamps[0], self._samples[0]

    def add_message(self, msg: Any) -> int:
        """Add a ``nav_msgs/Odometry`` message (an rclpy or a rosbags one: the fields have the same names) at its
        header stamp; the stamp in nanoseconds. InvalidInputError as :meth:`add`."""
        stamp, pose = msg.header.stamp, msg.pose.pose
        stamp_ns = int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
        self.add(stamp_ns, (pose.position.x, pose.position.y, pose.position.z),
                 (pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w))
        return stamp_ns

    def _reject(self, stamp_ns: int) -> None:
        """Remember a refused sample's stamp (see the class docstring)."""
        with self._arrived:
            bisect.insort(self._rejected, stamp_ns)
            if len(self._rejected) > self.capacity:
                del self._rejected[0]
            self._newest_seen = max(self._newest_seen, stamp_ns)
            self._arrived.notify_all()

    def wait_for(self, stamp_ns: int, timeout_s: float) -> bool:
        """Block until a sample (accepted or refused) at or after ``stamp_ns`` was offered, at most ``timeout_s``
        seconds; whether one was. Odometry often arrives a little after the image it should pose. A stream whose
        newest sample is more than ``max_interval_s`` older than ``stamp_ns`` has stopped: no wait."""
        with self._arrived:
            if 0 <= self._newest_seen < stamp_ns - self.max_interval_ns:
                return False
            return self._arrived.wait_for(lambda: self._newest_seen >= stamp_ns, timeout=max(timeout_s, 0.0))

    def pose_at(self, stamp_ns: int) -> np.ndarray | None:
        """4x4 float64 ``world_from_child`` at ``stamp_ns``: linear interpolation of the position and slerp of the
        orientation between the two samples around it; None when the stamp is outside the buffer's time span or
        the samples around it are more than ``max_interval_s`` apart or a refused sample lies between them (the
        caller counts such frames)."""
        with self._lock:
            index = bisect.bisect_left(self._stamps, stamp_ns)
            if index < len(self._stamps) and self._stamps[index] == stamp_ns:
                before = after = self._samples[index]
            elif 0 < index < len(self._stamps):
                before, after = self._samples[index - 1], self._samples[index]
            else:
                return None
            refused = bisect.bisect_left(self._rejected, before.stamp_ns)
            if refused < len(self._rejected) and self._rejected[refused] <= after.stamp_ns and before is not after:
                return None
        if before is after:
            return make_transform(before.position, before.orientation)
        span = after.stamp_ns - before.stamp_ns
        if span > self.max_interval_ns:
            return None
        fraction = (stamp_ns - before.stamp_ns) / span
        position = before.position + fraction * (after.position - before.position)
        orientation = slerp(before.orientation, after.orientation, fraction)
        return rigid_transform(quaternion_to_matrix(*orientation), position)

    def time_span(self) -> tuple[int, int] | None:
        """(oldest, newest) stamp in nanoseconds, or None when empty."""
        with self._lock:
            return (self._stamps[0], self._stamps[-1]) if self._stamps else None

    def clear(self) -> None:
        """Forget every sample."""
        with self._lock:
            self._stamps.clear()
            self._samples.clear()
            self._rejected.clear()
            self._newest_seen = -1

    def __len__(self) -> int:
        with self._lock:
            return len(self._stamps)


def parse_camera_extrinsic(values: Sequence[float]) -> np.ndarray:
    """``child_from_camera`` (4x4 float64) from ``camera_extrinsic`` = [x, y, z, qx, qy, qz, qw]: the camera optical
    frame's position (metres) and orientation (unit quaternion) in the odometry child frame. ConfigError naming
    the parameter and the values for a wrong length, non-finite numbers or a non-unit quaternion."""
    numbers = _finite_vector("camera_extrinsic", values, 7, ConfigError)
    quaternion = _unit_quaternion("camera_extrinsic quaternion (qx, qy, qz, qw)", numbers[3:], QUATERNION_TOLERANCE,
                                  ConfigError)
    return make_transform(numbers[:3], quaternion)


def world_from_camera(world_from_child: np.ndarray, child_from_camera: np.ndarray) -> np.ndarray:
    """The camera optical frame's pose in the world: ``world_from_child @ child_from_camera`` (4x4 float64)."""
    return np.asarray(world_from_child, dtype=np.float64) @ np.asarray(child_from_camera, dtype=np.float64)


class CameraPoses:
    """``world_from_camera`` at image stamps from an :class:`OdometryBuffer` and the camera's mounting; counts the
    stamps that got no pose (``misses``). Thread-safe like the buffer."""

    def __init__(self, buffer: OdometryBuffer, child_from_camera: np.ndarray) -> None:
        self.buffer = buffer
        self.child_from_camera = np.asarray(child_from_camera, dtype=np.float64)
        self._lock = threading.Lock()
        self.misses = 0

    def pose_at(self, stamp_ns: int) -> np.ndarray | None:
        """``world_from_camera`` at ``stamp_ns`` (4x4 float64), or None (counted in ``misses``)."""
        world_from_child = self.buffer.pose_at(stamp_ns)
        if world_from_child is None:
            with self._lock:
                self.misses += 1
            return None
        return world_from_camera(world_from_child, self.child_from_camera)

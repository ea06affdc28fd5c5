"""Rigid transforms: building and inverting 4x4 matrices, static transform trees (``/tf_static``), extrinsics.

A transform ``T`` from frame ``source`` to frame ``target`` is a 4x4 matrix with ``p_target = T @ p_source``
(homogeneous, metres). A tf message ``parent -> child`` stores ``T_parent_child`` (``p_parent = T @ p_child``);
like tf2, each child has one parent (a later message for the same child replaces the earlier one).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from semantic_depth_ros.errors import ExtractionError


def quaternion_to_matrix(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    """3x3 rotation matrix of the quaternion (x, y, z, w); normalised first, zero quaternion rejected."""
    q = np.array([qx, qy, qz, qw], dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-9:
        raise ExtractionError(f"invalid quaternion (x, y, z, w) = {q.tolist()}")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def matrix_to_quaternion(rotation: np.ndarray) -> tuple[float, float, float, float]:
    """The unit quaternion (x, y, z, w), w >= 0, of a 3x3 rotation matrix (the inverse of quaternion_to_matrix)."""
    m = np.asarray(rotation, dtype=np.float64)
    # the largest of the four squared components first (numerically safe), the others from it
    squares = np.array([1 + m[0, 0] - m[1, 1] - m[2, 2], 1 - m[0, 0] + m[1, 1] - m[2, 2],
                        1 - m[0, 0] - m[1, 1] + m[2, 2], 1 + m[0, 0] + m[1, 1] + m[2, 2]])
    k = int(np.argmax(squares))
    big = 0.5 * np.sqrt(squares[k])
    pairs = {"xy": (m[0, 1] + m[1, 0]), "xz": (m[0, 2] + m[2, 0]), "yz": (m[1, 2] + m[2, 1]),
             "xw": (m[2, 1] - m[1, 2]), "yw": (m[0, 2] - m[2, 0]), "zw": (m[1, 0] - m[0, 1])}
    names = "xyzw"
    q = np.empty(4)
    q[k] = big
    for j in range(4):
        if j != k:
            q[j] = pairs["".join(sorted(names[k] + names[j], key=names.index))] / (4.0 * big)
    q *= 1.0 if q[3] >= 0 else -1.0
    return tuple(float(v) for v in q)


def rotation_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """3x3 rotation Rz(yaw) @ Ry(pitch) @ Rx(roll), radians (ROS fixed-axis roll, pitch, yaw; positive pitch tilts
    x towards -z)."""
    cr, sr, cp, sp, cyw, syw = np.cos(roll), np.sin(roll), np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cyw, -syw, 0], [syw, cyw, 0], [0, 0, 1]])
    return rz @ ry @ rx


def rigid_transform(rotation: np.ndarray, translation: Sequence[float] | np.ndarray) -> np.ndarray:
    """4x4 float64 transform with the 3x3 ``rotation`` and the ``translation`` (x, y, z metres)."""
    transform = np.eye(4)
    transform[:3, :3] = rotation
    transform[:3, 3] = translation
    return transform


def invert_rigid(transform: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform (``R.T``, ``-R.T @ t``; exact for rotations, unlike a general inverse)."""
    rotation, translation = transform[:3, :3], transform[:3, 3]
    return rigid_transform(rotation.T, -rotation.T @ translation)


def make_transform(translation: Sequence[float], quaternion: Sequence[float]) -> np.ndarray:
    """4x4 transform from a translation (x, y, z metres) and a quaternion (x, y, z, w)."""
    return rigid_transform(quaternion_to_matrix(*quaternion), np.asarray(translation, dtype=np.float64))


def parse_extrinsic(values: Sequence[float]) -> np.ndarray:
    """4x4 LiDAR->camera transform from 16 numbers (row-major matrix) or 7 (x y z qx qy qz qw)."""
    numbers = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(numbers)):
        raise ExtractionError(f"extrinsic contains non-finite numbers: {numbers.tolist()}")
    if numbers.size == 7:
        return make_transform(numbers[:3], numbers[3:])
    if numbers.size != 16:
        raise ExtractionError(
            f"extrinsic needs 16 numbers (row-major 4x4) or 7 (x y z qx qy qz qw), got {numbers.size}"
        )
    transform = numbers.reshape(4, 4)
    if not np.allclose(transform[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ExtractionError(f"extrinsic last row must be 0 0 0 1, got {transform[3].tolist()}")
    rotation = transform[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or np.linalg.det(rotation) <= 0:
        raise ExtractionError(f"extrinsic rotation block is not a rotation matrix: {rotation.tolist()}")
    return transform


def normalize_frame(frame_id: str) -> str:
    """tf2 frame name: no leading slash (ROS 1 bags often write ``/base_link``)."""
    return frame_id.lstrip("/")


class TransformTree:
    """A tree of static transforms; :meth:`lookup` composes the path between any two frames."""

    def __init__(self) -> None:
        self._parent: dict[str, tuple[str, np.ndarray]] = {}

    def add(self, parent: str, child: str, transform: np.ndarray) -> None:
        """Record ``T_parent_child`` (4x4, ``p_parent = T @ p_child``)."""
        parent, child = normalize_frame(parent), normalize_frame(child)
        if parent == child:
            raise ExtractionError(f"transform from frame {child!r} to itself")
        self._parent[child] = (parent, np.asarray(transform, dtype=np.float64))

    def frames(self) -> list[str]:
        """All frame names, sorted."""
        names = set(self._parent)
        names.update(parent for parent, _ in self._parent.values())
        return sorted(names)

    def _neighbours(self) -> dict[str, list[tuple[str, np.ndarray]]]:
        """Undirected adjacency: frame -> [(next frame, T_next_frame)]."""
        graph: dict[str, list[tuple[str, np.ndarray]]] = {}
        for child, (parent, transform) in self._parent.items():
            graph.setdefault(child, []).append((parent, transform))
            graph.setdefault(parent, []).append((child, np.linalg.inv(transform)))
        return graph

    def lookup(self, target: str, source: str) -> np.ndarray:
        """4x4 ``T_target_source`` (``p_target = T @ p_source``), composed along the tree path."""
        target, source = normalize_frame(target), normalize_frame(source)
        if target == source:
            return np.eye(4)
        graph = self._neighbours()
        known = ", ".join(self.frames()) or "none"
        for frame in (source, target):
            if frame not in graph:
                raise ExtractionError(f"frame {frame!r} not in the transform tree (frames: {known})")
        # Breadth-first search from the source; each reached frame stores T_frame_source.
        reached: dict[str, np.ndarray] = {source: np.eye(4)}
        queue = deque([source])
        while queue:
            frame = queue.popleft()
            for neighbour, step in graph[frame]:
                if neighbour not in reached:
                    reached[neighbour] = step @ reached[frame]
                    queue.append(neighbour)
        if target not in reached:
            raise ExtractionError(f"no transform path from frame {source!r} to {target!r} (frames: {known})")
        return reached[target]

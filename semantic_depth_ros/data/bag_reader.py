"""Read ROS 1 ``.bag`` files and ROS 2 bags (sqlite3 or mcap) without a ROS install, and decode their messages.

Opened with ``rosbags``' ``AnyReader``; messages come out deserialized (rosbags' own message classes, whose fields
follow the bag's ROS generation: ``k``/``d`` in ROS 2, ``K``/``D`` in ROS 1 CameraInfo). The decoders turn them
into arrays: images to HxWx3 uint8 RGB (through :mod:`semantic_depth_ros.messages.decode`, the decoders the node
uses), ``PointCloud2`` to Nx3 points, ``CameraInfo`` to a
:class:`~semantic_depth_ros.geometry.intrinsics.CameraModel`, ``TFMessage`` to 4x4 transforms. Every failure is a
one-line ``ExtractionError`` (bag, topic) or ``InvalidInputError`` (message content).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.typesys import Stores, get_typestore

from semantic_depth_ros.data.tf_chain import make_transform
from semantic_depth_ros.errors import ExtractionError, InvalidInputError
from semantic_depth_ros.messages.decode import compressed_to_rgb, image_to_rgb

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
IMAGE_TYPES = frozenset({IMAGE_TYPE, COMPRESSED_IMAGE_TYPE})
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE_TYPE = "tf2_msgs/msg/TFMessage"
TF_TOPIC = "/tf"
TF_STATIC_TOPIC = "/tf_static"

# PointField datatype -> numpy kind; x, y, z must be one of these.
_FLOAT_FIELDS = {7: "f4", 8: "f8"}


@dataclass(frozen=True)
class BagMessage:
    """One deserialized message: its ``topic``, ROS 2 style ``msgtype``, bag receive time (ns) and content."""

    topic: str
    msgtype: str
    bag_time_ns: int
    msg: Any


class BagReader:
    """An open bag (use as a context manager): its topics and their messages, deserialized in bag-time order."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ExtractionError(f"bag not found: {self.path}")
        try:
            self._reader = AnyReader([self.path], default_typestore=get_typestore(Stores.LATEST))
            self._reader.open()
        except AnyReaderError as err:
            raise ExtractionError(f"cannot read bag {self.path}: {err}") from None

    def __enter__(self) -> "BagReader":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the bag's files."""
        self._reader.close()

    @property
    def start_time_ns(self) -> int:
        """Bag time (ns) of the bag's first message."""
        return int(self._reader.start_time)

    @property
    def end_time_ns(self) -> int:
        """Bag time (ns) just after the bag's last message (rosbags' end time)."""
        return int(self._reader.end_time)

    def topics(self) -> dict[str, str]:
        """Topic name -> message type of every connection in the bag."""
        return {c.topic: c.msgtype for c in self._reader.connections}

    def connections(self, topic: str, allowed: Iterable[str], required: bool = True) -> list[Any]:
        """The connections of ``topic``, checked to carry one of the ``allowed`` types.

        ExtractionError when the topic is absent (unless ``required`` is False: then []) or has another type.
        """
        allowed = set(allowed)
        found = [c for c in self._reader.connections if c.topic == topic]
        if not found:
            if not required:
                return []
            available = ", ".join(sorted(self.topics())) or "none"
            raise ExtractionError(f"topic {topic!r} not found in bag {self.path} (topics: {available})")
        for connection in found:
            if connection.msgtype not in allowed:
                expected = " or ".join(sorted(allowed))
                raise ExtractionError(f"topic {topic!r} has type {connection.msgtype}, expected {expected}")
        return found

    def messages(self, connections: Sequence[Any]) -> Iterator[BagMessage]:
        """The messages of ``connections`` (from :meth:`connections`) in bag-time order, deserialized."""
        try:
            for connection, bag_time, raw in self._reader.messages(connections=list(connections)):
                msg = self._reader.deserialize(raw, connection.msgtype)
                yield BagMessage(connection.topic, connection.msgtype, int(bag_time), msg)
        except AnyReaderError as err:
            raise ExtractionError(f"cannot read bag {self.path}: {err}") from None

    def raw_messages(self, connections: Sequence[Any]) -> Iterator[tuple[Any, int, bytes]]:
        """(connection, bag time ns, serialized bytes) of ``connections`` in bag-time order; decode the ones
        needed with :meth:`deserialize` (cheaper than :meth:`messages` when most are skipped)."""
        try:
            yield from self._reader.messages(connections=list(connections))
        except AnyReaderError as err:
            raise ExtractionError(f"cannot read bag {self.path}: {err}") from None

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        """The message of type ``msgtype`` serialized in ``raw``."""
        return self._reader.deserialize(raw, msgtype)


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def header_stamp_ns(msg: Any, bag_time_ns: int) -> int:
    """The message's header stamp (ns), or its bag receive time when the stamp is zero (drivers that leave it)."""
    stamp = stamp_to_ns(msg.header.stamp)
    return stamp if stamp != 0 else int(bag_time_ns)


def decode_bag_image(msg: Any, msgtype: str) -> np.ndarray:
    """HxWx3 uint8 RGB of a bag's Image or CompressedImage message, by its ``msgtype`` (InvalidInputError when
    undecodable)."""
    return compressed_to_rgb(msg) if msgtype == COMPRESSED_IMAGE_TYPE else image_to_rgb(msg)


def pointcloud2_to_xyz(
    fields: Sequence[Any],
    *,
    height: int,
    width: int,
    point_step: int,
    row_step: int,
    is_bigendian: bool,
    data: Any,
) -> np.ndarray:
    """Nx3 float64 x, y, z (metres) of a PointCloud2 (organised or not), non-finite points dropped.

    ``fields`` are PointField-like objects (name, offset, datatype); x, y, z must be FLOAT32 or FLOAT64.
    Sizes are validated against the data length before the buffer is viewed (no copy, no per-point loop).
    """
    buffer = data.reshape(-1).view(np.uint8) if isinstance(data, np.ndarray) else np.frombuffer(data, dtype=np.uint8)
    height, width, point_step, row_step = int(height), int(width), int(point_step), int(row_step)
    if height < 0 or width < 0 or point_step <= 0:
        raise InvalidInputError(f"PointCloud2 has invalid height {height}, width {width} or point_step {point_step}")
    by_name = {f.name: f for f in fields}
    byte_order = ">" if is_bigendian else "<"
    formats, offsets = [], []
    for name in ("x", "y", "z"):
        if name not in by_name:
            raise InvalidInputError(f"PointCloud2 has no field {name!r} (fields: {', '.join(by_name) or 'none'})")
        point_field = by_name[name]
        kind = _FLOAT_FIELDS.get(int(point_field.datatype))
        if kind is None:
            raise InvalidInputError(
                f"PointCloud2 field {name!r} has datatype {point_field.datatype}, expected 7 (FLOAT32) or 8 (FLOAT64)"
            )
        offset = int(point_field.offset)
        if offset < 0 or offset + int(kind[1]) > point_step:
            raise InvalidInputError(
                f"PointCloud2 field {name!r} at offset {offset} does not fit in point_step {point_step}"
            )
        formats.append(byte_order + kind)
        offsets.append(offset)
    if height * width == 0:
        return np.zeros((0, 3), dtype=np.float64)
    if row_step < width * point_step:
        raise InvalidInputError(
            f"PointCloud2 row_step {row_step} is smaller than width {width} x point_step {point_step}"
        )
    if row_step * height > buffer.size:
        raise InvalidInputError(
            f"PointCloud2 row_step {row_step} x height {height} exceeds the {buffer.size} data bytes"
        )
    dtype = np.dtype({"names": ["x", "y", "z"], "formats": formats, "offsets": offsets, "itemsize": point_step})
    points = np.ndarray(shape=(height, width), dtype=dtype, buffer=buffer, strides=(row_step, point_step))
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1).reshape(-1, 3).astype(np.float64)
    return xyz[np.all(np.isfinite(xyz), axis=1)]


def cloud_msg_to_xyz(msg: Any) -> np.ndarray:
    """Nx3 float64 points of a PointCloud2 message (see :func:`pointcloud2_to_xyz`)."""
    return pointcloud2_to_xyz(msg.fields, height=msg.height, width=msg.width, point_step=msg.point_step,
                              row_step=msg.row_step, is_bigendian=msg.is_bigendian, data=msg.data)


def tf_message_transforms(msg: Any) -> list[tuple[str, str, np.ndarray]]:
    """(parent, child, T_parent_child 4x4) of each transform in a TFMessage (``/tf`` or ``/tf_static``)."""
    out = []
    for item in msg.transforms:
        t, q = item.transform.translation, item.transform.rotation
        try:
            transform = make_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except ExtractionError as err:
            raise ExtractionError(f"transform {item.header.frame_id} -> {item.child_frame_id}: {err}") from None
        out.append((item.header.frame_id, item.child_frame_id, transform))
    return out

"""Write the replay's ROS 2 bag: message-core fields -> CDR bytes (``messages.cdr``, the node's serializer), into a
folder moved into place at the end.

A frame's bytes here are the bytes the node publishes for it (``messages.to_cdr``), equal to rosbags' CDR
serializer and to ``rclpy.serialization.serialize_message`` of the equivalent message (tested). Connections use
the ROS 2 Jazzy typestore's definitions; the output bag is mcap (default) or sqlite3, rosbag2 metadata version 9.

Atomicity: the bag is written to ``<out>.partial-<pid>/<out name>`` beside ``out`` (so its storage file already
has its final name, ``<out name>.mcap``, whoever wrote it) and renamed to ``out`` by :meth:`finish`; :meth:`abort`
(or an exception inside the ``with`` block) deletes it. A process killed outright leaves only the
``.partial-<pid>`` folder, never a bag under the final name.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..errors import ConfigError
from ..messages import CloudFields, ImageFields, MessageHeader, OutputFields, to_cdr

STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
IMAGE = "sensor_msgs/msg/Image"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def msgtype_of(fields: OutputFields) -> str:
    """The ROS 2 message type of message-core fields."""
    if isinstance(fields, ImageFields):
        return IMAGE
    return POINTCLOUD2 if isinstance(fields, CloudFields) else CAMERA_INFO


def header(stamp_sec: int, stamp_nanosec: int, frame_id: str) -> MessageHeader:
    """The output header: the input image's stamp and frame_id (from a ROS 1 or ROS 2 bag alike)."""
    return MessageHeader(int(stamp_sec), int(stamp_nanosec), str(frame_id))


def serialize(head: MessageHeader, fields: OutputFields) -> bytes:
    """CDR bytes of the message of ``fields`` under ``head``: the message core's, the very bytes the node
    publishes."""
    return to_cdr(fields, head)


def partial_path(out: Path) -> Path:
    """Where the bag is written before it is moved to ``out``: ``<out>.partial-<pid>/<out name>`` beside it (the
    storage file is named after its folder: the same name for every writer of ``out``)."""
    return out.with_name(f"{out.name}.partial-{os.getpid()}") / out.name


def check_destination(out: Path, overwrite: bool) -> None:
    """ConfigError when ``out`` exists (and ``overwrite`` is off) or its parent folder is missing or not writable."""
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ConfigError(f"--out {out} already exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: folder {out.parent} is not writable")


class OutputBag:
    """A ROS 2 bag being written under :func:`partial_path`; :meth:`finish` moves it to ``out``.

    ``connection(topic, msgtype, ...)`` registers a topic once (Jazzy definitions unless ``msgdef``/``rihs01`` of
    an input connection are given); ``write(topic, time_ns, cdr)`` appends serialized bytes.
    """

    def __init__(self, out: str | os.PathLike[str], *, storage: str = "mcap", overwrite: bool = False) -> None:
        if storage not in STORAGES:
            raise ConfigError(f"--storage {storage!r} is not one of {', '.join(STORAGES)}")
        self.out = Path(out)
        check_destination(self.out, overwrite)
        self.overwrite = overwrite
        self.path = partial_path(self.out)
        if self.path.parent.exists():
            shutil.rmtree(self.path.parent)
        self.path.parent.mkdir()
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections: dict[str, Any] = {}
        self._open = True
        self.messages = 0

    def __enter__(self) -> "OutputBag":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._open or self.path.parent.exists():
            self.abort()

    def connection(self, topic: str, msgtype: str, *, msgdef: str | None = None, rihs01: str | None = None,
                   qos: Any = ()) -> None:
        """Register ``topic`` with ``msgtype`` (no-op when already registered)."""
        if topic in self._connections:
            return
        if msgdef is None:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, typestore=TYPESTORE,
                                                                   offered_qos_profiles=qos)
        else:
            self._connections[topic] = self._writer.add_connection(topic, msgtype, msgdef=msgdef, rihs01=rihs01,
                                                                   offered_qos_profiles=qos)

    def write(self, topic: str, time_ns: int, cdr: bytes | memoryview) -> None:
        """Append one serialized message on a registered ``topic`` at bag time ``time_ns``."""
        self._writer.write(self._connections[topic], int(time_ns), cdr)
        self.messages += 1

    def close(self) -> None:
        """Close the bag's files (metadata written); the bag stays under its partial name."""
        if self._open:
            self._open = False
            self._writer.close()

    def finish(self) -> Path:
        """Close and move the bag to ``out`` (replacing an existing ``out`` when ``overwrite``); returns ``out``."""
        self.close()
        check_destination(self.out, self.overwrite)
        old = self.out.with_name(f"{self.out.name}.old-{os.getpid()}")
        if self.out.exists() or self.out.is_symlink():
            os.replace(self.out, old)
        os.replace(self.path, self.out)
        self.path.parent.rmdir()
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        elif old.exists() or old.is_symlink():
            old.unlink()
        return self.out

    def abort(self) -> None:
        """Close and delete the partial bag."""
        try:
            self.close()
        finally:
            shutil.rmtree(self.path.parent, ignore_errors=True)


def folder_size(path: Path) -> int:
    """Bytes of every file under ``path``."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())

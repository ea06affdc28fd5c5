"""Write the replay's ROS 2 bag: message-core fields -> ``rosbags`` messages -> CDR, into a folder moved into place
at the end.

The wrapping mirrors :func:`semantic_depth_ros.ros.messages.to_msg` field for field, so a frame's CDR bytes here
equal ``rclpy.serialization.serialize_message`` of the node's message (tested). Messages use the ROS 2 Jazzy
typestore; the output bag is mcap (default) or sqlite3, rosbag2 metadata version 9.

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

import numpy as np
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from ..errors import ConfigError
from ..messages import CameraInfoFields, CloudFields, ImageFields, OutputFields

STORAGES: dict[str, StoragePlugin] = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
TYPESTORE = get_typestore(Stores.ROS2_JAZZY)
_TYPES = TYPESTORE.types
IMAGE = "sensor_msgs/msg/Image"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"


def msgtype_of(fields: OutputFields) -> str:
    """The ROS 2 message type of message-core fields."""
    if isinstance(fields, ImageFields):
        return IMAGE
    return POINTCLOUD2 if isinstance(fields, CloudFields) else CAMERA_INFO


def header(stamp_sec: int, stamp_nanosec: int, frame_id: str) -> Any:
    """A Jazzy ``std_msgs/Header`` (the input image's stamp and frame_id, from a ROS 1 or ROS 2 bag alike)."""
    stamp = _TYPES["builtin_interfaces/msg/Time"](sec=int(stamp_sec), nanosec=int(stamp_nanosec))
    return _TYPES["std_msgs/msg/Header"](stamp=stamp, frame_id=str(frame_id))


def _image(head: Any, fields: ImageFields) -> Any:
    return _TYPES[IMAGE](header=head, height=fields.height, width=fields.width, encoding=fields.encoding,
                         is_bigendian=int(fields.is_bigendian), step=fields.step, data=fields.data)


def _cloud(head: Any, fields: CloudFields) -> Any:
    point_field = _TYPES["sensor_msgs/msg/PointField"]
    point_fields = [point_field(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                    for f in fields.fields]
    return _TYPES[POINTCLOUD2](header=head, height=fields.height, width=fields.width, fields=point_fields,
                               is_bigendian=bool(fields.is_bigendian), point_step=fields.point_step,
                               row_step=fields.row_step, data=fields.data, is_dense=bool(fields.is_dense))


def _camera_info(head: Any, fields: CameraInfoFields) -> Any:
    roi = fields.roi
    return _TYPES[CAMERA_INFO](
        header=head, height=fields.height, width=fields.width, distortion_model=fields.distortion_model,
        d=np.asarray(fields.d, dtype=np.float64), k=np.asarray(fields.k, dtype=np.float64),
        r=np.asarray(fields.r, dtype=np.float64), p=np.asarray(fields.p, dtype=np.float64),
        binning_x=fields.binning_x, binning_y=fields.binning_y,
        roi=_TYPES["sensor_msgs/msg/RegionOfInterest"](x_offset=roi.x_offset, y_offset=roi.y_offset,
                                                       height=roi.height, width=roi.width,
                                                       do_rectify=roi.do_rectify))


def to_rosbags_msg(head: Any, fields: OutputFields) -> Any:
    """The Jazzy ``rosbags`` message of any message-core fields under ``head`` (the rclpy ``to_msg``'s twin)."""
    if isinstance(fields, ImageFields):
        return _image(head, fields)
    if isinstance(fields, CloudFields):
        return _cloud(head, fields)
    return _camera_info(head, fields)


def serialize(head: Any, fields: OutputFields) -> bytes:
    """CDR bytes of the message of ``fields`` under ``head``."""
    msg = to_rosbags_msg(head, fields)
    return bytes(TYPESTORE.serialize_cdr(msg, msg.__msgtype__))


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

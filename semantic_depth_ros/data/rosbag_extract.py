"""Extract camera images and projected LiDAR depth from a ROS 1 or ROS 2 bag into a depth dataset folder.

Reads ROS 1 ``.bag`` files and ROS 2 bags (sqlite3 or mcap) with ``rosbags`` (no ROS install needed).

Inputs: an image topic (``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``), its ``CameraInfo`` topic,
a LiDAR ``PointCloud2`` topic (any field layout with FLOAT32/FLOAT64 ``x``, ``y``, ``z``), and the
LiDAR-to-camera transform, from ``/tf_static`` (the path between the cloud's and the image's frame ids
is found in the tree and composed) or given as ``extrinsic`` (4x4, ``p_camera = T @ p_lidar``).

Pairing: each image is paired with the scan nearest in time (header stamps; the bag receive time when a
header stamp is zero) if it is within ``max_dt`` seconds; other images are counted and skipped. The camera
model of an image is the latest ``CameraInfo`` received before it (the first one in the bag for images
that precede every ``CameraInfo``). Points are projected with the pinhole ``K`` (distortion ignored, so the
image topic should be rectified; a warning is logged once when ``D`` is non-zero and the topic name has no
``rect``), nearest point wins per pixel (:mod:`semantic_depth_ros.data.projection`).

Output folder (one camera per folder; read back by :class:`semantic_depth_ros.data.extracted.ExtractedDepthDataset`)::

    out_dir/rgb/<stamp_ns>.png      the image, 8-bit RGB PNG, named by the image header stamp (ns)
    out_dir/depth/<stamp_ns>.png    uint16 PNG, metres * 256, 0 = no LiDAR return (KITTI depth-completion
                                    convention; depths beyond 255.996 m are clipped to 65535)
    out_dir/intrinsics.json         {"fx", "fy", "cx", "cy", "width", "height", "frame_id", "depth_scale"}
    out_dir/manifest.jsonl          one JSON object per frame, sorted by stamp: stamp_ns, scan_stamp_ns, dt_s,
                                    camera_frame, lidar_frame, rgb, depth (paths relative to out_dir),
                                    lidar_points (finite points in the scan), depth_pixels (pixels with depth)

Every file is written atomically (temporary file + ``os.replace``); the manifest is rewritten every
``MANIFEST_FLUSH_FRAMES`` frames and at the end (also when interrupted), and only frames listed in it
count as done: a re-run skips them and redoes frames whose files exist but are not listed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader, AnyReaderError
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from semantic_depth_ros.data.extracted import INTRINSICS_NAME, MANIFEST_NAME
from semantic_depth_ros.data.fileio import DEPTH_PNG_SCALE, depth_to_uint16, encode_png, write_atomic
from semantic_depth_ros.data.projection import project_points_to_depth, transform_points
from semantic_depth_ros.data.tf_chain import TransformTree, make_transform, normalize_frame
from semantic_depth_ros.errors import ExtractionError, InvalidInputError
from semantic_depth_ros.inference.image_input import decode_compressed_image, decode_raw_image

LOGGER = logging.getLogger(__name__)

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2_TYPE = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE_TYPE = "tf2_msgs/msg/TFMessage"
TF_STATIC_TOPIC = "/tf_static"
MANIFEST_FLUSH_FRAMES = 25

# PointField datatype -> numpy kind; x, y, z must be one of these.
_FLOAT_FIELDS = {7: "f4", 8: "f8"}


@dataclass
class ExtractionSummary:
    """What an extraction did (frame counts)."""

    out_dir: Path
    images: int = 0
    """Image messages on the image topic."""
    scans: int = 0
    """PointCloud2 messages on the LiDAR topic."""
    written: int = 0
    skipped_existing: int = 0
    no_scan_within_tolerance: int = 0
    no_camera_info: int = 0
    intrinsics_mismatch: int = 0
    """Camera model differs from the folder's intrinsics.json (one camera per folder)."""
    duplicate_stamp: int = 0
    invalid_image: int = 0
    invalid_scan: int = 0
    frames_in_manifest: int = 0

    def line(self) -> str:
        """One-line human summary."""
        counts = {k: v for k, v in asdict(self).items() if k != "out_dir" and (v or k == "written")}
        return f"{self.out_dir}: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in counts.items())


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera of a CameraInfo message."""

    K: np.ndarray = field(compare=False)
    width: int
    height: int
    frame_id: str
    distortion: tuple[float, ...]

    def intrinsics(self) -> dict[str, Any]:
        """The intrinsics.json content."""
        return {
            "fx": float(self.K[0, 0]),
            "fy": float(self.K[1, 1]),
            "cx": float(self.K[0, 2]),
            "cy": float(self.K[1, 2]),
            "width": self.width,
            "height": self.height,
            "frame_id": self.frame_id,
            "depth_scale": DEPTH_PNG_SCALE,
        }


def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (sec, nanosec) -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _field(msg: Any, ros2_name: str, ros1_name: str) -> Any:
    return getattr(msg, ros2_name) if hasattr(msg, ros2_name) else getattr(msg, ros1_name)


def camera_model_from_info(msg: Any) -> CameraModel:
    """CameraModel of a ROS 1 or ROS 2 CameraInfo message; InvalidInputError if K or the size is unusable."""
    K = np.asarray(_field(msg, "k", "K"), dtype=np.float64)
    if K.size != 9:
        raise InvalidInputError(f"CameraInfo K has {K.size} numbers, expected 9")
    K = K.reshape(3, 3)
    width, height = int(msg.width), int(msg.height)
    if not np.all(np.isfinite(K)) or K[0, 0] <= 0 or K[1, 1] <= 0 or width <= 0 or height <= 0:
        raise InvalidInputError(
            f"CameraInfo has no usable pinhole model: K={K.reshape(-1).tolist()} size {width}x{height}"
        )
    distortion = tuple(float(v) for v in np.asarray(_field(msg, "d", "D"), dtype=np.float64).reshape(-1))
    return CameraModel(K=K, width=width, height=height, frame_id=normalize_frame(msg.header.frame_id),
                       distortion=distortion)


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


def image_msg_to_rgb(msg: Any, msgtype: str) -> np.ndarray:
    """HxWx3 uint8 RGB of an Image or CompressedImage message (InvalidInputError when undecodable)."""
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return decode_compressed_image(msg.format, msg.data)
    return decode_raw_image(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def tf_message_transforms(msg: Any) -> list[tuple[str, str, np.ndarray]]:
    """(parent, child, T_parent_child 4x4) of each transform in a TFMessage."""
    out = []
    for item in msg.transforms:
        t, q = item.transform.translation, item.transform.rotation
        try:
            transform = make_transform((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
        except ExtractionError as err:
            raise ExtractionError(f"/tf_static {item.header.frame_id} -> {item.child_frame_id}: {err}") from None
        out.append((item.header.frame_id, item.child_frame_id, transform))
    return out


@dataclass
class _ImageRecord:
    stamp: int
    frame_id: str
    camera: CameraModel | None
    scan: int = -1


@dataclass
class _BagIndex:
    """What the first pass over the bag learns (no pixel or point data kept)."""

    images: list[_ImageRecord] = field(default_factory=list)
    scan_stamps: list[int] = field(default_factory=list)
    scan_frames: list[str] = field(default_factory=list)
    first_camera: CameraModel | None = None
    tree: TransformTree = field(default_factory=TransformTree)


def _header_stamp(msg: Any, bag_time: int) -> int:
    stamp = stamp_to_ns(msg.header.stamp)
    return stamp if stamp != 0 else int(bag_time)


def _connections(reader: AnyReader, bag_path: Path, topic: str, allowed: set[str], required: bool = True) -> list[Any]:
    connections = [c for c in reader.connections if c.topic == topic]
    if not connections:
        if not required:
            return []
        available = ", ".join(sorted({c.topic for c in reader.connections})) or "none"
        raise ExtractionError(f"topic {topic!r} not found in bag {bag_path} (topics: {available})")
    for connection in connections:
        if connection.msgtype not in allowed:
            expected = " or ".join(sorted(allowed))
            raise ExtractionError(f"topic {topic!r} has type {connection.msgtype}, expected {expected}")
    return connections


def _index_bag(reader: AnyReader, image_conns: list[Any], info_conns: list[Any], lidar_conns: list[Any],
               tf_conns: list[Any]) -> _BagIndex:
    """First pass: image and scan stamps and frames, camera models, static transforms."""
    index = _BagIndex()
    current: CameraModel | None = None
    kinds = {id(c): "image" for c in image_conns}
    kinds.update({id(c): "info" for c in info_conns})
    kinds.update({id(c): "lidar" for c in lidar_conns})
    kinds.update({id(c): "tf" for c in tf_conns})
    for connection, bag_time, raw in reader.messages(connections=[*image_conns, *info_conns, *lidar_conns, *tf_conns]):
        kind = kinds[id(connection)]
        msg = reader.deserialize(raw, connection.msgtype)
        if kind == "image":
            stamp = _header_stamp(msg, bag_time)
            index.images.append(_ImageRecord(stamp, normalize_frame(msg.header.frame_id), current))
        elif kind == "lidar":
            index.scan_stamps.append(_header_stamp(msg, bag_time))
            index.scan_frames.append(normalize_frame(msg.header.frame_id))
        elif kind == "info":
            try:
                current = camera_model_from_info(msg)
            except InvalidInputError as err:
                raise ExtractionError(f"{connection.topic}: {err}") from None
            if index.first_camera is None:
                index.first_camera = current
        else:
            for parent, child, transform in tf_message_transforms(msg):
                index.tree.add(parent, child, transform)
    return index


def _pair_with_scans(index: _BagIndex, max_dt: float) -> None:
    """Set ``record.scan`` to the nearest scan within ``max_dt`` seconds, or -1."""
    if not index.scan_stamps or not index.images:
        return
    stamps = np.asarray(index.scan_stamps, dtype=np.int64)
    order = np.argsort(stamps, kind="stable")
    sorted_stamps = stamps[order]
    wanted = np.asarray([r.stamp for r in index.images], dtype=np.int64)
    right = np.clip(np.searchsorted(sorted_stamps, wanted), 0, sorted_stamps.size - 1)
    left = np.clip(right - 1, 0, sorted_stamps.size - 1)
    use_left = np.abs(wanted - sorted_stamps[left]) <= np.abs(sorted_stamps[right] - wanted)
    nearest = np.where(use_left, left, right)
    within = np.abs(sorted_stamps[nearest] - wanted) <= max_dt * 1e9
    for record, position, ok in zip(index.images, nearest, within):
        record.scan = int(order[position]) if ok else -1


class _OutputFolder:
    """The dataset folder: manifest bookkeeping and atomic writes."""

    def __init__(self, out_dir: Path) -> None:
        self.root = out_dir
        self.manifest_path = out_dir / MANIFEST_NAME
        self.intrinsics_path = out_dir / INTRINSICS_NAME
        self.entries: dict[int, dict[str, Any]] = {}
        self.intrinsics: dict[str, Any] | None = None
        self.unflushed = 0
        if self.manifest_path.is_file():
            for number, line in enumerate(self.manifest_path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    stamp = int(entry["stamp_ns"])
                    if not isinstance(entry["rgb"], str) or not isinstance(entry["depth"], str):
                        raise TypeError("rgb and depth must be paths")
                except (ValueError, KeyError, TypeError):
                    message = f"{self.manifest_path}:{number}: not a manifest entry: {line[:80]!r}"
                    raise ExtractionError(message) from None
                self.entries[stamp] = entry
        if self.intrinsics_path.is_file():
            try:
                self.intrinsics = json.loads(self.intrinsics_path.read_text(encoding="utf-8"))
            except ValueError:
                raise ExtractionError(f"{self.intrinsics_path} is not valid JSON") from None

    def is_done(self, stamp: int) -> bool:
        entry = self.entries.get(stamp)
        return entry is not None and (self.root / entry["rgb"]).is_file() and (self.root / entry["depth"]).is_file()

    def matches(self, camera: CameraModel) -> bool:
        """Whether ``camera`` is the folder's camera (sets it on the first frame)."""
        current = camera.intrinsics()
        if self.intrinsics is None:
            write_atomic(self.intrinsics_path, (json.dumps(current, indent=2) + "\n").encode())
            self.intrinsics = current
            return True
        keys = ("fx", "fy", "cx", "cy", "width", "height")
        if not all(isinstance(self.intrinsics.get(key), (int, float)) for key in keys):
            raise ExtractionError(f"{self.intrinsics_path} lacks one of {', '.join(keys)}")
        return all(np.isclose(float(self.intrinsics[k]), float(current[k]), rtol=1e-6, atol=1e-9) for k in keys)

    def add(self, entry: dict[str, Any], rgb_png: bytes, depth_png: bytes) -> None:
        write_atomic(self.root / entry["rgb"], rgb_png)
        write_atomic(self.root / entry["depth"], depth_png)
        self.entries[int(entry["stamp_ns"])] = entry
        self.unflushed += 1
        if self.unflushed >= MANIFEST_FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        """Rewrite the manifest (sorted by stamp) if frames were added since the last flush."""
        if self.unflushed == 0:
            return
        lines = [json.dumps(self.entries[stamp], sort_keys=True) for stamp in sorted(self.entries)]
        write_atomic(self.manifest_path, ("\n".join(lines) + "\n" if lines else "").encode())
        self.unflushed = 0


def _check_camera_size(rgb: np.ndarray, camera: CameraModel, topic: str, stamp: int) -> None:
    if rgb.shape[:2] != (camera.height, camera.width):
        raise ExtractionError(
            f"image on {topic} at stamp {stamp} is {rgb.shape[1]}x{rgb.shape[0]} "
            f"but its CameraInfo says {camera.width}x{camera.height}"
        )


def _frames_of(index: _BagIndex, record: _ImageRecord, camera: CameraModel, lidar_frame: str | None) -> tuple[str, str]:
    """(camera frame, LiDAR frame) of one image and its paired scan."""
    camera_frame = record.frame_id or camera.frame_id
    return camera_frame, normalize_frame(lidar_frame) if lidar_frame else index.scan_frames[record.scan]


def _resolve_transforms(index: _BagIndex, todo: dict[int, CameraModel], lidar_frame: str | None,
                        extrinsic: np.ndarray | None) -> dict[tuple[str, str], np.ndarray]:
    """T_camera_lidar for every (camera frame, LiDAR frame) pair the frames to extract need."""
    transforms: dict[tuple[str, str], np.ndarray] = {}
    for i, camera in todo.items():
        key = _frames_of(index, index.images[i], camera, lidar_frame)
        camera_frame, source = key
        if key in transforms:
            continue
        if extrinsic is not None:
            transforms[key] = extrinsic
            continue
        if not camera_frame or not source:
            raise ExtractionError(
                f"empty frame_id (camera {camera_frame!r}, LiDAR {source!r}); pass --extrinsic or --lidar-frame"
            )
        if not index.tree.frames():
            raise ExtractionError(f"no transform from LiDAR frame {source!r} to camera frame {camera_frame!r}: "
                                  f"the bag has no {TF_STATIC_TOPIC} messages; pass --extrinsic")
        try:
            transforms[key] = index.tree.lookup(camera_frame, source)
        except ExtractionError as err:
            message = f"no LiDAR-to-camera transform in {TF_STATIC_TOPIC}: {err}; pass --extrinsic"
            raise ExtractionError(message) from None
    return transforms


def extract_bag(
    bag_path: str | os.PathLike[str],
    *,
    image_topic: str,
    camera_info_topic: str,
    lidar_topic: str,
    out_dir: str | os.PathLike[str],
    lidar_frame: str | None = None,
    extrinsic: np.ndarray | None = None,
    max_dt: float = 0.05,
    progress: bool = True,
) -> ExtractionSummary:
    """Extract every image paired with a LiDAR scan into ``out_dir`` (layout in the module docstring).

    ``extrinsic``: 4x4 LiDAR->camera (``p_camera = T @ p_lidar``) used instead of ``/tf_static``;
    ``lidar_frame`` overrides the clouds' ``frame_id``; ``max_dt``: pairing tolerance, seconds.
    Raises ExtractionError (one line) for a missing bag, topic or transform.
    """
    bag_path, out = Path(bag_path), Path(out_dir)
    if not bag_path.exists():
        raise ExtractionError(f"bag not found: {bag_path}")
    if not np.isfinite(max_dt) or max_dt < 0:
        raise ExtractionError(f"max_dt must be a finite number of seconds >= 0, got {max_dt}")
    if extrinsic is not None:
        extrinsic = np.asarray(extrinsic, dtype=np.float64)
        if extrinsic.shape != (4, 4) or not np.all(np.isfinite(extrinsic)):
            raise ExtractionError(f"extrinsic must be a finite 4x4 matrix, got shape {extrinsic.shape}")
    summary = ExtractionSummary(out_dir=out)
    try:
        reader = AnyReader([bag_path], default_typestore=get_typestore(Stores.LATEST))
        reader.open()
    except AnyReaderError as err:
        raise ExtractionError(f"cannot read bag {bag_path}: {err}") from None
    try:
        image_conns = _connections(reader, bag_path, image_topic, {IMAGE_TYPE, COMPRESSED_IMAGE_TYPE})
        info_conns = _connections(reader, bag_path, camera_info_topic, {CAMERA_INFO_TYPE})
        lidar_conns = _connections(reader, bag_path, lidar_topic, {POINTCLOUD2_TYPE})
        tf_conns = [] if extrinsic is not None else _connections(reader, bag_path, TF_STATIC_TOPIC, {TF_MESSAGE_TYPE},
                                                                 required=False)
        index = _index_bag(reader, image_conns, info_conns, lidar_conns, tf_conns)
        _extract_frames(reader, index, summary, image_conns, lidar_conns, image_topic=image_topic,
                        lidar_frame=lidar_frame, extrinsic=extrinsic, max_dt=max_dt, progress=progress)
    except AnyReaderError as err:
        raise ExtractionError(f"cannot read bag {bag_path}: {err}") from None
    finally:
        reader.close()
    return summary


def _select_frames(index: _BagIndex, folder: _OutputFolder, summary: ExtractionSummary) -> dict[int, CameraModel]:
    """Images to extract now (index -> camera model), in bag order; counts the others."""
    todo: dict[int, CameraModel] = {}
    seen: set[int] = set()
    for i, record in enumerate(index.images):
        camera = record.camera or index.first_camera
        if record.stamp in seen:
            summary.duplicate_stamp += 1
            continue
        seen.add(record.stamp)
        if folder.is_done(record.stamp):
            summary.skipped_existing += 1
        elif camera is None:
            summary.no_camera_info += 1
        elif record.scan < 0:
            summary.no_scan_within_tolerance += 1
        else:
            todo[i] = camera
    return todo


def _extract_frames(reader: AnyReader, index: _BagIndex, summary: ExtractionSummary, image_conns: list[Any],
                    lidar_conns: list[Any], *, image_topic: str, lidar_frame: str | None,
                    extrinsic: np.ndarray | None, max_dt: float, progress: bool) -> None:
    """Second pass: decode, project and write the selected frames."""
    summary.images, summary.scans = len(index.images), len(index.scan_stamps)
    _pair_with_scans(index, max_dt)
    folder = _OutputFolder(summary.out_dir)
    todo = _select_frames(index, folder, summary)
    transforms = _resolve_transforms(index, todo, lidar_frame, extrinsic)
    if "rect" not in image_topic.rsplit("/", 1)[-1] and any(any(v != 0.0 for v in c.distortion) for c in todo.values()):
        LOGGER.warning("camera_info has non-zero distortion but %s does not look rectified: LiDAR points are "
                       "projected with the pinhole K only", image_topic)

    wanted = set(todo)
    refcount: dict[int, int] = {}
    for i in todo:
        refcount[index.images[i].scan] = refcount.get(index.images[i].scan, 0) + 1
    scans: dict[int, np.ndarray | None] = {}
    waiting: dict[int, list[tuple[int, Any, str]]] = {}
    image_ids, lidar_ids = {id(c) for c in image_conns}, {id(c) for c in lidar_conns}
    image_count = scan_count = 0
    bar = tqdm(total=len(index.images), unit="frame", desc="extract", disable=not progress)

    def finish(i: int, msg: Any, msgtype: str) -> None:
        record = index.images[i]
        frames = _frames_of(index, record, todo[i], lidar_frame)
        _write_frame(folder, summary, index, record, todo[i], msg, msgtype, scans[record.scan], frames,
                     transforms[frames], image_topic)
        refcount[record.scan] -= 1
        if refcount[record.scan] == 0:
            del scans[record.scan]

    try:
        for connection, _, raw in reader.messages(connections=[*image_conns, *lidar_conns]):
            if id(connection) in lidar_ids:
                j, scan_count = scan_count, scan_count + 1
                if j not in refcount:
                    continue
                try:
                    scans[j] = cloud_msg_to_xyz(reader.deserialize(raw, connection.msgtype))
                except InvalidInputError as err:
                    LOGGER.warning("skipping scan %d on %s: %s", j, connection.topic, err)
                    scans[j] = None
                for i, msg, msgtype in waiting.pop(j, []):
                    finish(i, msg, msgtype)
            elif id(connection) in image_ids:
                i, image_count = image_count, image_count + 1
                bar.update(1)
                if i not in wanted:
                    continue
                msg = reader.deserialize(raw, connection.msgtype)
                if index.images[i].scan in scans:
                    finish(i, msg, connection.msgtype)
                else:
                    waiting.setdefault(index.images[i].scan, []).append((i, msg, connection.msgtype))
    finally:
        bar.close()
        folder.flush()
        summary.frames_in_manifest = len(folder.entries)


def _write_frame(folder: _OutputFolder, summary: ExtractionSummary, index: _BagIndex, record: _ImageRecord,
                 camera: CameraModel, msg: Any, msgtype: str, points: np.ndarray | None, frames: tuple[str, str],
                 lidar_to_camera: np.ndarray, image_topic: str) -> None:
    """Decode one image, project its scan and write both (or count why not)."""
    if points is None:
        summary.invalid_scan += 1
        return
    try:
        rgb = image_msg_to_rgb(msg, msgtype)
    except InvalidInputError as err:
        summary.invalid_image += 1
        LOGGER.warning("skipping image %d on %s: %s", record.stamp, image_topic, err)
        return
    _check_camera_size(rgb, camera, image_topic, record.stamp)
    if not folder.matches(camera):
        summary.intrinsics_mismatch += 1
        return
    depth = project_points_to_depth(transform_points(lidar_to_camera, points), camera.K, camera.width, camera.height)
    scan_stamp = index.scan_stamps[record.scan]
    entry = {
        "stamp_ns": record.stamp,
        "scan_stamp_ns": scan_stamp,
        "dt_s": (scan_stamp - record.stamp) * 1e-9,
        "camera_frame": frames[0],
        "lidar_frame": frames[1],
        "rgb": f"rgb/{record.stamp}.png",
        "depth": f"depth/{record.stamp}.png",
        "lidar_points": int(points.shape[0]),
        "depth_pixels": int(np.count_nonzero(depth)),
    }
    folder.add(entry, encode_png(rgb), encode_png(depth_to_uint16(depth)))
    summary.written += 1

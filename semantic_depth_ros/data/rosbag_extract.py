"""``semantic-depth extract``'s engine: camera images and projected LiDAR depth from a bag into an extracted folder.

Bags are read by :mod:`semantic_depth_ros.data.bag_reader` (ROS 1, ROS 2 sqlite3 or mcap; no ROS install).

Inputs: an image topic (``sensor_msgs/Image`` or ``sensor_msgs/CompressedImage``), its ``CameraInfo`` topic,
a LiDAR ``PointCloud2`` topic (any field layout with FLOAT32/FLOAT64 ``x``, ``y``, ``z``), and the
LiDAR-to-camera transform, from ``/tf_static`` (the path between the cloud's and the image's frame ids
is found in the tree and composed) or given as ``extrinsic`` (4x4, ``p_camera = T @ p_lidar``).

Pairing (:mod:`semantic_depth_ros.data.time_pairing`): each image is paired with the scan nearest in time (header
stamps; the bag receive time when a header stamp is zero) if it is within ``max_dt`` seconds; other images are
counted and skipped. The camera model of an image is the latest ``CameraInfo`` received at or before it (the first
one in the bag for images that precede every ``CameraInfo``). Points are projected with the pinhole ``K``, nearest
point wins per pixel (:mod:`semantic_depth_ros.data.projection`).

Lens distortion: when the ``CameraInfo`` has a non-zero ``D`` (``plumb_bob``, ``rational_polynomial``,
``equidistant``), each image is undistorted first with the node's undistortion
(``geometry.undistort.undistortion_map``: the pinhole image of the camera's own K and size, ``cv2.remap``
bilinear), so image and projected depth agree and ``intrinsics.json`` (K, D = 0) describes both; pixels whose ray
falls outside the distorted image are black with no depth. An image already rectified (``input_rectified``, the
node's rule ``geometry.intrinsics.input_is_rectified``: by default a topic ending in ``image_rect`` or
``image_rect_color``) is kept as it is, its camera is camera_info's P (``intrinsics.json`` has P's intrinsics) and
LiDAR points are projected with it. An unsupported model stops the extraction.

The output folder's layout, atomic writes and resuming are :mod:`semantic_depth_ros.data.extracted`'s.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from semantic_depth_ros.data.bag_reader import (
    CAMERA_INFO_TYPE,
    IMAGE_TYPES,
    POINTCLOUD2_TYPE,
    TF_MESSAGE_TYPE,
    TF_STATIC_TOPIC,
    BagReader,
    cloud_msg_to_xyz,
    header_stamp_ns,
    decode_bag_image,
    tf_message_transforms,
)
from semantic_depth_ros.data.extracted import ExtractedFolderWriter
from semantic_depth_ros.data.fileio import depth_to_uint16, encode_png
from semantic_depth_ros.data.host_undistort import undistort_image, undistorted_no_data
from semantic_depth_ros.data.projection import project_points_to_depth, transform_points
from semantic_depth_ros.data.tf_chain import TransformTree, normalize_frame
from semantic_depth_ros.data.time_pairing import latest_at_or_before, nearest_within
from semantic_depth_ros.errors import ExtractionError, InvalidInputError
from semantic_depth_ros.geometry.intrinsics import CameraModel, camera_from_info, input_is_rectified
from semantic_depth_ros.geometry.undistort import check_camera_model

LOGGER = logging.getLogger(__name__)


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
class _Camera:
    """A CameraInfo's model and the frame id in its header."""

    model: CameraModel
    frame_id: str


@dataclass
class _ImageRecord:
    stamp: int
    bag_time: int
    frame_id: str
    camera: _Camera | None = None
    scan: int = -1
    corrupt: bool = False  # its message could not be deserialized


@dataclass
class BagIndex:
    """What the first pass over the bag learns (no pixel or point data kept)."""

    images: list[_ImageRecord] = field(default_factory=list)
    scan_stamps: list[int] = field(default_factory=list)
    scan_frames: list[str] = field(default_factory=list)
    cameras: list[_Camera] = field(default_factory=list)
    camera_times: list[int] = field(default_factory=list)
    corrupt_scans: set[int] = field(default_factory=set)  # scan ordinals whose message could not be deserialized
    tree: TransformTree = field(default_factory=TransformTree)


def index_bag(bag: BagReader, image_conns: list[Any], info_conns: list[Any], lidar_conns: list[Any],
              tf_conns: list[Any], max_dt: float, *, skip_bad_cameras: bool = False,
              rectified: bool = False) -> BagIndex:
    """First pass: image and scan stamps and frames, camera models, static transforms; then the pairing.

    A camera_info with an unusable camera model stops (ExtractionError) unless ``skip_bad_cameras`` (then it is
    left out with a warning: infer-bag skips the images it describes). ``rectified``: the images are already
    rectified, their camera is P (``input_is_rectified``)."""
    index = BagIndex()
    kinds = {c.topic: "image" for c in image_conns}
    kinds.update({c.topic: "info" for c in info_conns})
    kinds.update({c.topic: "lidar" for c in lidar_conns})
    kinds.update({c.topic: "tf" for c in tf_conns})
    for connection, bag_time, raw in bag.raw_messages([*image_conns, *info_conns, *lidar_conns, *tf_conns]):
        kind, bag_time = kinds[connection.topic], int(bag_time)
        try:
            msg = bag.deserialize(raw, connection.msgtype)
        except Exception as exc:  # noqa: BLE001 - a corrupt message is skipped, not the drive
            LOGGER.warning("skipping %s at bag time %d: cannot deserialize %s: %s", connection.topic, bag_time,
                           connection.msgtype, type(exc).__name__)
            if kind == "image":  # kept (never extracted) so that image ordinals stay those of the bag
                index.images.append(_ImageRecord(bag_time, bag_time, "", corrupt=True))
            elif kind == "lidar":  # kept (never paired) so that scan ordinals stay those of the bag
                index.scan_stamps.append(bag_time)
                index.scan_frames.append("")
                index.corrupt_scans.add(len(index.scan_stamps) - 1)
            continue
        if kind == "image":
            frame = normalize_frame(msg.header.frame_id)
            index.images.append(_ImageRecord(header_stamp_ns(msg, bag_time), bag_time, frame))
        elif kind == "lidar":
            index.scan_stamps.append(header_stamp_ns(msg, bag_time))
            index.scan_frames.append(normalize_frame(msg.header.frame_id))
        elif kind == "info":
            try:
                model = check_camera_model(camera_from_info(msg, rectified=rectified))
            except InvalidInputError as err:
                if not skip_bad_cameras:
                    raise ExtractionError(f"{connection.topic}: {err}") from None
                LOGGER.warning("skipping %s at bag time %d: %s", connection.topic, bag_time, err)
                continue
            index.cameras.append(_Camera(model, normalize_frame(msg.header.frame_id)))
            index.camera_times.append(bag_time)
        else:
            for parent, child, transform in tf_message_transforms(msg):
                index.tree.add(parent, child, transform)
    usable = np.array([j for j in range(len(index.scan_stamps)) if j not in index.corrupt_scans], dtype=np.int64)
    paired = nearest_within([r.stamp for r in index.images], [index.scan_stamps[j] for j in usable], max_dt)
    scans = np.where(paired >= 0, usable[np.maximum(paired, 0)] if usable.size else -1, -1)
    cameras = latest_at_or_before([r.bag_time for r in index.images], index.camera_times)
    for record, scan, camera in zip(index.images, scans, cameras):
        if record.corrupt:
            continue
        record.scan = int(scan)
        if index.cameras:
            record.camera = index.cameras[camera] if camera >= 0 else index.cameras[0]
    return index


def _check_camera_size(rgb: np.ndarray, camera: CameraModel, topic: str, stamp: int) -> None:
    intr = camera.intrinsics
    if rgb.shape[:2] != (intr.height, intr.width):
        raise ExtractionError(
            f"image on {topic} at stamp {stamp} is {rgb.shape[1]}x{rgb.shape[0]} "
            f"but its CameraInfo says {intr.width}x{intr.height}"
        )


def frames_of(index: BagIndex, record: _ImageRecord, camera: _Camera, lidar_frame: str | None) -> tuple[str, str]:
    """(camera frame, LiDAR frame) of one image and its paired scan."""
    camera_frame = record.frame_id or camera.frame_id
    return camera_frame, normalize_frame(lidar_frame) if lidar_frame else index.scan_frames[record.scan]


def resolve_transforms(index: BagIndex, todo: dict[int, _Camera], lidar_frame: str | None,
                        extrinsic: np.ndarray | None) -> dict[tuple[str, str], np.ndarray]:
    """T_camera_lidar for every (camera frame, LiDAR frame) pair the frames to extract need."""
    transforms: dict[tuple[str, str], np.ndarray] = {}
    for i, camera in todo.items():
        key = frames_of(index, index.images[i], camera, lidar_frame)
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
    input_rectified: str = "auto",
) -> ExtractionSummary:
    """Extract every image paired with a LiDAR scan into ``out_dir`` (see :mod:`semantic_depth_ros.data.extracted`).

    ``extrinsic``: 4x4 LiDAR->camera (``p_camera = T @ p_lidar``) used instead of ``/tf_static``;
    ``lidar_frame`` overrides the clouds' ``frame_id``; ``max_dt``: pairing tolerance, seconds;
    ``input_rectified``: auto, true or false, the node's parameter (module docstring).
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
    try:
        rectified = input_is_rectified(input_rectified, image_topic)
    except InvalidInputError as err:
        raise ExtractionError(str(err)) from None
    if rectified:
        LOGGER.warning("%s taken as rectified (input_rectified %s): images kept as they are, camera from "
                       "camera_info P", image_topic, input_rectified)
    summary = ExtractionSummary(out_dir=out)
    with BagReader(bag_path) as bag:
        image_conns = bag.connections(image_topic, IMAGE_TYPES)
        info_conns = bag.connections(camera_info_topic, {CAMERA_INFO_TYPE})
        lidar_conns = bag.connections(lidar_topic, {POINTCLOUD2_TYPE})
        tf_conns = [] if extrinsic is not None else bag.connections(TF_STATIC_TOPIC, {TF_MESSAGE_TYPE}, required=False)
        index = index_bag(bag, image_conns, info_conns, lidar_conns, tf_conns, max_dt, rectified=rectified)
        _extract_frames(bag, index, summary, image_conns, lidar_conns, image_topic=image_topic,
                        lidar_frame=lidar_frame, extrinsic=extrinsic, progress=progress)
    return summary


def _select_frames(index: BagIndex, folder: ExtractedFolderWriter, summary: ExtractionSummary
                   ) -> dict[int, _Camera]:
    """Images to extract now (index -> camera), in bag order; counts the others."""
    todo: dict[int, _Camera] = {}
    seen: set[int] = set()
    for i, record in enumerate(index.images):
        if record.corrupt:
            summary.invalid_image += 1
            continue
        if record.stamp in seen:
            summary.duplicate_stamp += 1
            continue
        seen.add(record.stamp)
        if folder.is_done(record.stamp):
            summary.skipped_existing += 1
        elif record.camera is None:
            summary.no_camera_info += 1
        elif record.scan < 0:
            summary.no_scan_within_tolerance += 1
        else:
            todo[i] = record.camera
    return todo


def _extract_frames(bag: BagReader, index: BagIndex, summary: ExtractionSummary, image_conns: list[Any],
                    lidar_conns: list[Any], *, image_topic: str, lidar_frame: str | None,
                    extrinsic: np.ndarray | None, progress: bool) -> None:
    """Second pass: decode, project and write the selected frames."""
    summary.images, summary.scans = len(index.images), len(index.scan_stamps)
    folder = ExtractedFolderWriter(summary.out_dir)
    todo = _select_frames(index, folder, summary)
    transforms = resolve_transforms(index, todo, lidar_frame, extrinsic)

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
        frames = frames_of(index, record, todo[i], lidar_frame)
        _write_frame(folder, summary, index, record, todo[i], msg, msgtype, scans[record.scan], frames,
                     transforms[frames], image_topic)
        refcount[record.scan] -= 1
        if refcount[record.scan] == 0:
            del scans[record.scan]

    try:
        for connection, _, raw in bag.raw_messages([*image_conns, *lidar_conns]):
            if id(connection) in lidar_ids:
                j, scan_count = scan_count, scan_count + 1
                if j not in refcount:
                    continue
                try:
                    scans[j] = cloud_msg_to_xyz(bag.deserialize(raw, connection.msgtype))
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
                msg = bag.deserialize(raw, connection.msgtype)
                if index.images[i].scan in scans:
                    finish(i, msg, connection.msgtype)
                else:
                    waiting.setdefault(index.images[i].scan, []).append((i, msg, connection.msgtype))
    finally:
        bar.close()
        folder.flush()
        summary.frames_in_manifest = len(folder.entries)


def _write_frame(folder: ExtractedFolderWriter, summary: ExtractionSummary, index: BagIndex, record: _ImageRecord,
                 camera: _Camera, msg: Any, msgtype: str, points: np.ndarray | None, frames: tuple[str, str],
                 lidar_to_camera: np.ndarray, image_topic: str) -> None:
    """Decode one image (undistorted when its camera has distortion: never for a rectified one), project its scan
    and write both (or count why not)."""
    if points is None:
        summary.invalid_scan += 1
        return
    try:
        rgb = decode_bag_image(msg, msgtype)
    except InvalidInputError as err:
        summary.invalid_image += 1
        LOGGER.warning("skipping image %d on %s: %s", record.stamp, image_topic, err)
        return
    _check_camera_size(rgb, camera.model, image_topic, record.stamp)
    intr = camera.model.intrinsics
    if not folder.matches(intr, camera.frame_id):
        summary.intrinsics_mismatch += 1
        return
    depth = project_points_to_depth(transform_points(lidar_to_camera, points), intr.matrix(), intr.width, intr.height)
    if camera.model.has_distortion:
        rgb = undistort_image(camera.model, rgb)
        depth[undistorted_no_data(camera.model)] = 0.0
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

"""Score a replay against the drive's LiDAR: ground truth as ``semantic-depth extract`` makes it, Eigen metrics.

Ground truth (:class:`LidarTruth`) reuses extract's engine (:mod:`semantic_depth_ros.data.rosbag_extract`): its
index pass pairs each image with the nearest scan within ``max_dt`` seconds (header stamps) and loads
``/tf_static``; its transform lookup gives LiDAR -> camera (or ``extrinsic``); points are projected with the
camera's K, nearest point per pixel (:mod:`semantic_depth_ros.data.projection`), 0 = no point.

Metrics (:class:`DriveScore`): ``compute_depth_metrics`` (crop ``none``) per frame at the caps 50 and 80 m; the
drive's value of each metric is the mean over its scored frames (the Eigen protocol: every frame weighs the same).
``write`` puts ``metrics.json`` (strict JSON), ``metrics.csv`` (one row per frame) and ``report.md`` (the drive's
table and its worst frames by Abs Rel at 80 m) into the output folder.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..data.bag_reader import POINTCLOUD2_TYPE, TF_MESSAGE_TYPE, TF_STATIC_TOPIC, BagReader, cloud_msg_to_xyz
from ..data.fileio import write_json
from ..files import write_atomic
from ..data.projection import project_points_to_depth, transform_points
from ..data.host_undistort import undistorted_no_data
from ..data.rosbag_extract import frames_of, index_bag, resolve_transforms
from ..errors import InvalidInputError
from ..evaluation.metrics import DEPTH_METRIC_KEYS, NoValidPixelsError, compute_depth_metrics
from ..evaluation.report import format_depth_table
from ..geometry.intrinsics import CameraModel

LOGGER = logging.getLogger(__name__)
CAPS_M: tuple[float, ...] = (50.0, 80.0)
MIN_DEPTH_M = 1e-3
WORST_FRAMES = 10


class LidarTruth:
    """LiDAR depth of each image of ``image_conns``, fed the LiDAR messages as the bag is read (see module doc).

    Scans are decoded only when a selected image needs them and dropped once every such image took its depth.
    """

    def __init__(self, bag: BagReader, image_conns: list[Any], info_conns: list[Any], lidar_topic: str, *,
                 lidar_frame: str | None = None, extrinsic: np.ndarray | None = None, max_dt: float = 0.05,
                 rectified: bool = False) -> None:
        self.connections = bag.connections(lidar_topic, {POINTCLOUD2_TYPE})
        tf_conns = [] if extrinsic is not None else bag.connections(TF_STATIC_TOPIC, {TF_MESSAGE_TYPE},
                                                                    required=False)
        self.index = index_bag(bag, image_conns, info_conns, self.connections, tf_conns, max_dt,
                               skip_bad_cameras=True, rectified=rectified)  # the frame source skips their images
        self._todo = {i: record.camera for i, record in enumerate(self.index.images)
                      if record.camera is not None and record.scan >= 0}
        self._transforms = resolve_transforms(self.index, self._todo, lidar_frame, extrinsic)
        self._lidar_frame = lidar_frame
        self._refcount: dict[int, int] = {}
        for i in self._todo:
            scan = self.index.images[i].scan
            self._refcount[scan] = self._refcount.get(scan, 0) + 1
        self._scans: dict[int, np.ndarray | None] = {}
        self._seen = 0
        self.unpaired = len(self.index.images) - len(self._todo)

    def feed(self, bag: BagReader, connection: Any, raw: bytes) -> None:
        """The next LiDAR message in bag order."""
        scan, self._seen = self._seen, self._seen + 1
        if self._refcount.get(scan, 0) <= 0:
            return
        try:
            self._scans[scan] = cloud_msg_to_xyz(bag.deserialize(raw, connection.msgtype))
        except (InvalidInputError, ValueError, IndexError) as exc:
            LOGGER.warning("skipping scan %d on %s: %s", scan, connection.topic, exc)
            self._scans[scan] = None

    def ready(self, ordinal: int) -> bool:
        """Whether image ``ordinal``'s scan has been read (or it has none)."""
        return ordinal not in self._todo or self.index.images[ordinal].scan < self._seen

    def release(self, ordinal: int) -> None:
        """Image ``ordinal`` will not take its depth (not selected, or undecodable)."""
        if self._todo.pop(ordinal, None) is None:
            return
        scan = self.index.images[ordinal].scan
        self._refcount[scan] -= 1
        if self._refcount[scan] == 0:
            self._scans.pop(scan, None)

    def take(self, ordinal: int, camera: CameraModel | None) -> np.ndarray | None:
        """HxW float32 LiDAR depth (metres, 0 = no point) of image ``ordinal`` in ``camera``; None if unpaired.

        With lens distortion the depth is in the undistorted image (the estimator's output) and pixels without
        image data have no depth, as in ``semantic-depth extract``."""
        if camera is None or ordinal not in self._todo:
            self.release(ordinal)
            return None
        record = self.index.images[ordinal]
        transform = self._transforms[frames_of(self.index, record, self._todo[ordinal], self._lidar_frame)]
        points = self._scans.get(record.scan)
        self.release(ordinal)
        if points is None:
            return None
        intr = camera.intrinsics
        depth = project_points_to_depth(transform_points(transform, points), intr.matrix(), intr.width, intr.height)
        no_data = undistorted_no_data(camera)
        if no_data is not None:
            depth[no_data] = 0.0
        return depth


class DriveScore:
    """Per-frame and drive Eigen metrics of predicted depth against LiDAR depth (metres)."""

    def __init__(self, caps: tuple[float, ...] = CAPS_M) -> None:
        self.caps = caps
        self.rows: list[dict[str, Any]] = []
        self.unscored = 0

    def add(self, ordinal: int, stamp_ns: int, pred: np.ndarray, lidar: np.ndarray | None, *,
            bag_time_ns: int) -> None:
        """One frame (header stamp and bag time in ns): HxW predicted depth (NaN = none) and LiDAR depth (0 = none;
        None = no scan)."""
        if lidar is None:
            self.unscored += 1
            return
        row: dict[str, Any] = {"frame": ordinal, "stamp_ns": stamp_ns, "bag_time_ns": bag_time_ns,
                               "lidar_pixels": int(np.count_nonzero(lidar))}
        for cap in self.caps:
            try:
                metrics = compute_depth_metrics(pred, lidar, min_depth=MIN_DEPTH_M, max_depth=cap, crop="none")
            except NoValidPixelsError:
                metrics = {key: float("nan") for key in DEPTH_METRIC_KEYS}
            row.update({f"{key}@{cap:g}": value for key, value in metrics.items()})
        self.rows.append(row)

    def drive(self) -> dict[str, dict[str, float]]:
        """``{"50": {metric: mean over frames, "count": n}, "80": ...}`` (frames without a valid pixel left out)."""
        result = {}
        for cap in self.caps:
            used = [row for row in self.rows if np.isfinite(row[f"abs_rel@{cap:g}"])]
            metrics: dict[str, float] = {key: float(np.mean([row[f"{key}@{cap:g}"] for row in used]))
                                         if used else float("nan") for key in DEPTH_METRIC_KEYS}
            metrics["count"] = len(used)
            result[f"{cap:g}"] = metrics
        return result

    def worst(self, count: int = WORST_FRAMES) -> list[dict[str, Any]]:
        """The ``count`` frames with the largest Abs Rel at the largest cap."""
        key = f"abs_rel@{max(self.caps):g}"
        scored = [row for row in self.rows if np.isfinite(row[key])]
        return sorted(scored, key=lambda row: row[key], reverse=True)[:count]

    def write(self, folder: Path, settings: dict[str, Any]) -> None:
        """``metrics.json``, ``metrics.csv`` and ``report.md`` in ``folder``."""
        drive = self.drive()
        write_json(folder / "metrics.json", {"drive": drive, "frames": self.rows, "frames_scored": len(self.rows),
                                             "frames_without_lidar": self.unscored, **settings})
        columns = ["frame", "stamp_ns", "bag_time_ns", "lidar_pixels"] + [f"{key}@{cap:g}" for cap in self.caps
                                                          for key in DEPTH_METRIC_KEYS]
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        write_atomic(folder / "metrics.csv", text.getvalue().encode("utf-8"))
        write_atomic(folder / "report.md", self._report(drive, settings).encode("utf-8"))

    def _report(self, drive: dict[str, dict[str, float]], settings: dict[str, Any]) -> str:
        lines = ["# Replay against LiDAR", ""]
        lines += [f"- {key}: {value}" for key, value in settings.items()]
        lines += [f"- frames scored: {len(self.rows)}; frames without a paired scan: {self.unscored}", "",
                  "## Drive (mean over frames)", ""]
        for cap in self.caps:
            metrics = drive[f"{cap:g}"]
            lines += [format_depth_table([(f"drive ({metrics['count']} frames)", metrics)], cap=cap,
                                         include_paper=False)]
        top = max(self.caps)
        lines += [f"## Worst frames (Abs Rel at {top:g} m)", "", "| Frame | Stamp (ns) | LiDAR pixels | Abs Rel | "
                  "RMSE (m) | δ<1.25 |", "|---:|---:|---:|---:|---:|---:|"]
        for row in self.worst():
            lines.append(f"| {row['frame']} | {row['stamp_ns']} | {row['lidar_pixels']} | "
                         f"{row[f'abs_rel@{top:g}']:.3f} | {row[f'rmse@{top:g}']:.3f} | {row[f'a1@{top:g}']:.3f} |")
        return "\n".join(lines) + "\n"

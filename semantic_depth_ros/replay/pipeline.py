"""``infer-bag``'s engine: a reader thread decodes ahead, a network thread runs the estimator on batches, the
calling thread serialises and writes behind; bounded queues between them keep memory flat.

Every output message comes from the image topic's ``pipeline.CameraOutputs`` (the node's frame path: stages,
output tensors, host staging, message fields), wrapped by :mod:`.bag_writer`, under the input image's header and
at its bag time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from ..data.bag_reader import BagReader
from ..geometry.intrinsics import input_is_rectified
from ..inference.estimator import DepthEstimator, EstimatorOutputs
from ..messages import NEEDS_INTRINSICS, OutputFields
from ..pipeline import CameraOutputs, CloudLayout, FrameStage, HostStaging, OutputPlan
from .bag_writer import OutputBag, folder_size, header, msgtype_of, serialize
from .copy_input import register_copy
from .frames import Copied, FrameSource, InputFrame, Selection, Skipped, stamp_ordered
from .odometry import BagPoses
from .scoring import DriveScore, LidarTruth
from .topics import image_namespace, output_topic

LOGGER = logging.getLogger(__name__)
_DONE = object()


@dataclass(frozen=True)
class ReplayOptions:
    """What to replay and write (see ``semantic-depth infer-bag --help``)."""

    image_topic: str
    camera_info_topic: str
    outputs: tuple[str, ...]
    batch: int = 8
    storage: str = "mcap"
    copy_input: bool = False
    overwrite: bool = False
    selection: Selection = Selection()
    cloud: CloudLayout = CloudLayout()  # the layout of points, as the node's point_fields, points_drop_labels,
    # point_stride parameters
    lidar_topic: str | None = None
    lidar_frame: str | None = None
    extrinsic: np.ndarray | None = None
    max_dt: float = 0.05
    progress: bool = True
    queue_frames: int = 0  # frames each queue holds (0: two batches)
    odom_topic: str | None = None  # nav_msgs/Odometry: camera poses for the stages (temporal filter)
    camera_extrinsic: np.ndarray | None = None  # 4x4 child_from_camera instead of /tf_static
    input_rectified: str = "auto"  # the node's input_rectified: auto, true or false

    @property
    def rectified(self) -> bool:
        """Whether the images are taken as already rectified (camera_info's P, no undistortion): the node's rule."""
        return input_is_rectified(self.input_rectified, self.image_topic)

    @property
    def plan(self) -> OutputPlan:
        """What each frame gives: the outputs in the cloud layout, and the host depth when scoring."""
        return OutputPlan(self.outputs, self.cloud, host_depth=self.lidar_topic is not None)

    @property
    def needs_camera(self) -> bool:
        """Whether frames need their camera_info: for points, depth_info, depth (the canonical scale), scoring."""
        return self.lidar_topic is not None or any(key in NEEDS_INTRINSICS or key == "depth" for key in self.outputs)


@dataclass
class ReplaySummary:
    """What a replay did."""

    out: Path
    read: int = 0  # selected image messages
    written: int = 0  # frames whose outputs were written
    skipped: int = 0  # undecodable messages (images, copies)
    messages: int = 0  # messages in the output bag
    seconds: float = 0.0
    bytes: int = 0
    scored: int = 0
    skipped_lines: list[str] = field(default_factory=list)
    odometry_line: str = ""

    @property
    def fps(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        """The last line of the command."""
        return (f"frames read {self.read}, written {self.written}, skipped {self.skipped}; "
                f"{self.fps:.1f} frames/s; output {self.bytes / 2**20:.1f} MiB in {self.out}")


@dataclass
class _FrameOut:
    frame: InputFrame
    fields: dict[str, OutputFields]
    depth: np.ndarray | None  # host depth for scoring
    staging: HostStaging


def estimate(estimator: DepthEstimator, frames: Sequence[InputFrame], outputs: Collection[str], *,
             defer: bool = False) -> list[EstimatorOutputs]:
    """THE estimator call of the replay: one batch of frames, each with its camera model (lens distortion is
    removed by the estimator's undistortion, as in the node; outputs are pinhole with the camera's K, D = 0);
    ``defer``: stop at the network's resolution for the stages (``CameraOutputs.defers_upsampling``)."""
    return estimator.estimate_batch([(f.rgb, f.camera) for f in frames], outputs=outputs, defer=defer)


class _Stop(Exception):
    """Another stage failed; this one stops."""


def _put(target: queue.Queue, item: Any, stop: threading.Event) -> None:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            target.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def _get(source: queue.Queue, stop: threading.Event) -> Any:
    while True:
        if stop.is_set():
            raise _Stop
        try:
            return source.get(timeout=0.1)
        except queue.Empty:
            continue


class _Worker(threading.Thread):
    """A thread running ``work``; its exception is kept for the main thread and stops the others."""

    def __init__(self, name: str, work: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(name=name, daemon=True)
        self._work, self._stop_event = work, stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._work()
        except _Stop:
            pass
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            self.error = exc
            self._stop_event.set()


def replay_bag(bag_path: str | Path, out: str | Path, estimator: DepthEstimator, options: ReplayOptions,
               stages: Sequence[FrameStage] = ()) -> ReplaySummary:
    """Run ``estimator`` and then ``stages`` (in order, as the node runs them, with each frame's camera pose from
    ``options.odom_topic`` when given) over the selected frames of ``bag_path`` and write the output bag ``out``.
    With stages, frames run in stamp order within a window of ``options.batch`` frames (a bag stores them in
    arrival order)."""
    wanted = options.outputs
    scoring = options.lidar_topic is not None
    summary = ReplaySummary(out=Path(out))
    with BagReader(bag_path) as bag:
        source = FrameSource(bag, options.image_topic, options.camera_info_topic, needs_camera=options.needs_camera,
                             selection=options.selection, copy_input=options.copy_input, rectified=options.rectified)
        poses = None
        if options.odom_topic is not None:
            poses = BagPoses(bag, options.odom_topic, source.image_conns, options.camera_extrinsic)
        truth = None
        if scoring:
            truth = LidarTruth(bag, source.image_conns, source.info_conns, options.lidar_topic,
                               lidar_frame=options.lidar_frame, extrinsic=options.extrinsic, max_dt=options.max_dt,
                               rectified=options.rectified)
        started = time.perf_counter()
        with OutputBag(out, storage=options.storage, overwrite=options.overwrite) as bag_out:
            namespace = image_namespace(options.image_topic)
            topics = {key: output_topic(namespace, key) for key in wanted}
            for connection in source.copy_conns:
                register_copy(bag_out, connection)
            score = DriveScore() if scoring else None
            camera = CameraOutputs(options.plan, stages)
            items = source.items(truth)
            if stages:
                items = stamp_ordered(items, options.batch)
            _run_threads(items, estimator, camera, options, bag_out, topics, score, summary, source, poses)
            if poses is not None:
                summary.odometry_line = poses.line()
            summary.messages = bag_out.messages
            bag_out.close()
            if score is not None:
                summary.scored = len(score.rows)
                score.write(bag_out.path, {"bag": str(bag_path), "image_topic": options.image_topic,
                                           "lidar_topic": options.lidar_topic, "max_dt_s": options.max_dt,
                                           "model": estimator.model_name, "trained": estimator.trained})
            bag_out.finish()
        summary.seconds = time.perf_counter() - started
    summary.bytes = folder_size(summary.out)
    return summary


def _run_threads(items: Iterator[InputFrame | Skipped | Copied], estimator: DepthEstimator, camera: CameraOutputs,
                 options: ReplayOptions, bag_out: OutputBag, topics: dict[str, str], score: DriveScore | None,
                 summary: ReplaySummary, source: FrameSource, poses: BagPoses | None) -> None:
    """Reader thread -> network thread (batches) -> writing on this thread."""
    size = options.queue_frames or 2 * options.batch
    stop = threading.Event()
    inbox: queue.Queue = queue.Queue(maxsize=size)
    outbox: queue.Queue = queue.Queue(maxsize=size)
    stagings: queue.Queue = queue.Queue()
    for _ in range(size + 2):
        stagings.put(HostStaging())
    selection = options.selection
    whole_bag = (selection.every, selection.start_s, selection.end_s) == (1, None, None)
    bar = tqdm(total=source.total_images if whole_bag else None, unit="frame", desc="infer-bag",
               disable=not options.progress)

    def read() -> None:
        for item in items:
            _put(inbox, item, stop)
        _put(inbox, _DONE, stop)

    def write() -> None:
        registered: set[str] = set()
        while (item := _get(outbox, stop)) is not _DONE:
            if isinstance(item, Copied):
                bag_out.write(item.topic, item.bag_time_ns, item.cdr)
                continue
            frame = item.frame
            head = header(frame.sec, frame.nanosec, frame.frame_id)
            for key, fields in item.fields.items():
                if key not in registered:
                    bag_out.connection(topics[key], msgtype_of(fields))
                    registered.add(key)
                bag_out.write(topics[key], frame.bag_time_ns, serialize(head, fields))
            if score is not None and item.depth is not None:
                score.add(frame.ordinal, frame.sec * 10**9 + frame.nanosec, item.depth, frame.lidar_depth,
                          bag_time_ns=frame.bag_time_ns)
            stagings.put(item.staging)
            summary.written += 1
            bar.update(1)
            bar.set_postfix_str(f"{summary.written / max(bar.format_dict['elapsed'], 1e-9):.1f} fps", refresh=False)

    def infer() -> None:
        _infer(inbox, outbox, stagings, stop, estimator, camera, options, summary, source.start_ns, poses)
        _put(outbox, _DONE, stop)

    # the bag is written on the calling thread: rosbags' sqlite3 storage may only be used by the thread that opened it
    threads = [_Worker("infer-bag-reader", read, stop), _Worker("infer-bag-network", infer, stop)]
    for thread in threads:
        thread.start()
    try:
        write()
    except _Stop:
        pass  # another thread failed: its error is raised below
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        bar.close()
    for thread in threads:
        if thread.error is not None:
            raise thread.error


def _infer(inbox: queue.Queue, outbox: queue.Queue, stagings: queue.Queue, stop: threading.Event,
           estimator: DepthEstimator, camera: CameraOutputs, options: ReplayOptions, summary: ReplaySummary,
           start_ns: int, poses: BagPoses | None) -> None:
    """The network thread: batches of frames through the estimator, each frame through ``camera`` (with its pose
    at the stamp) to the writer."""
    batch: list[InputFrame] = []

    def flush() -> None:
        # with intrinsics the plan needs a superset: one request serves the frames without camera_info too
        outputs = camera.estimator_outputs(has_intrinsics=any(frame.camera is not None for frame in batch))
        results = estimate(estimator, batch, outputs, defer=camera.defers_upsampling)
        depth_range = estimator.depth_range()
        for frame, result in zip(batch, results):
            staging = _get(stagings, stop)
            stamp_ns = frame.sec * 1_000_000_000 + frame.nanosec
            pose = poses.pose_at(stamp_ns, frame.frame_id) if poses is not None else None
            messages = camera.messages(result, stamp_ns, depth_range=depth_range, pose=pose, staging=staging)
            if frame.warmup:  # the stages saw it; nothing is written
                stagings.put(staging)
                continue
            _put(outbox, _FrameOut(frame, messages.fields, messages.depth, staging), stop)
        batch.clear()

    while (item := _get(inbox, stop)) is not _DONE:
        if isinstance(item, InputFrame):
            summary.read += int(not item.warmup)
            batch.append(item)
            if len(batch) >= options.batch:
                flush()
        else:
            if isinstance(item, Skipped):
                summary.read += int(item.image)
                summary.skipped += 1
                line = item.line(start_ns)
                summary.skipped_lines.append(line)
                LOGGER.warning(line)
                continue
            _put(outbox, item, stop)
    if batch:
        flush()

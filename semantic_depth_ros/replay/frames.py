"""The input side of a replay: select, deserialize and decode a bag's camera frames in bag order.

One pass over the image, camera_info (and, for ``--copy-input``, ``/tf`` and ``/tf_static``; for scoring, the
LiDAR) connections in bag-time order yields :class:`InputFrame` (decoded, with its camera model and LiDAR depth),
:class:`Copied` (an input message to copy into the output bag, as CDR) and :class:`Skipped` (an undecodable
message: topic, time and reason). The camera model of an image is the latest camera_info at or before it in bag
time (the first one for images that precede every camera_info: ``semantic-depth extract``'s rule).
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..data.bag_reader import (CAMERA_INFO_TYPE, IMAGE_TYPES, TF_MESSAGE_TYPE, TF_STATIC_TOPIC, TF_TOPIC, BagReader,
                               decode_bag_image)
from ..data.time_pairing import latest_at_or_before
from ..errors import ConfigError, ExtractionError, InvalidInputError
from ..geometry.intrinsics import CameraModel, camera_from_info
from ..geometry.undistort import check_camera_model
from .copy_input import to_output_cdr

LOGGER = logging.getLogger(__name__)


@dataclass
class InputFrame:
    """One selected, decoded camera image: HxWx3 uint8 ``rgb``, its header, camera model and LiDAR depth."""

    ordinal: int  # position of the image among all messages of the image topic
    bag_time_ns: int
    sec: int
    nanosec: int
    frame_id: str
    rgb: np.ndarray
    camera: CameraModel | None
    lidar_depth: np.ndarray | None = None  # HxW float32 metres, 0 = no LiDAR point; None = not scored
    warmup: bool = False  # before the selection's start: through the stages only (Selection.warmup_s)


@dataclass(frozen=True)
class Skipped:
    """A message that could not be used: its topic, bag time (ns) and why."""

    topic: str
    bag_time_ns: int
    reason: str
    image: bool = True  # a camera image of the replay (False: a message of --copy-input)

    def line(self, start_ns: int) -> str:
        """``skipping /cam/image_raw at 12.345 s: <reason>`` (seconds from the bag start)."""
        return f"skipping {self.topic} at {(self.bag_time_ns - start_ns) * 1e-9:.3f} s: {self.reason}"


@dataclass(frozen=True)
class Copied:
    """An input message copied into the output bag: CDR bytes on ``topic`` (registered by ``FrameSource``)."""

    topic: str
    bag_time_ns: int
    cdr: bytes


class LidarTruth(Protocol):
    """What the reader needs from the scorer (``scoring.LidarTruth``)."""

    connections: list[Any]

    def feed(self, bag: BagReader, connection: Any, raw: bytes) -> None: ...
    def ready(self, ordinal: int) -> bool: ...
    def take(self, ordinal: int, camera: CameraModel | None) -> np.ndarray | None: ...
    def release(self, ordinal: int) -> None: ...


@dataclass(frozen=True)
class Selection:
    """Which images to process: every ``every``-th image with bag time in [start_s, end_s] seconds from the start.

    ``warmup_s``: the images of the ``warmup_s`` seconds before ``start_s`` come too, marked ``warmup`` (the replay
    runs them through the stages so a temporal filter starts warm, and writes, scores and counts none of them).
    """

    every: int = 1
    start_s: float | None = None
    end_s: float | None = None
    warmup_s: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"--every {self.every!r} must be a positive integer")
        for name, value in (("--start", self.start_s), ("--end", self.end_s)):
            if value is not None and not (np.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} {value!r} must be a finite number of seconds >= 0")
        if not (np.isfinite(self.warmup_s) and self.warmup_s >= 0):
            raise ConfigError(f"warm-up {self.warmup_s!r} must be a finite number of seconds >= 0")
        if self.start_s is not None and self.end_s is not None and self.end_s < self.start_s:
            raise ConfigError(f"--end {self.end_s} is before --start {self.start_s}")

    def contains(self, offset_ns: int) -> bool:
        """Whether a bag time ``offset_ns`` nanoseconds after the bag start is inside [start_s, end_s] (compared in
        whole nanoseconds: an image at exactly ``--end 0.3`` is inside, though 300_000_000 * 1e-9 > 0.3)."""
        return not ((self.start_s is not None and offset_ns < _whole_ns(self.start_s))
                    or (self.end_s is not None and offset_ns > _whole_ns(self.end_s)))

    def warms_up(self, offset_ns: int) -> bool:
        """Whether a bag time ``offset_ns`` after the bag start is in the warm-up before ``start_s``."""
        if self.start_s is None or self.warmup_s <= 0:
            return False
        return _whole_ns(self.start_s - self.warmup_s) <= offset_ns < _whole_ns(self.start_s)


def _whole_ns(seconds: float) -> int:
    """Seconds -> the nearest whole nanosecond (beyond 1e12 s, a bound no bag reaches, clamped: no overflow)."""
    return round(min(seconds, 1e12) * 1e9)


class FrameSource:
    """The frames of ``image_topic`` in ``bag``; ExtractionError (one line naming the topic) for a missing topic.

    ``camera_info_topic``: required (present, with messages) when ``needs_camera``; otherwise used if present.
    ``copy_input``: also yield the image, camera_info, ``/tf`` and ``/tf_static`` messages as :class:`Copied`.
    ``rectified``: the images are already rectified (``geometry.intrinsics.input_is_rectified``): their camera is
    camera_info's P and nothing is undistorted.
    """

    def __init__(self, bag: BagReader, image_topic: str, camera_info_topic: str, *, needs_camera: bool,
                 selection: Selection = Selection(), copy_input: bool = False, rectified: bool = False) -> None:
        self.bag, self.image_topic, self.selection, self.rectified = bag, image_topic, selection, rectified
        self.image_conns = bag.connections(image_topic, IMAGE_TYPES)
        self.info_conns = bag.connections(camera_info_topic, {CAMERA_INFO_TYPE}, required=needs_camera)
        self._infos: list[tuple[int, Any]] = []
        if self.info_conns:  # (an empty connection list would make rosbags read every topic)
            for connection, bag_time, raw in bag.raw_messages(self.info_conns):
                try:
                    self._infos.append((int(bag_time), bag.deserialize(raw, connection.msgtype)))
                except Exception as exc:  # noqa: BLE001 - a corrupt camera_info is skipped, not the drive
                    LOGGER.warning(Skipped(connection.topic, int(bag_time), f"cannot deserialize "
                                           f"{connection.msgtype}: {type(exc).__name__}").line(bag.start_time_ns))
        if needs_camera and not self._infos:
            raise ExtractionError(f"camera_info topic {camera_info_topic!r} has no messages; depth, points and "
                                  "scoring need the camera's intrinsics")
        self._info_times = [time for time, _ in self._infos]
        self._models: dict[tuple[int, int, int], CameraModel] = {}
        self.needs_camera = needs_camera
        self.copy_conns: list[Any] = []
        if copy_input:
            self.copy_conns = [*self.image_conns, *self.info_conns]
            for topic in (TF_TOPIC, TF_STATIC_TOPIC):
                self.copy_conns += bag.connections(topic, {TF_MESSAGE_TYPE}, required=False)
        self.start_ns = bag.start_time_ns
        self.total_images = sum(int(c.msgcount) for c in self.image_conns)

    def _camera(self, bag_time_ns: int, width: int, height: int) -> CameraModel | None:
        """The camera model in force at ``bag_time_ns`` for a ``width`` x ``height`` image; InvalidInputError for a
        bad camera_info or an unsupported distortion model (that image is then skipped, not the whole batch)."""
        if not self._infos:
            return None
        index = int(latest_at_or_before([bag_time_ns], self._info_times)[0])
        index = max(index, 0)
        key = (index, width, height)
        if key not in self._models:
            self._models[key] = check_camera_model(camera_from_info(self._infos[index][1], width, height,
                                                                    rectified=self.rectified))
        return self._models[key]

    def _decode(self, connection: Any, ordinal: int, bag_time_ns: int, raw: bytes) -> InputFrame | Skipped:
        topic = connection.topic
        try:
            msg = self.bag.deserialize(raw, connection.msgtype)
        except Exception as exc:  # noqa: BLE001 - any failure of a corrupt message's deserialization is a skip
            return Skipped(topic, bag_time_ns, f"cannot deserialize {connection.msgtype}: {type(exc).__name__}")
        try:
            rgb = decode_bag_image(msg, connection.msgtype)
            camera = self._camera(bag_time_ns, rgb.shape[1], rgb.shape[0])
        except InvalidInputError as exc:
            return Skipped(topic, bag_time_ns, str(exc))
        stamp = msg.header.stamp
        return InputFrame(ordinal, bag_time_ns, int(stamp.sec), int(stamp.nanosec), str(msg.header.frame_id), rgb,
                          camera)

    def items(self, truth: LidarTruth | None = None) -> Iterator[InputFrame | Skipped | Copied]:
        """Frames (in bag order), skips and copies; with ``truth``, each frame carries its LiDAR depth."""
        image_ids = {id(c) for c in self.image_conns}
        copy_ids = {id(c) for c in self.copy_conns}
        lidar_ids = {id(c) for c in truth.connections} if truth is not None else set()
        connections = {id(c): c for c in [*self.image_conns, *self.copy_conns,
                                          *(truth.connections if truth else [])]}
        waiting: deque[InputFrame] = deque()
        ordinal = in_window = 0
        for connection, bag_time, raw in self.bag.raw_messages(list(connections.values())):
            key, bag_time = id(connection), int(bag_time)
            if key in copy_ids:
                try:
                    yield Copied(connection.topic, bag_time, to_output_cdr(self.bag, connection, raw))
                except Exception as exc:  # noqa: BLE001 - an undecodable copy is skipped like any message
                    yield Skipped(connection.topic, bag_time, f"cannot copy {connection.msgtype}: "
                                                              f"{type(exc).__name__}", image=False)
            if key in lidar_ids:
                truth.feed(self.bag, connection, raw)
            elif key in image_ids:
                current, ordinal = ordinal, ordinal + 1
                inside = self.selection.contains(bag_time - self.start_ns)
                warmup = self.selection.warms_up(bag_time - self.start_ns)
                chosen = inside and in_window % self.selection.every == 0
                in_window += int(inside)
                if truth is not None and not chosen:
                    truth.release(current)
                if not (chosen or warmup):
                    continue
                item = self._decode(connection, current, bag_time, raw)
                if isinstance(item, Skipped):
                    if chosen:  # a skipped warm-up image is counted by the run that selects it
                        if truth is not None:
                            truth.release(current)
                        yield item
                    continue
                item.warmup = warmup
                waiting.append(item)
            while waiting and (truth is None or truth.ready(waiting[0].ordinal)):
                yield self._finish(waiting.popleft(), truth)
        while waiting:
            yield self._finish(waiting.popleft(), truth)

    def _finish(self, frame: InputFrame, truth: LidarTruth | None) -> InputFrame:
        if truth is not None:
            frame.lidar_depth = truth.take(frame.ordinal, frame.camera)
        return frame


def stamp_ordered(items: Iterator[InputFrame | Skipped | Copied], window: int
                  ) -> Iterator[InputFrame | Skipped | Copied]:
    """``items`` with the frames in header-stamp order within a window of ``window`` frames (bag order is arrival
    order; the stages need stamp order). Skips and copies pass at once; a frame later than the window allows
    comes when it comes (the temporal filter then restarts on it, counted)."""
    held: list[tuple[int, int, InputFrame]] = []
    for item in items:
        if not isinstance(item, InputFrame):
            yield item
            continue
        heapq.heappush(held, (item.sec * 1_000_000_000 + item.nanosec, item.ordinal, item))
        if len(held) > window:
            yield heapq.heappop(held)[2]
    while held:
        yield heapq.heappop(held)[2]

"""Merge the chunks of a long drive (``fleet --chunk-s``) into the drive's one output folder.

Each chunk is an infer-bag output folder of one time window (its frames only: the warm-up frames before its
start went through its stages and were not written). Their messages are copied in window order, each bag's in
bag-time order, under the chunks' own connections; a copied input message (``--copy-input``: every chunk copies
the whole bag's) is kept by the chunk whose window holds its bag time, so each appears once. The metrics rows are
concatenated in the same order and the drive's metrics recomputed by :class:`~..replay.scoring.DriveScore`, so
``metrics.json``, ``metrics.csv`` and ``report.md`` are those of the unchunked run when every frame's depth is.
The merged folder is moved into place atomically, as every output bag.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.bag_reader import BagReader
from ..evaluation.metrics import DEPTH_METRIC_KEYS
from ..replay.bag_writer import OutputBag
from ..replay.copy_input import register_copy
from ..replay.scoring import DriveScore
from .drives import Window

_SCORE_KEYS = ("drive", "frames", "frames_scored", "frames_without_lidar")


def _metric_value(key: str, value: Any) -> Any:
    """A metrics.json row value as scoring wrote it (strict JSON holds NaN as null)."""
    metric = key.split("@")[0]
    return math.nan if value is None and metric in DEPTH_METRIC_KEYS else value


def merge_scores(folders: Sequence[Path]) -> tuple[DriveScore, dict[str, Any]] | None:
    """The drive's score from its chunks' metrics.json (in window order) and the run's settings; None unscored."""
    reports = [json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
               for folder in folders if (folder / "metrics.json").is_file()]
    if not reports:
        return None
    score = DriveScore()
    for report in reports:
        score.rows += [{key: _metric_value(key, value) for key, value in row.items()} for row in report["frames"]]
        score.unscored += int(report["frames_without_lidar"])
    settings = {key: value for key, value in reports[0].items() if key not in _SCORE_KEYS}
    return score, settings


def merge_chunks(chunks: Sequence[tuple[Window, Path]], out: Path, storage: str, bag_start_ns: int) -> int:
    """Write the drive ``out`` from its chunk folders; ``bag_start_ns``: the input bag's start (window offsets are
    from it). Returns the number of messages written."""
    with OutputBag(out, storage=storage) as merged:
        for window, folder in chunks:
            with BagReader(folder) as chunk:
                connections = [conn for topic, msgtype in chunk.topics().items()
                               for conn in chunk.connections(topic, {msgtype})]
                for connection in connections:
                    register_copy(merged, connection)
                for connection, bag_time, raw in chunk.raw_messages(connections):
                    if window.contains(int(bag_time) - bag_start_ns):
                        merged.write(connection.topic, int(bag_time), raw)
        messages = merged.messages
        merged.close()
        scored = merge_scores([folder for _, folder in chunks])
        if scored is not None:
            score, settings = scored
            score.write(merged.path, settings)
        merged.finish()
    return messages

"""KITTI split lists: the two common line formats, and the Eigen split shipped with the package, found by name.

Accepted lines (blank lines are ignored; one format or the other on every line):

- monodepth (Godard et al. 2017): ``<date>/<drive>/image_02/data/<frame>.jpg <date>/<drive>/image_03/data/<frame>.jpg``,
  the left image then the right one; the frame is the first path's (``image_02`` = camera 2, ``image_03`` = 3).
  The extension may be ``.jpg`` (that distribution) or ``.png`` (the raw download); the reader of the images
  accepts either on disk.
- monodepth2: ``<date>/<drive> <frame> <l|r>`` (``l`` = camera 2, ``r`` = camera 3; the side may be omitted for
  ``l``; the frame may be zero-padded or not).

The Eigen split as distributed with monodepth is installed under ``reference/kitti_eigen_split/``:
``eigen_train`` (22,600 pairs, the paper's training set), ``eigen_val`` (888) and ``eigen_test`` (697, the test
set of the paper's Table I). Anywhere a split file is asked for, one of these names or any path works.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

from semantic_depth_ros.errors import DatasetError
from semantic_depth_ros.resources import REFERENCE_DIR, find_named_file

SPLIT_DIR = f"{REFERENCE_DIR}/kitti_eigen_split"
SPLIT_FILE_PATTERN = "{}_files.txt"
_SIDE_TO_CAMERA = {"l": 2, "r": 3}
_IMAGE_PATH = re.compile(r"^(?P<drive>[^/\s]+/[^/\s]+)/image_0(?P<camera>[23])/data/(?P<frame>\d+)\.(?:jpg|png)$")


class KittiFrame(NamedTuple):
    """One line of a split file."""

    drive: str
    """``<date>/<drive>`` folder relative to the root."""
    frame: int
    camera: int
    """2 (left colour) or 3 (right colour)."""


def resolve_split_file(value: str | os.PathLike[str]) -> Path:
    """A split file path, or the installed split named ``value`` (``eigen_test``, ``eigen_val``, ``eigen_train``)."""
    return find_named_file(value, SPLIT_DIR, SPLIT_FILE_PATTERN, "KITTI split")


def _checked_drive(drive: str, where: str) -> str:
    drive = drive.strip("/")
    parts = Path(drive).parts
    if len(parts) != 2 or ".." in parts:
        raise DatasetError(f"{where}: drive must be '<date>/<drive>', got {drive!r}")
    return drive


def parse_split_line(tokens: list[str], where: str) -> KittiFrame:
    """One split line (its whitespace-separated tokens) in either format; DatasetError naming ``where``."""
    first = _IMAGE_PATH.match(tokens[0])
    if first is not None and len(tokens) <= 2 and (len(tokens) == 1 or _IMAGE_PATH.match(tokens[1])):
        drive = _checked_drive(first["drive"], where)
        return KittiFrame(drive=drive, frame=int(first["frame"]), camera=int(first["camera"]))
    side = tokens[2] if len(tokens) == 3 else "l"
    if len(tokens) in (2, 3) and tokens[1].isdigit() and side in _SIDE_TO_CAMERA:
        return KittiFrame(drive=_checked_drive(tokens[0], where), frame=int(tokens[1]), camera=_SIDE_TO_CAMERA[side])
    raise DatasetError(f"{where}: expected '<date>/<drive> <frame> <l|r>' or "
                       f"'<date>/<drive>/image_02/data/<frame>.jpg <right image>', got {' '.join(tokens)!r}")


def read_split_file(value: str | os.PathLike[str]) -> list[KittiFrame]:
    """The frames of a split file (a path, or an installed split's name), in file order."""
    path = resolve_split_file(value)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"split file {path} is not a text file") from None
    frames: list[KittiFrame] = []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if tokens:
            frames.append(parse_split_line(tokens, f"{path}:{number}"))
    if not frames:
        raise DatasetError(f"split file lists no frames: {path}")
    return frames

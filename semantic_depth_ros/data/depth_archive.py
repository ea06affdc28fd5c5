"""Ground-truth depth of a whole split in one compressed ``.npz`` (written by ``semantic-depth export-gt``).

Layout: one HxW float32 array per frame (metres, 0 = no depth) under the keys ``00000``, ``00001``, ... in split
order. No object arrays: KITTI frames differ in size, and monodepth2's single ragged ``data`` array needs pickle to
load, which nothing here may use. The file is written frame by frame (one frame in memory at a time) to a
temporary name and moved into place; it is read with ``allow_pickle=False``, every array's header (shape, dtype)
is checked before any data is read.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from semantic_depth_ros.errors import DatasetError
from semantic_depth_ros.files import atomic_path
from semantic_depth_ros.limits import MAX_IMAGE_SIDE as MAX_SIDE


def archive_key(index: int) -> str:
    """The key of frame ``index``: ``00000``, ``00001``, ..."""
    return f"{index:05d}"


def write_depth_archive(path: str | os.PathLike[str], depths: Iterable[np.ndarray]) -> int:
    """Write HxW depth maps (metres, 0 = none) in order as a compressed npz; returns the number of frames."""
    count = 0
    with atomic_path(path) as temporary, \
            zipfile.ZipFile(temporary, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
        for depth in depths:
            depth = np.ascontiguousarray(depth, dtype=np.float32)
            if depth.ndim != 2:
                raise DatasetError(f"frame {count}: depth must be HxW, got shape {depth.shape}")
            with archive.open(f"{archive_key(count)}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, depth, allow_pickle=False)
            count += 1
    return count


def _member_header(archive: zipfile.ZipFile, name: str, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of one ``.npy`` member, read from its header only."""
    try:
        with archive.open(name) as member:
            version = np.lib.format.read_magic(member)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(member)
    except (ValueError, zipfile.BadZipFile, zlib.error, OSError, EOFError) as exc:
        raise DatasetError(f"gt file {path}: member {name} is not a numpy array ({exc})") from None
    return tuple(shape), dtype


class DepthArchive:
    """Read-only view of a depth archive holding exactly ``expected_count`` frames.

    ``archive[i]`` is frame ``i`` as HxW float32 metres. Raises DatasetError (one line naming the file) when the
    file is missing or not an npz, holds object arrays or monodepth2's ``data`` layout, misses a key, or holds
    a frame that is not a 2-D float array of a sane size.
    """

    def __init__(self, path: str | os.PathLike[str], expected_count: int) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DatasetError(f"gt file not found: {self.path}")
        try:
            with zipfile.ZipFile(self.path) as archive:
                headers = {name[:-4]: _member_header(archive, name, self.path)
                           for name in archive.namelist() if name.endswith(".npy")}
        except (zipfile.BadZipFile, OSError) as exc:
            raise DatasetError(f"gt file {self.path} is not an npz archive ({exc})") from None
        if "data" in headers and archive_key(0) not in headers:
            raise DatasetError(f"gt file {self.path} has monodepth2's single 'data' array (needs pickle); "
                               "write it with `semantic-depth export-gt`")
        if len(headers) != expected_count:
            raise DatasetError(f"gt file {self.path} holds {len(headers)} frames, the split lists {expected_count}")
        for index in range(expected_count):
            key = archive_key(index)
            if key not in headers:
                raise DatasetError(f"gt file {self.path} has no frame {key} (keys must be 00000, 00001, ...)")
            shape, dtype = headers[key]
            if dtype.hasobject or dtype.kind != "f":
                raise DatasetError(f"gt file {self.path} frame {key} has dtype {dtype}, expected float32 metres")
            if len(shape) != 2 or not all(1 <= side <= MAX_SIDE for side in shape):
                raise DatasetError(f"gt file {self.path} frame {key} has shape {shape}, expected HxW "
                                   f"with sides 1..{MAX_SIDE}")
        self.shapes = {index: headers[archive_key(index)][0] for index in range(expected_count)}
        self._npz: Any = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_npz": None, "_pid": -1}  # each process opens its own file handle

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, index: int) -> np.ndarray:
        if self._pid != os.getpid():  # DataLoader workers forked from this process must not share its file offset
            self._npz, self._pid = np.load(self.path, allow_pickle=False), os.getpid()
        try:
            return np.asarray(self._npz[archive_key(index)], dtype=np.float32)
        except (ValueError, OSError, zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise DatasetError(f"gt file {self.path} frame {archive_key(index)} cannot be read ({exc})") from None

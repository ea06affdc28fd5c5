"""Writing files so that a crash never leaves half a file, and checking output folders (importable from every layer).

Every file the package writes goes through :func:`atomic_path` (or :func:`write_atomic`): the content is written to
a temporary file in the destination's folder, flushed to disk (``fsync``), renamed over the destination
(``os.replace``, atomic on POSIX and Windows), and the folder's entry is flushed too. A reader sees the old file or
the complete new one; a crash or an exception leaves the old file and no temporary one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ConfigError


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name (``torch.save``, ``zipfile``).

    When the block ends normally the file is fsynced and renamed over ``path``; when it raises, it is removed.
    The parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        _fsync_file(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)


def ensure_writable_folder(folder: Path, name: str) -> None:
    """Create ``folder`` (and its parents) if missing; ConfigError starting with ``name`` when it cannot be created
    or is not writable."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{name}: cannot be created ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{name}: is not writable")


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Flush the folder's entries (the rename) where the platform can open a folder (POSIX; not Windows)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass  # some file systems refuse fsync on a folder; the file itself is on disk already
    finally:
        os.close(handle)

"""Locate the package's installed data files (model presets, configs, launch files, reference data).

The same lookup works for a colcon install (ament index), a pip install (``<prefix>/share``) and a source
checkout (the repository's top-level folders), in that order.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import DatasetError

PACKAGE_NAME = "semantic_depth_ros"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_directories() -> list[Path]:
    """Candidate roots holding ``models/``, ``config/`` and ``launch/``, most specific first."""
    roots: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory

        roots.append(Path(get_package_share_directory(PACKAGE_NAME)))
    except (ImportError, LookupError, OSError, ValueError):
        pass  # not installed through colcon, or no ament environment sourced
    roots.append(Path(sys.prefix) / "share" / PACKAGE_NAME)
    roots.append(_SOURCE_ROOT)
    return roots


def find_data_file(subdir: str, name: str) -> Path | None:
    """Return the first existing ``<root>/<subdir>/<name>`` over :func:`share_directories`, or None."""
    for root in share_directories():
        candidate = root / subdir / name
        if candidate.is_file():
            return candidate
    return None


def list_data_files(subdir: str, pattern: str) -> list[Path]:
    """All files matching ``pattern`` in the first root whose ``subdir`` has any."""
    for root in share_directories():
        found = sorted((root / subdir).glob(pattern))
        if found:
            return found
    return []


REFERENCE_DIR = "reference"
"""Installed reference data: ``reference/paper_table1.csv`` and ``reference/kitti_eigen_split/*_files.txt``."""


def find_named_file(value: str | os.PathLike[str], subdir: str, file_pattern: str, what: str) -> Path:
    """``value`` as an existing file path, else as the name of an installed data file.

    A name ``n`` is looked up as ``<subdir>/<file_pattern.format(n)>`` over :func:`share_directories`, e.g.
    ``find_named_file("eigen_test", "reference/kitti_eigen_split", "{}_files.txt", "KITTI split")``.
    Raises DatasetError naming the value and the installed names when it is neither.
    """
    path = Path(value)
    if path.is_file():
        return path
    name = os.fspath(value)
    if name and "/" not in name and os.sep not in name:
        found = find_data_file(subdir, file_pattern.format(name))
        if found is not None:
            return found
    prefix, _, suffix = file_pattern.partition("{}")
    installed = list_data_files(subdir, file_pattern.format("*"))
    names = sorted(p.name[len(prefix):len(p.name) - len(suffix)] for p in installed)
    raise DatasetError(f"{what} {name!r} is neither a file nor an installed name (installed: "
                       f"{', '.join(names) if names else 'none'})")

"""Locate the package's installed data files (model presets, configs, launch files).

The same lookup works for a colcon install (ament index), a pip install (``<prefix>/share``) and a source
checkout (the repository's top-level folders), in that order.
"""

from __future__ import annotations

import sys
from pathlib import Path

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

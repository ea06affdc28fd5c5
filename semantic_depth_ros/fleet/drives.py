"""The drives of a fleet: bags given or found under folders, each with its output name, and a long drive's time
windows (``--chunk-s``).

A bag is a ROS 1 ``.bag`` file or a ROS 2 bag folder (one holding ``metadata.yaml``). A path given on the command
line is a bag when it is one of those (or any other file: it is then the reader's to refuse, and that drive fails
alone); a folder that is not a bag is searched (sorted, not into bag folders) for bags. A drive's name is its bag's
name without ``.bag``; a bag found under a folder is named by its path below that folder (``day1__drive03``), so
two drives never share an output folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError

METADATA = "metadata.yaml"
NAME_SEPARATOR = "__"  # between folder levels of a bag found below a given folder


@dataclass(frozen=True)
class Drive:
    """One bag of the fleet and the name of its output folder."""

    name: str
    bag: Path


@dataclass(frozen=True)
class Window:
    """One chunk of a drive: images with bag time offsets (ns from the bag start) in [start_ns, end_ns); None is
    open. ``warmup_ns``: how far before ``start_ns`` the chunk's stages start (nothing of it is written)."""

    index: int
    start_ns: int | None
    end_ns: int | None
    warmup_ns: int = 0

    def contains(self, offset_ns: int) -> bool:
        return ((self.start_ns is None or offset_ns >= self.start_ns)
                and (self.end_ns is None or offset_ns < self.end_ns))


def is_bag(path: Path) -> bool:
    """Whether ``path`` is a ROS 1 bag file or a ROS 2 bag folder."""
    return (path.is_file() and path.suffix == ".bag") or (path.is_dir() and (path / METADATA).is_file())


def _drive_name(bag: Path, root: Path | None) -> str:
    relative = bag.relative_to(root) if root is not None else Path(bag.name)
    parts = list(relative.parts)
    if parts[-1].endswith(".bag"):
        parts[-1] = parts[-1][: -len(".bag")]
    return NAME_SEPARATOR.join(parts)


def _found_under(root: Path, skip: Path) -> list[Path]:
    """The bags under folder ``root`` (not descending into bags, nor into ``skip``: the fleet's output)."""
    bags = []
    for folder, subfolders, files in os.walk(root):
        here = Path(folder)
        subfolders.sort()
        kept = []
        for name in subfolders:
            path = here / name
            if path.resolve() == skip:
                continue
            if is_bag(path):
                bags.append(path)
            else:
                kept.append(name)
        subfolders[:] = kept
        bags += [here / name for name in sorted(files) if name.endswith(".bag")]
    return sorted(bags)


def find_drives(paths: list[str | Path], out: Path) -> list[Drive]:
    """The drives of ``paths`` in the order given (bags found under a folder: sorted by path); ConfigError for a
    missing path, a folder without bags or two drives of the same name."""
    drives: list[Drive] = []
    skip = out.resolve()
    for given in map(Path, paths):
        if not given.exists():
            raise ConfigError(f"drive {given} does not exist")
        if given.is_dir() and not is_bag(given):
            found = _found_under(given, skip)
            if not found:
                raise ConfigError(f"folder {given} holds no bag (a ROS 1 .bag file or a ROS 2 folder with "
                                  f"{METADATA})")
            drives += [Drive(_drive_name(bag, given), bag) for bag in found]
        else:
            drives.append(Drive(_drive_name(given, None), given))
    seen: dict[str, Path] = {}
    for drive in drives:
        if drive.name in seen:
            raise ConfigError(f"drives {seen[drive.name]} and {drive.bag} would both write {out / drive.name}: "
                              "give them from different folders or rename one")
        seen[drive.name] = drive.bag
    return drives


def chunk_windows(duration_ns: int, chunk_ns: int, first_ns: int | None, last_ns: int | None,
                  warmup_ns: int) -> list[Window]:
    """Windows of ``chunk_ns`` covering the selected span (``first_ns``/``last_ns``: the replay's --start/--end as
    offsets, None = the bag's own ends) of a drive lasting ``duration_ns``; the first is open below, the last
    above (so together they select exactly what the unchunked run selects)."""
    if chunk_ns <= 0:
        raise ConfigError(f"--chunk-s must be positive, not {chunk_ns * 1e-9:g}")
    begin = first_ns or 0
    stop = duration_ns if last_ns is None else min(last_ns, duration_ns)
    cuts = list(range(begin + chunk_ns, stop + 1, chunk_ns)) if stop > begin else []
    if cuts and cuts[-1] >= stop:
        cuts.pop()  # no empty window at the end
    starts: list[int | None] = [first_ns, *cuts]
    ends: list[int | None] = [*cuts, None if last_ns is None else last_ns + 1]  # --end is inclusive
    return [Window(index, start, end, 0 if index == 0 else warmup_ns)
            for index, (start, end) in enumerate(zip(starts, ends))]

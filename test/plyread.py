"""Reads back the binary PLY clouds ``evaluation.visualize.write_ply`` writes (test helper)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def read_ply_vertices(path: str | os.PathLike[str]) -> np.ndarray:
    """The vertices of a PLY written by ``write_ply`` as a structured array (x, y, z, red, green, blue)."""
    data = Path(path).read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    count = int(next(line for line in data[:end].decode("ascii").splitlines() if line.startswith("element vertex"))
                .split()[2])
    return np.frombuffer(data, dtype=PLY_VERTEX, count=count, offset=end)

"""Files a person looks at: PNG images, error maps, PLY point clouds and a one-page summary sheet (ROS-free)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import cv2
import numpy as np

from ..data.fileio import encode_png
from ..files import write_atomic
from ..geometry.pointcloud import unpack_rgb

ERROR_MAP_MAX_REL = 0.3  # relative error shown as the hottest colour of the error map


def write_rgb_png(path: str | os.PathLike[str], rgb: np.ndarray) -> None:
    """Write HxWx3 uint8 RGB (or HxW grey) atomically as PNG."""
    write_atomic(path, encode_png(np.ascontiguousarray(rgb)))


def confidence_image(confidence: np.ndarray) -> np.ndarray:
    """HxW confidence in [0, 1] (NaN allowed) -> HxWx3 uint8 grey-scale RGB (white = confident)."""
    grey = np.nan_to_num(np.clip(confidence, 0.0, 1.0), nan=0.0) * 255.0
    return np.repeat(np.round(grey).astype(np.uint8)[..., None], 3, axis=2)


def error_map(pred: np.ndarray, gt: np.ndarray, *, max_rel: float = ERROR_MAP_MAX_REL) -> np.ndarray:
    """Relative depth error |pred - gt| / gt as HxWx3 uint8 RGB (black: 0, red/white: >= ``max_rel``).

    Pixels without ground truth (gt <= 0 or NaN) are dark grey; a missing prediction (NaN) on a valid pixel
    is the hottest colour, as the metrics count it.
    """
    valid = np.isfinite(gt) & (gt > 0)
    rel = np.full(gt.shape, max_rel, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel[valid] = np.abs(pred[valid] - gt[valid]) / gt[valid]
    rel = np.nan_to_num(rel, nan=max_rel)
    level = np.round(np.clip(rel / max_rel, 0.0, 1.0) * 255).astype(np.uint8)
    bgr = cv2.applyColorMap(level, cv2.COLORMAP_HOT)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    rgb[~valid] = (40, 40, 40)
    return rgb


def write_ply(path: str | os.PathLike[str], cloud: np.ndarray) -> int:
    """Write the finite points of an organised cloud (h x w x 4 float32: x, y, z, packed rgb) as binary PLY.

    Returns the number of points written. The rgb float's bits are the uint32 (r<<16)|(g<<8)|b of PointCloud2.
    """
    points = np.ascontiguousarray(cloud, dtype=np.float32).reshape(-1, 4)
    points = points[np.isfinite(points[:, :3]).all(axis=1)]
    colours = unpack_rgb(points[:, 3])
    vertex = np.empty(len(points), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                                          ("red", "u1"), ("green", "u1"), ("blue", "u1")])
    vertex["x"], vertex["y"], vertex["z"] = points[:, 0], points[:, 1], points[:, 2]
    vertex["red"], vertex["green"], vertex["blue"] = colours[:, 0], colours[:, 1], colours[:, 2]
    header = ("ply\nformat binary_little_endian 1.0\n"
              f"element vertex {len(points)}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    write_atomic(path, header.encode("ascii") + vertex.tobytes())
    return len(points)


def _label(image: np.ndarray, text: str) -> np.ndarray:
    """A copy of ``image`` with a caption band on top."""
    band = np.full((22, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([band, image], axis=0)


def summary_sheet(rows: Sequence[Sequence[tuple[str, np.ndarray]]], lines: Sequence[str], *,
                  tile_width: int = 320) -> np.ndarray:
    """One page: a text block (``lines``) over a grid of captioned RGB tiles, each resized to ``tile_width``; a row
    of fewer tiles than the longest row gets wider tiles that fill the page's width."""
    grid_rows = []
    page = max(len(row) for row in rows) * (tile_width + 4)
    for row in rows:
        tiles = []
        width = page // len(row) - 4
        for caption, image in row:
            height = max(1, round(image.shape[0] * width / image.shape[1]))
            resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            tiles.append(_label(resized, caption))
        tallest = max(t.shape[0] for t in tiles)
        tiles = [np.pad(t, ((0, tallest - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in tiles]
        grid_rows.append(np.concatenate(tiles, axis=1))
    width = max(r.shape[1] for r in grid_rows)
    grid_rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in grid_rows]
    text = np.full((18 * len(lines) + 10, width, 3), 255, dtype=np.uint8)
    for index, line in enumerate(lines):
        cv2.putText(text, line, (6, 18 * (index + 1)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([text, *grid_rows], axis=0)

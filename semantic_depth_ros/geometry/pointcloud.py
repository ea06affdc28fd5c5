"""Back-projection of a depth image to an organised point buffer in one of the node's PointCloud2 layouts.

Layouts (``POINT_LAYOUTS``, the node's ``point_fields``; the README's `points` topic; ``messages.fields`` builds
the PointCloud2 fields): one point per (decimated) depth pixel, row-major, little-endian, every field 4 bytes,
packed without padding, ``row_step = width * point_step``; invalid points have NaN x, y, z (``is_dense = false``).

- ``xyzrgb`` (``DEFAULT_POINT_FIELDS``): ``x y z rgb`` FLOAT32 at 0, 4, 8, 12; ``POINT_STEP`` = 16.
- ``xyzrgbl``: then ``label`` UINT32 at 16 (the Cityscapes train id of the ``semantic`` output at that pixel);
  point_step 20. PCL's ``PointXYZRGBL`` has the same field names, but in memory it is 32 bytes (x y z + pad, rgb
  at 16, label at 20, aligned to 16): ``pcl::fromROSMsg`` and rviz2 read fields by name and offset, so the packed
  20-byte layout converts to ``pcl::PointXYZRGBL`` unchanged while sending 37 % fewer bytes than the padded one.
- ``xyzrgblc``: then ``confidence`` FLOAT32 at 20 (``depth/confidence`` at that pixel, in [0, 1]); point_step 24.

``rgb`` holds the bits of the uint32 ``(r << 16) | (g << 8) | b`` as PCL and rviz2 expect. Coordinates are in the
camera optical frame (REP-103: x right, y down, z forward), metres. Points whose label is in ``drop_labels`` get
NaN x, y, z like invalid depth (their label and confidence fields keep the pixel's values).

Everything here is torch and runs on the device of its inputs; the ray grid is cached (``cached_rays``) so no
per-frame allocation of it happens.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np
import torch

from ..cache import BoundedCache, device_key
from ..errors import InvalidInputError
from ..labels import NUM_CLASSES
from .intrinsics import Intrinsics

POINT_STEP = 16
POINT_FIELDS: tuple[tuple[str, int], ...] = (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))
POINT_FIELD_DATATYPE = 7  # sensor_msgs/PointField.FLOAT32, the datatype of every field in POINT_FIELDS
POINT_FIELD_UINT32 = 6  # sensor_msgs/PointField.UINT32
_XYZRGB = tuple((name, offset, POINT_FIELD_DATATYPE) for name, offset in POINT_FIELDS)
# point_fields name -> (field name, byte offset, PointField datatype) of each 4-byte field, in memory order
POINT_LAYOUTS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "xyzrgb": _XYZRGB,
    "xyzrgbl": (*_XYZRGB, ("label", 16, POINT_FIELD_UINT32)),
    "xyzrgblc": (*_XYZRGB, ("label", 16, POINT_FIELD_UINT32), ("confidence", 20, POINT_FIELD_DATATYPE)),
}
DEFAULT_POINT_FIELDS = "xyzrgb"  # the layout of ``points`` unless configured (the node's point_fields default)
_LABEL_INDEX = 4  # float32 slot of ``label`` in the layouts that have it
_CONFIDENCE_INDEX = 5


def check_point_fields(point_fields: str) -> tuple[tuple[str, int, int], ...]:
    """The layout named ``point_fields`` (``POINT_LAYOUTS``); InvalidInputError naming an unknown one."""
    layout = POINT_LAYOUTS.get(point_fields) if isinstance(point_fields, str) else None
    if layout is None:
        raise InvalidInputError(f"point_fields = {point_fields!r} is not one of {', '.join(POINT_LAYOUTS)}")
    return layout


def point_step(point_fields: str) -> int:
    """Bytes per point of the layout ``point_fields``."""
    return 4 * len(check_point_fields(point_fields))


def check_drop_labels(drop_labels: Sequence[int]) -> tuple[int, ...]:
    """``drop_labels`` as a tuple of train ids; InvalidInputError naming one that is not an int in 0..18."""
    ids = tuple(drop_labels)
    for label in ids:
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or not 0 <= label < NUM_CLASSES:
            raise InvalidInputError(f"drop label {label!r} is not a Cityscapes train id (an integer in "
                                    f"0..{NUM_CLASSES - 1})")
    return tuple(int(label) for label in ids)


def layout_needs(point_fields: str, drop_labels: Sequence[int] = ()) -> tuple[str, ...]:
    """Per-pixel inputs besides depth and colours that a cloud in ``point_fields`` dropping ``drop_labels`` needs:
    a subset of ``("semantic", "confidence")``."""
    names = {name for name, _, _ in check_point_fields(point_fields)}
    needs = []
    if "label" in names or check_drop_labels(drop_labels):
        needs.append("semantic")
    if "confidence" in names:
        needs.append("confidence")
    return tuple(needs)


def check_stride(stride: int) -> int:
    """Return ``stride`` if it is an int >= 1, else raise naming it."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InvalidInputError(f"point stride = {stride!r} must be an integer >= 1")
    return stride


def build_rays(intr: Intrinsics, stride: int, device: torch.device | str) -> torch.Tensor:
    """Rays ``(h, w, 3)`` float32 on ``device`` for pixels ``u = 0, stride, ...`` and ``v = 0, stride, ...``.

    Each ray is ``((u - cx) / fx, (v - cy) / fy, 1)``, so ``ray * z`` is the 3-D point at depth ``z`` metres.
    ``h = ceil(height / stride)``, ``w = ceil(width / stride)``. Computed in float64, stored as float32.
    """
    stride = check_stride(stride)
    u = torch.arange(0, intr.width, stride, dtype=torch.float64)
    v = torch.arange(0, intr.height, stride, dtype=torch.float64)
    x = ((u - intr.cx) / intr.fx).expand(v.numel(), u.numel())
    y = ((v - intr.cy) / intr.fy).unsqueeze(1).expand(v.numel(), u.numel())
    rays = torch.stack((x, y, torch.ones_like(x)), dim=-1)
    return rays.to(device=device, dtype=torch.float32).contiguous()


RayGrids = BoundedCache[tuple[Intrinsics, int, torch.device], torch.Tensor]
"""Ray grids keyed by (intrinsics, stride, device); one per camera (``pipeline.CameraOutputs``)."""
RAY_GRID_CACHE_SIZE = 8  # grids a camera keeps: a few sizes and strides, bounded when camera_info keeps changing


def ray_grids(max_entries: int = RAY_GRID_CACHE_SIZE) -> RayGrids:
    """An empty cache of ray grids for ``cached_rays``."""
    return BoundedCache(max_entries, "ray grid cache")


def cached_rays(cache: RayGrids, intr: Intrinsics, stride: int, device: torch.device | str) -> torch.Tensor:
    """``build_rays(intr, stride, device)`` from ``cache`` (the same tensor until evicted; do not modify it)."""
    key = (intr, check_stride(stride), device_key(device))
    return cache.get(key, lambda: build_rays(intr, key[1], key[2]))


def _check_rgb(rgb: torch.Tensor) -> None:
    """Raise unless ``rgb`` is a uint8 HxWx3 tensor."""
    if rgb.dtype != torch.uint8 or rgb.dim() != 3 or rgb.shape[2] != 3:
        raise InvalidInputError(f"rgb must be a uint8 HxWx3 tensor, got {rgb.dtype} of shape {tuple(rgb.shape)}")


def _pack_rgb_int32(rgb: torch.Tensor) -> torch.Tensor:
    """HxWx3 uint8 -> HxW int32 ``(r << 16) | (g << 8) | b`` (always < 2**24, so the sign bit is clear)."""
    channels = rgb.to(torch.int32)
    return (channels[..., 0] << 16) | (channels[..., 1] << 8) | channels[..., 2]


def pack_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """HxWx3 uint8 RGB -> HxW float32 whose bits are the uint32 ``(r << 16) | (g << 8) | b`` (PCL/rviz2 ``rgb``).

    The values are bit patterns, not numbers: copy them, never do arithmetic on them.
    """
    _check_rgb(rgb)
    return _pack_rgb_int32(rgb).view(torch.float32)


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Inverse of ``pack_rgb`` for tools and tests: float32 array of any shape -> uint8 ``(N, 3)`` RGB."""
    bits = np.ascontiguousarray(packed, dtype=np.float32).reshape(-1).view(np.uint32)
    return np.stack(((bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF), axis=1).astype(np.uint8)


def _valid_mask(z: torch.Tensor, min_range: float | None, max_range: float | None) -> torch.Tensor:
    """Depths that are finite, positive and inside ``[min_range, max_range]`` (bounds optional, metres)."""
    valid = torch.isfinite(z) & (z > 0)
    if min_range is not None:
        valid &= z >= min_range
    if max_range is not None:
        valid &= z <= max_range
    return valid


def backproject_organised(
    depth: torch.Tensor,
    rays: torch.Tensor,
    rgb: torch.Tensor | None = None,
    stride: int = 1,
    min_range: float | None = None,
    max_range: float | None = None,
    *,
    point_fields: str = DEFAULT_POINT_FIELDS,
    labels: torch.Tensor | None = None,
    confidence: torch.Tensor | None = None,
    drop_labels: Sequence[int] = (),
) -> torch.Tensor:
    """Organised point cloud ``(h, w, n)`` float32 in the PointCloud2 layout ``point_fields`` (module docstring),
    ``n`` = its number of fields: ``[x, y, z, rgb]`` (+ ``label`` bits, + ``confidence``).

    ``depth``: ``(H, W)`` float metres along the optical axis, NaN (or <= 0, or infinite) = invalid.
    ``rays``: ``(h, w, 3)`` from ``cached_rays(cache, intr, stride, depth.device)`` for the depth image's intrinsics.
    ``rgb``: optional ``(H, W, 3)`` uint8 colours at the depth resolution (moved to the depth's device if needed);
    without it the ``rgb`` field is 0. ``labels``: ``(H, W)`` integer train ids (the ``semantic`` output), needed
    by the layouts with ``label`` and by a non-empty ``drop_labels`` (train ids whose points become NaN);
    ``confidence``: ``(H, W)`` float in [0, 1], needed by ``xyzrgblc``. Decimation keeps ``depth[::stride,
    ::stride]``. Points that are invalid or whose z is outside ``[min_range, max_range]`` get NaN x, y, z. The
    result is contiguous, so ``out.cpu().numpy().tobytes()`` is exactly the PointCloud2 ``data``.
    """
    stride = check_stride(stride)
    layout = check_point_fields(point_fields)
    drop = check_drop_labels(drop_labels)
    if depth.dim() != 2 or not depth.is_floating_point():
        raise InvalidInputError(f"depth must be a float HxW tensor, got {depth.dtype} of shape {tuple(depth.shape)}")
    z = depth[::stride, ::stride].to(torch.float32)
    if rays.shape != (*z.shape, 3) or rays.device != depth.device:
        raise InvalidInputError(
            f"rays of shape {tuple(rays.shape)} on {rays.device} do not match depth {tuple(depth.shape)} "
            f"on {depth.device} at stride {stride} (expected {(*z.shape, 3)})"
        )
    has_label = len(layout) > _LABEL_INDEX
    ids = _decimated("labels", labels, depth, stride) if has_label or drop else None
    valid = _valid_mask(z, min_range, max_range)
    for label in drop:
        valid &= ids != label
    z = torch.where(valid, z, torch.full_like(z, float("nan")))
    out = torch.empty((*z.shape, len(layout)), dtype=torch.float32, device=depth.device)
    torch.mul(rays, z.unsqueeze(-1), out=out[..., :3])
    bits = out.view(torch.int32)
    if rgb is None:
        bits[..., 3].zero_()
    else:
        _check_rgb(rgb)
        if rgb.shape[:2] != depth.shape:
            raise InvalidInputError(f"rgb of shape {tuple(rgb.shape)} does not match depth {tuple(depth.shape)}")
        _write_rgb(out, rgb.to(depth.device, non_blocking=True)[::stride, ::stride])
    if has_label:
        bits[..., _LABEL_INDEX].copy_(ids)
    if len(layout) > _CONFIDENCE_INDEX:
        out[..., _CONFIDENCE_INDEX].copy_(_decimated("confidence", confidence, depth, stride))
    return out


def _write_rgb(out: torch.Tensor, rgb: torch.Tensor) -> None:
    """Column 3 (``rgb``) of the ``(h, w, n)`` float32 ``out``: the bits of ``(r << 16) | (g << 8) | b`` of the
    ``(h, w, 3)`` uint8 ``rgb``. On a little-endian host (every host a message leaves from in practice) those are
    the bytes b, g, r, 0: written byte by byte, with no int32 temporaries (a third of the cloud's time at 375x1242
    on a CPU otherwise)."""
    if sys.byteorder != "little":
        out.view(torch.int32)[..., 3].copy_(_pack_rgb_int32(rgb))
        return
    field = out.view(torch.uint8)[..., 12:16]
    for byte, channel in enumerate((2, 1, 0)):
        field[..., byte].copy_(rgb[..., channel])
    field[..., 3].zero_()


def _decimated(name: str, values: torch.Tensor | None, depth: torch.Tensor, stride: int) -> torch.Tensor:
    """``values[::stride, ::stride]`` on the depth's device; InvalidInputError when missing or not HxW of depth."""
    if values is None:
        raise InvalidInputError(f"this point layout needs {name} (HxW, like depth)")
    if values.shape != depth.shape:
        raise InvalidInputError(f"{name} of shape {tuple(values.shape)} does not match depth {tuple(depth.shape)}")
    return values.to(depth.device, non_blocking=True)[::stride, ::stride]

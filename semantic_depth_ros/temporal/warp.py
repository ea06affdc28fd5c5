"""Forward warping of a depth image into another view of the same pinhole camera (torch, on the depth's device).

Each valid pixel of the previous depth image (finite, > 0 m) is back-projected with the image's ``Intrinsics``
(``geometry.pointcloud`` ray grid, cached), moved by the relative pose ``current_from_previous`` (4x4, metres:
``p_current = T @ p_previous`` in optical coordinates, x right, y down, z forward) and splatted to the nearest pixel
centre of the current image (``floor(u + 0.5)``, the package's pixel-centre convention). Where several points land
on one pixel the nearest wins (z-buffer; among equal depths the higher source index, so the result never depends on
the order of parallel writes). Pixels no point lands on are holes: NaN depth, source -1. Values carried along with
the depth (a filter's per-pixel state) are taken from the winning source pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..geometry.pointcloud import cached_rays, ray_grids

MIN_WARP_DEPTH_M = 1e-3  # points closer than this to the current camera (or behind it) are dropped

MIN_FILL_NEIGHBOURS = 3  # fill_small_holes: fewest valid 8-neighbours of a hole it fills

_RAYS = ray_grids(max_entries=8)


@dataclass(frozen=True)
class WarpResult:
    """A warped image: ``depth`` HxW float32 metres in the current view (NaN = hole), ``values`` the carried
    images (HxW each, NaN at holes for floating point), ``source`` HxW int64 flat index of the previous pixel that
    landed there (-1 = hole)."""

    depth: torch.Tensor
    values: tuple[torch.Tensor, ...]
    source: torch.Tensor


def pose_tensor(transform: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """A 4x4 rigid transform as float32 on ``device``; InvalidInputError unless it is a finite 4x4 matrix."""
    matrix = torch.as_tensor(transform, dtype=torch.float64)
    if matrix.shape != (4, 4) or not bool(torch.isfinite(matrix).all()):
        raise InvalidInputError(f"relative pose must be a finite 4x4 matrix, got shape {tuple(matrix.shape)}")
    return matrix.to(device=device, dtype=torch.float32)


def project_depth(depth: torch.Tensor, intrinsics: Intrinsics, current_from_previous: np.ndarray | torch.Tensor
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where each previous pixel's 3-D point appears in the current view: its depth ``z`` (HxW metres, NaN where
    the depth is invalid) and sub-pixel column ``u`` and row ``v`` (HxW float32, pixel centres at integers)."""
    _check_depth(depth, intrinsics)
    transform = pose_tensor(current_from_previous, depth.device)
    ray_x, ray_y, _ = cached_rays(_RAYS, intrinsics, 1, depth.device).unbind(-1)
    valid_depth = depth.float() / (depth > 0)  # NaN for 0 and NaN, -inf for negative depth: both invalid below
    # p' = R (d * ray) + t, component by component (a matmul with an inner size of 3 is slow on CPUs)
    x, y, z = (valid_depth * (r[0] * ray_x + r[1] * ray_y + r[2]) + r[3] for r in transform[:3, [0, 1, 2, 3]])
    u = intrinsics.fx * x / z + intrinsics.cx
    v = intrinsics.fy * y / z + intrinsics.cy
    return z, u, v


def forward_warp(depth: torch.Tensor, intrinsics: Intrinsics, current_from_previous: np.ndarray | torch.Tensor,
                 values: Sequence[torch.Tensor] = ()) -> WarpResult:
    """Splat the previous ``depth`` (HxW metres, NaN/<=0 invalid, of the camera ``intrinsics``) into the current
    view given by ``current_from_previous``; ``values`` (HxW tensors on the same device) travel with it."""
    height, width = depth.shape
    z, u, v = project_depth(depth, intrinsics, current_from_previous)
    col = torch.floor(u + 0.5)
    row = torch.floor(v + 0.5)
    valid = torch.isfinite(z) & (z > MIN_WARP_DEPTH_M) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    count = height * width
    # invalid points go to a spare slot past the image, so no boolean indexing (and no device sync) is needed;
    # integer arithmetic instead of torch.where, which is not vectorised on CPUs
    valid_flat = valid.reshape(-1).long()
    flat = (row * width + col).reshape(-1).nan_to_num(0.0, 0.0, 0.0).long()
    target = flat * valid_flat + count * (1 - valid_flat)
    z_flat = z.reshape(-1)  # NaN or out of the image only where invalid, which lands in the spare slot
    zbuf = torch.full((count + 1,), torch.inf, dtype=torch.float32, device=depth.device)
    zbuf.scatter_reduce_(0, target, z_flat, reduce="amin", include_self=True)
    winner = (z_flat == torch.index_select(zbuf, 0, target)).long() * valid_flat  # index_select: faster gather
    source_index = torch.arange(count, device=depth.device) * winner + (winner - 1)  # -1 for the losers
    source = torch.full((count + 1,), -1, dtype=torch.int64, device=depth.device)
    source.scatter_reduce_(0, target, source_index, reduce="amax", include_self=True)
    source = source[:count]
    warped = zbuf[:count].nan_to_num(posinf=math.nan).reshape(height, width)  # holes kept their +inf
    hole_nan = warped * 0.0  # NaN at holes, 0 elsewhere: adding it makes a carried value NaN at holes
    carried = []
    gather = source.clamp(min=0)
    for value in values:
        if value.shape != depth.shape:
            raise InvalidInputError(f"warped value of shape {tuple(value.shape)} differs from the depth's "
                                    f"{tuple(depth.shape)}")
        picked = torch.index_select(value.reshape(-1), 0, gather).reshape(height, width)
        carried.append(picked + hole_nan if picked.is_floating_point() else picked)
    return WarpResult(depth=warped, values=tuple(carried), source=source.reshape(height, width))


def fill_small_holes(result: WarpResult, max_spread: float, min_neighbours: int = MIN_FILL_NEIGHBOURS
                     ) -> WarpResult:
    """``result`` with the small holes a forward splat leaves where the view magnifies (moving towards a surface)
    filled: a hole with at least ``min_neighbours`` valid 8-neighbours whose log depths differ by at most
    ``max_spread`` (so it lies on one surface, not on an occlusion edge) gets their mean log depth and the mean of
    each carried floating-point value. Larger holes and holes at depth edges stay NaN; ``source`` stays -1 there."""
    depth = result.depth
    height, width = depth.shape
    floats = [index for index, value in enumerate(result.values) if value.is_floating_point()]
    log_depth = torch.log(depth)
    hole = torch.isnan(log_depth)
    # arithmetic with NaN replaced instead of torch.where (not vectorised on CPUs); no broadcasting between
    # images of different shapes either (it is not vectorised on CPUs): one HxW pass per channel
    stack = torch.stack([log_depth, *(result.values[index] for index in floats)]).nan_to_num(0.0)  # CxHxW
    padded = F.pad(stack, (1, 1, 1, 1))
    padded_valid = F.pad((~hole).float(), (1, 1, 1, 1))
    low = F.pad(log_depth.nan_to_num(nan=math.inf), (1, 1, 1, 1), value=math.inf)
    high = F.pad(log_depth.nan_to_num(nan=-math.inf), (1, 1, 1, 1), value=-math.inf)
    # the 8 neighbours as shifted views of the padded images (cheaper than pooling or unfold on CPUs)
    shifts = [(slice(dy, dy + height), slice(dx, dx + width))
              for dy, dx in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))]
    rows, cols = shifts[0]
    sums = padded[:, rows, cols].clone()
    count = padded_valid[rows, cols].clone()
    lowest = low[rows, cols].clone()
    highest = high[rows, cols].clone()
    for rows, cols in shifts[1:]:
        sums += padded[:, rows, cols]
        count += padded_valid[rows, cols]
        torch.minimum(lowest, low[rows, cols], out=lowest)
        torch.maximum(highest, high[rows, cols], out=highest)
    fill = hole & (count >= min_neighbours) & (highest - lowest <= max_spread)
    mean_weight = fill.float() / count.clamp(min=1.0)  # 1 / neighbours where filled, else 0
    # value = kept value (0 at holes) + mean where filled + NaN (0 / 0) where a hole stays a hole
    still_nan = 0.0 / (~(hole & ~fill)).float()
    filled = [stack[channel] + sums[channel] * mean_weight + still_nan for channel in range(stack.shape[0])]
    values = list(result.values)
    for row, index in enumerate(floats, start=1):
        values[index] = filled[row]
    return WarpResult(depth=torch.exp(filled[0]), values=tuple(values), source=result.source)


def _check_depth(depth: torch.Tensor, intrinsics: Intrinsics) -> None:
    """InvalidInputError unless ``depth`` is a floating-point HxW image of the size ``intrinsics`` describes."""
    if depth.dim() != 2 or not depth.is_floating_point():
        raise InvalidInputError(f"depth to warp must be a floating-point HxW tensor, got {depth.dtype} of shape "
                                f"{tuple(depth.shape)}")
    if tuple(depth.shape) != (intrinsics.height, intrinsics.width):
        raise InvalidInputError(f"depth of size {depth.shape[1]}x{depth.shape[0]} does not match its intrinsics' "
                                f"{intrinsics.width}x{intrinsics.height}")

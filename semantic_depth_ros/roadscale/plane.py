"""Robust plane fit of a bounded, deterministic sample of 3-D points (torch, on the points' device, vectorised).

RANSAC over ``hypotheses`` random point triplets scored all at once, then least-squares refinement on the inliers
(``refinements`` rounds, each re-selecting the inliers of the refined plane). The inlier tolerance is *relative*:
a point is an inlier when its distance to the plane is below ``inlier_tolerance`` times the camera's distance to
that plane. A relative tolerance is what the road needs: a depth error of a fraction ``e`` moves a point on the
plane by ``e`` times the camera height along the normal, whatever its range, and a depth map with an unknown
global scale (the very thing the fit measures) has residuals in proportion to that scale.

Randomness comes from a CPU ``torch.Generator`` seeded afresh on every call, and the sample of pixels is an even
stride through them, so a fit is a pure function of its inputs: the node and bag replay get identical results
for identical frames, on any device.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from semantic_depth_ros.errors import InvalidInputError

DEFAULT_MAX_POINTS = 4096
DEFAULT_HYPOTHESES = 128
DEFAULT_REFINEMENTS = 3
DEFAULT_SEED = 0
_MIN_SINE = 1e-3  # triplets whose two edges are closer than this sine of an angle are degenerate (collinear)


@dataclass(frozen=True)
class PlaneFit:
    """A fitted plane ``normal . p + offset = 0`` in the points' frame (metres).

    ``normal``: unit vector (x, y, z) pointing from the plane towards the origin (the camera), so ``offset`` >= 0
    is the origin's distance to the plane; ``inlier_ratio``: fraction of the ``points`` fitted points within the
    tolerance of the final plane; ``points``: how many points the fit used (at most its ``max_points``).
    """

    normal: tuple[float, float, float]
    offset: float
    inlier_ratio: float
    points: int


def sample_pixels(mask: torch.Tensor, max_points: int) -> torch.Tensor:
    """Flat indices (int64, on the mask's device) of at most ``max_points`` True pixels of ``mask`` (HxW bool):
    all of them, or an even stride through them (deterministic, spread over the whole region)."""
    if max_points < 3:
        raise InvalidInputError(f"max_points = {max_points} must be at least 3")
    indices = torch.nonzero(mask.reshape(-1)).squeeze(1)
    count = indices.numel()
    if count <= max_points:
        return indices
    picks = torch.linspace(0, count - 1, max_points, device=indices.device).round().long()
    return indices[picks]


def backproject_pixels(depth: torch.Tensor, rays: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Points (N, 3) float32 of the flat pixel ``indices`` of ``depth`` (HxW metres along the optical axis) with
    ``rays`` (HxWx3, ``geometry.pointcloud.cached_rays`` at stride 1): ``ray * depth``."""
    if rays.shape != (*depth.shape, 3):
        raise InvalidInputError(f"rays of shape {tuple(rays.shape)} do not match depth {tuple(depth.shape)}")
    z = depth.reshape(-1)[indices].to(torch.float32)
    return rays.reshape(-1, 3)[indices] * z.unsqueeze(1)


def _orient(normals: torch.Tensor, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip planes (K, 3), (K,) so that every offset is >= 0 (normals towards the origin)."""
    sign = torch.where(offsets < 0, -1.0, 1.0).to(normals.dtype)
    return normals * sign.unsqueeze(1), offsets * sign


def _hypotheses(points: torch.Tensor, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``count`` planes through random point triplets: normals (K, 3), offsets (K,), valid (K,) bool."""
    generator = torch.Generator().manual_seed(seed)
    triplets = torch.randint(points.shape[0], (count, 3), generator=generator).to(points.device)
    a, b, c = points[triplets[:, 0]], points[triplets[:, 1]], points[triplets[:, 2]]
    edge1, edge2 = b - a, c - a
    normals = torch.linalg.cross(edge1, edge2)
    length = torch.linalg.vector_norm(normals, dim=1)
    valid = length > _MIN_SINE * torch.linalg.vector_norm(edge1, dim=1) * torch.linalg.vector_norm(edge2, dim=1)
    normals = normals / length.clamp_min(torch.finfo(points.dtype).tiny).unsqueeze(1)
    offsets = -(normals * a).sum(dim=1)
    normals, offsets = _orient(normals, offsets)
    return normals, offsets, valid & (length > 0)


def _least_squares(points: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Total-least-squares plane of the points with ``weights`` (N,) 0/1: normal (3,), offset () oriented."""
    total = weights.sum()
    centroid = (points * weights.unsqueeze(1)).sum(dim=0) / total
    centred = (points - centroid) * weights.unsqueeze(1)
    covariance = centred.T @ centred / total
    _, vectors = torch.linalg.eigh(covariance.to(torch.float64))
    normal = vectors[:, 0].to(points.dtype)  # eigenvector of the smallest eigenvalue
    normal, offset = _orient(normal.unsqueeze(0), -(normal * centroid).sum().unsqueeze(0))
    return normal[0], offset[0]


def _inliers(points: torch.Tensor, normal: torch.Tensor, offset: torch.Tensor, tolerance: float) -> torch.Tensor:
    """Bool (N,): points within ``tolerance`` times the offset of the plane."""
    return (points @ normal + offset).abs() < tolerance * offset


def fit_plane(
    points: torch.Tensor,
    *,
    inlier_tolerance: float,
    hypotheses: int = DEFAULT_HYPOTHESES,
    refinements: int = DEFAULT_REFINEMENTS,
    seed: int = DEFAULT_SEED,
) -> PlaneFit | None:
    """Robust plane of ``points`` (N, 3) float metres (module docstring); None when fewer than 3 points or every
    triplet is degenerate. ``inlier_tolerance``: a fraction (> 0) of the origin's distance to the plane."""
    if points.dim() != 2 or points.shape[1] != 3 or not points.is_floating_point():
        raise InvalidInputError(f"points must be a float (N, 3) tensor, got {points.dtype} {tuple(points.shape)}")
    if not inlier_tolerance > 0:
        raise InvalidInputError(f"inlier_tolerance = {inlier_tolerance!r} must be > 0")
    if points.shape[0] < 3:
        return None
    points = points.to(torch.float32)
    normals, offsets, valid = _hypotheses(points, hypotheses, seed)
    residuals = (points @ normals.T + offsets).abs()  # (N, K)
    counts = (residuals < inlier_tolerance * offsets).sum(dim=0)
    counts = torch.where(valid, counts, torch.full_like(counts, -1))
    best = int(torch.argmax(counts))
    if counts[best] < 3:
        return None
    normal, offset = normals[best], offsets[best]
    mask = _inliers(points, normal, offset, inlier_tolerance)
    for _ in range(refinements):
        refined_normal, refined_offset = _least_squares(points, mask.to(points.dtype))
        refined_mask = _inliers(points, refined_normal, refined_offset, inlier_tolerance)
        if int(refined_mask.sum()) < 3:
            break
        normal, offset, mask = refined_normal, refined_offset, refined_mask
    values = torch.cat((normal, offset.unsqueeze(0), mask.to(points.dtype).mean().unsqueeze(0))).tolist()
    return PlaneFit(normal=(values[0], values[1], values[2]), offset=values[3], inlier_ratio=values[4],
                    points=int(points.shape[0]))

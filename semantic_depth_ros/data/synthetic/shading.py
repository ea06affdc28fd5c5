"""Shading: textured albedo of every material, sky gradient, sun and ambient light, fog and sensor noise."""

from __future__ import annotations

import numpy as np

from semantic_depth_ros.data.synthetic.domains import (
    M_CABIN,
    M_FACADE,
    M_LEAVES,
    M_ROAD,
    M_SIDEWALK,
    M_TERRAIN,
    MAX_DEPTH_M,
    Palette,
)
from semantic_depth_ros.data.synthetic.layout import Street, World
from semantic_depth_ros.data.synthetic.raycast import Hits, PinholeRays, surface_normals


def _cell_noise(coords: np.ndarray, cell: float, salt: int) -> np.ndarray:
    """Deterministic value in [0, 1) per ``cell``-sized grid cell of ``coords`` (NxK, metres); float32 (N,)."""
    ij = np.floor(coords / cell).astype(np.int64).astype(np.uint32)
    h = np.full(coords.shape[0], salt * 0x9E3779B1 & 0xFFFFFFFF, dtype=np.uint32)
    for k in range(coords.shape[1]):
        h = (h ^ ij[:, k]) * np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
    h = h * np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    return h.astype(np.float32) / np.float32(2.0**32)


def _road_colour(base: np.ndarray, p: np.ndarray, st: Street, pal: Palette) -> np.ndarray:
    """Asphalt with fine and coarse grain, dashed lane lines and solid edge lines."""
    xy = p[:, :2]
    grain = (0.88 + 0.24 * _cell_noise(xy, 0.15, 1)) * (0.95 + 0.1 * _cell_noise(xy, 3.0, 2))
    out = base * grain[:, None]
    marking = np.zeros(p.shape[0], dtype=bool)
    for y in st.solid_lines:
        marking |= np.abs(p[:, 1] - y) < 0.08
    dash = np.mod(p[:, 0], 9.0) < 3.5
    for y in st.dashed_lines:
        marking |= (np.abs(p[:, 1] - y) < 0.07) & dash
    out[marking] = np.asarray(pal.marking, dtype=np.float32)
    return out


def _facade_colour(base: np.ndarray, p: np.ndarray, face: np.ndarray, params: np.ndarray, prim: np.ndarray,
                   pal: Palette) -> np.ndarray:
    """Facades with a grid of windows (floors and bays from the building's params), roofs darker."""
    along = np.where(face < 2, p[:, 1], p[:, 0])  # faces normal to x run along y, the others along x
    bay = (along - params[:, 2]) / params[:, 0]
    storey = p[:, 2] / params[:, 1]
    fb, fs = bay - np.floor(bay), storey - np.floor(storey)
    window = (fb > 0.22) & (fb < 0.78) & (fs > 0.3) & (fs < 0.8) & (p[:, 2] < params[:, 3] - 0.6) & (face < 4)
    out = base * (0.95 + 0.1 * _cell_noise(p, 0.5, 3))[:, None]
    cells = np.stack([np.floor(bay), np.floor(storey), prim.astype(np.float64)], axis=1)
    shade = 0.7 + 0.6 * _cell_noise(cells[window], 1.0, 4)
    out[window] = np.asarray(pal.glass, dtype=np.float32) * shade[:, None]
    out[face == 5] *= 0.6
    return out


def _surface_colours(world: World, prim: np.ndarray, face: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Textured albedo (Nx3 float32) of N hits on primitives ``prim`` (N,), faces ``face`` at world points ``p``."""
    scene, pal = world.scene, world.domain.palette
    material = scene.material[prim]
    out = scene.albedo[prim]
    sel = material == M_ROAD
    out[sel] = _road_colour(out[sel], p[sel], world.street, pal)
    sel = (material == M_SIDEWALK) & (face == 5)
    tiles = p[sel, :2] / scene.params[prim[sel], 0:1]
    grout = np.abs(np.mod(tiles + 0.5, 1.0) - 0.5).min(axis=1) < 0.05
    out[sel] *= (np.where(grout, 0.7, 1.0) * (0.9 + 0.2 * _cell_noise(tiles, 1.0, 5)))[:, None]
    out[(material == M_SIDEWALK) & (face != 5)] *= 1.15
    sel = material == M_TERRAIN
    grass = (0.7 + 0.5 * _cell_noise(p[sel, :2], 0.15, 6)) * (0.85 + 0.3 * _cell_noise(p[sel, :2], 1.5, 7))
    out[sel] *= grass[:, None]
    sel = material == M_FACADE
    out[sel] = _facade_colour(out[sel], p[sel], face[sel], scene.params[prim[sel]], prim[sel], pal)
    out[(material == M_CABIN) & (face != 5)] = np.asarray(pal.glass, dtype=np.float32)
    sel = material == M_LEAVES
    out[sel] *= (0.6 + 0.7 * _cell_noise(p[sel], 0.2, 8))[:, None]
    return out


def _sky_colour(dirs: np.ndarray, pal: Palette) -> np.ndarray:
    """Sky gradient from horizon to zenith with soft cloud bands, for world directions (Nx3, any length)."""
    dirs = dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    el = np.clip(dirs[:, 2], 0.0, 1.0)
    mix = np.sqrt(el)[:, None]
    sky = (1 - mix) * np.asarray(pal.sky_horizon) + mix * np.asarray(pal.sky_zenith)
    az = np.arctan2(dirs[:, 1], dirs[:, 0])
    clouds = 1.0 + 0.04 * np.sin(7.0 * az) * np.sin(40.0 * el)
    return (sky * clouds[:, None]).astype(np.float32)


def shade(world: World, rays: PinholeRays, hits: Hits, rng: np.random.Generator) -> np.ndarray:
    """RGB image (HxWx3 uint8): textured albedo x (sky ambient + lambert sun), distance fog, sky, sensor noise."""
    pal, st = world.domain.palette, world.street
    t, prim = hits.t.ravel(), hits.prim.ravel()
    hit = (prim >= 0) & (t <= MAX_DEPTH_M)
    idx, sky = np.flatnonzero(hit), np.flatnonzero(~hit)
    dirs = rays.dirs.reshape(-1, 3)
    d, t, prim, face = dirs[idx], t[idx], prim[idx], hits.face.ravel()[idx]
    p = rays.origin + t[:, None] * d
    normals = surface_normals(world.scene, prim, face, p)
    albedo = _surface_colours(world, prim, face, p)
    light = pal.ambient * (0.8 + 0.2 * normals[:, 2]) + pal.diffuse * np.clip(normals @ st.sun, 0.0, None)
    fog = np.exp(-t * np.sqrt((d * d).sum(axis=1)) / pal.fog_distance)
    horizon = np.asarray(pal.sky_horizon, dtype=np.float32) * np.float32(0.95)
    image = np.empty((hit.shape[0], 3), dtype=np.float32)
    image[idx] = albedo * (light * fog).astype(np.float32)[:, None] + horizon * (1 - fog).astype(np.float32)[:, None]
    image[sky] = _sky_colour(dirs[sky], pal)
    image *= np.asarray(pal.tint, dtype=np.float32) * np.float32(st.exposure)
    image += (rng.random(image.shape, dtype=np.float32) - np.float32(0.5)) * np.float32(0.04)  # sensor noise
    image = np.clip(image, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)
    return image.astype(np.uint8).reshape(hits.t.shape + (3,))


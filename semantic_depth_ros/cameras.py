"""Reference cameras whose numbers several places need (no dependencies, importable from every layer).

KITTI raw's rectified left colour camera (``P_rect_02``): fx = fy = 721.5377 px on its 1242x375 image.
"""

from __future__ import annotations

KITTI_FX_PX = 721.5377  # focal length (pixels) of the KITTI colour camera at KITTI_WIDTH_PX
KITTI_WIDTH_PX = 1242  # image width (pixels) at which KITTI_FX_PX holds


def kitti_fx(width: int) -> float:
    """Focal length (pixels) of the KITTI camera's image resized to ``width`` pixels wide."""
    return KITTI_FX_PX * width / KITTI_WIDTH_PX


KITTI_FOCAL_AT_620 = kitti_fx(620)  # 360.2 px: the canonical network camera of the KITTI presets

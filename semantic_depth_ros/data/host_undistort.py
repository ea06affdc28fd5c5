"""Lens undistortion of whole images on the host, for the offline tools (``extract``, ``infer-bag`` scoring).

The same OpenCV maps as the node's (``geometry.undistort.undistortion_map``), applied with ``cv2.remap`` to the
full-size image: the result is the pinhole image of the camera's own K (D = 0), black where no image data exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from semantic_depth_ros.cache import BoundedCache
from semantic_depth_ros.geometry.intrinsics import CameraModel
from semantic_depth_ros.geometry.undistort import undistortion_map, valid_mask


@dataclass(frozen=True)
class HostUndistorter:
    """One camera model's undistortion: HxW float32 ``cv2.remap`` maps and the HxW bool mask of pixels with data."""

    map_x: np.ndarray
    map_y: np.ndarray
    valid: np.ndarray

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 distorted image -> the undistorted pinhole image (same K and size), black without data."""
        undistorted = cv2.remap(rgb, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        undistorted[~self.valid] = 0
        return undistorted


# a few camera models per bag; bounded if camera_info keeps changing
_UNDISTORTERS: BoundedCache[CameraModel, HostUndistorter] = BoundedCache(4, "host undistortion cache")


def host_undistorter(model: CameraModel) -> HostUndistorter:
    """The undistortion of a camera model with a non-zero D (cached)."""
    return _UNDISTORTERS.get(model, lambda: _build(model))


def _build(model: CameraModel) -> HostUndistorter:
    intr = model.intrinsics
    map_x, map_y = undistortion_map(intr, model.distortion_model, model.d)
    return HostUndistorter(map_x, map_y, valid_mask(map_x, map_y, intr.height, intr.width))


def undistorted_no_data(model: CameraModel) -> np.ndarray | None:
    """HxW bool mask of the pixels of ``model``'s undistorted image whose ray falls outside the distorted image
    (no image data, so no depth either); None for a camera without distortion."""
    return ~host_undistorter(model).valid if model.has_distortion else None


def undistort_image(model: CameraModel, rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 image of a camera with a non-zero D -> its undistorted pinhole image (same K and size)."""
    return host_undistorter(model).image(rgb)

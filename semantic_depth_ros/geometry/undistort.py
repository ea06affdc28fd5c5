"""Lens distortion of a camera: its D checked once, OpenCV's undistortion maps, and which output pixels have data.

Output geometry (the choice): the undistorted image is a pinhole image of the camera's own size with the camera's
own K. So ``depth/camera_info`` keeps K, has P = [K | 0] and D = zeros, and back-projection uses K unchanged; the
centre of the image keeps its scale. Under barrel distortion (k1 < 0, most lenses) the undistorted image is a crop
of the distorted one (its borders' outermost rays are dropped); under pincushion distortion, or strong tangential
terms, some undistorted pixels (the corners) have rays that land outside the distorted image and have no data:
``valid_mask`` is False there. The estimator's resampler (``inference.undistortion``) samples the nearest edge of
the distorted image at those pixels for the network input and paints them black in the point colours; callers set
depth NaN there (the estimator also sets confidence 0 and the semantic id ``labels.IGNORE_LABEL``). The offline
tools remap whole images on the host (``data.host_undistort``) with the same maps.

Supported models (``sensor_msgs/CameraInfo.distortion_model``, D in ROS/OpenCV order):
``plumb_bob`` (k1 k2 p1 p2 k3), ``rational_polynomial`` (k1 k2 p1 p2 k3 k4 k5 k6), ``equidistant`` (fisheye
k1 k2 k3 k4, ``cv2.fisheye``). An empty or all-zero D means no distortion: ``validate_distortion`` returns None
and callers skip undistortion entirely.

Pixel-centre convention of ``geometry.intrinsics``: pixel ``i`` is centred on integer ``i`` (OpenCV's and ROS's
convention for K and maps).
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from ..errors import InvalidInputError
from .intrinsics import CameraModel, Intrinsics

DISTORTION_MODELS: dict[str, int] = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}
"""Supported ``distortion_model`` names and their number of D coefficients."""


def validate_distortion(distortion_model: str, d: Sequence[float]) -> tuple[float, ...] | None:
    """D as a tuple of floats, or None when there is no distortion (D empty or all zero).

    InvalidInputError (one line naming the value) for an unknown model with a non-empty D, a D whose length is not
    the model's (``DISTORTION_MODELS``), or a non-finite coefficient.
    """
    try:
        values = tuple(float(value) for value in d)
    except (TypeError, ValueError):
        raise InvalidInputError(f"camera_info.d = {d!r} is not a list of numbers") from None
    if not values:
        return None
    expected = DISTORTION_MODELS.get(distortion_model)
    if expected is None:
        raise InvalidInputError(f"distortion model '{distortion_model}' is not supported (supported: "
                                f"{', '.join(DISTORTION_MODELS)})")
    if len(values) != expected:
        raise InvalidInputError(f"distortion model '{distortion_model}' needs {expected} coefficients in D, "
                                f"got {len(values)}")
    if not all(math.isfinite(value) for value in values):
        raise InvalidInputError(f"camera_info.d = {list(values)} must be finite")
    if not any(values):
        return None
    return values


def check_camera_model(camera: CameraModel) -> CameraModel:
    """``camera`` unchanged when its D is zero or of a supported model; InvalidInputError (one line naming the
    model or D, as ``validate_distortion``) otherwise. The check the estimator makes per frame, for callers that
    want it earlier: on camera_info arrival, or per camera before batching frames of several cameras."""
    if camera.has_distortion:
        validate_distortion(camera.distortion_model, camera.d)
    return camera


def undistortion_map(intrinsics: Intrinsics, distortion_model: str,
                     d: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """HxW float32 ``(map_x, map_y)``: for each pixel of the undistorted image (same K, same size) the pixel
    coordinates to sample in the distorted image (OpenCV ``initUndistortRectifyMap``, exact forward model).

    ``d`` must be a distortion ``validate_distortion`` accepts (a zero D gives the identity map).
    """
    coeffs = validate_distortion(distortion_model, d)
    size = (intrinsics.width, intrinsics.height)
    k = intrinsics.matrix()
    if coeffs is None:
        xs = np.arange(intrinsics.width, dtype=np.float32)
        ys = np.arange(intrinsics.height, dtype=np.float32)
        map_x, map_y = np.meshgrid(xs, ys)
        return map_x, map_y
    dist = np.asarray(coeffs, dtype=np.float64)
    if distortion_model == "equidistant":
        map_x, map_y = cv2.fisheye.initUndistortRectifyMap(k, dist, np.eye(3), k, size, cv2.CV_32FC1)
    else:
        map_x, map_y = cv2.initUndistortRectifyMap(k, dist, None, k, size, cv2.CV_32FC1)
    return map_x, map_y


def valid_mask(map_x: np.ndarray, map_y: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """``out_height`` x ``out_width`` bool: whether each output pixel's centre maps inside the distorted image.

    "Inside" is the area its pixels cover, ``[-0.5, W - 0.5] x [-0.5, H - 0.5]`` in pixel-centre coordinates.
    """
    height, width = map_x.shape
    ys = subsample_positions(height, out_height, 1)
    xs = subsample_positions(width, out_width, 1)
    source_x = interpolate_map(map_x, ys, xs)
    source_y = interpolate_map(map_y, ys, xs)
    with np.errstate(invalid="ignore"):
        return ((source_x >= -0.5) & (source_x <= width - 0.5)
                & (source_y >= -0.5) & (source_y <= height - 0.5))


def subsample_positions(source_size: int, resized_size: int, samples: int) -> np.ndarray:
    """Pixel-centre coordinates in the source of ``samples`` evenly spread sub-samples per resized pixel."""
    edge = (np.arange(resized_size * samples, dtype=np.float64) + 0.5) / samples
    return edge * (source_size / resized_size) - 0.5


def interpolate_map(values: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of HxW ``values`` at the grid ``ys`` x ``xs`` (clamped to the border), float64."""
    if _is_pixel_grid(ys, values.shape[0]) and _is_pixel_grid(xs, values.shape[1]):
        return values.astype(np.float64)  # every pixel centre itself (an output at the camera's size)
    y0, y1, fy = _bracket(ys, values.shape[0])
    x0, x1, fx = _bracket(xs, values.shape[1])
    rows = values[y0].astype(np.float64) * (1.0 - fy)[:, None] + values[y1].astype(np.float64) * fy[:, None]
    return rows[:, x0] * (1.0 - fx) + rows[:, x1] * fx


def _is_pixel_grid(positions: np.ndarray, size: int) -> bool:
    """Whether ``positions`` are exactly the pixel centres 0, 1, ..., size - 1."""
    return positions.shape == (size,) and bool(np.array_equal(positions, np.arange(size, dtype=np.float64)))


def _bracket(positions: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbouring indices and the fraction towards the second, for clamped linear interpolation."""
    clamped = np.clip(positions, 0.0, size - 1.0)
    first = np.minimum(np.floor(clamped).astype(np.int64), size - 1)
    second = np.minimum(first + 1, size - 1)
    return first, second, clamped - first

"""The undistorting resampler of the estimator: lens undistortion fused with the letterbox resize, on the device.

One interpolation from the distorted camera image makes the network input (and another the point colours at the
output size), instead of "undistort, then letterbox". The maps and the output geometry are ``geometry.undistort``'s
(the pinhole image of the camera's own K at its size; pixels without data are ``Undistortion.valid`` False).

Resampling: for each output pixel the map gives where to read the distorted image. When the output is smaller than
the undistorted image (the letterbox shrinks it), ``s`` sub-samples per output pixel and axis are read with
bilinear interpolation and averaged with the tent weights of torch's anti-aliased bilinear resize (the filter
``preprocess.to_network_input`` applies), so the fused result equals "undistort, then letterbox" within
interpolation error while interpolating the camera image only once. The network input samples the nearest edge of
the distorted image where an output pixel has no data (like the letterbox padding: a replicated border looks like
more scene, black bars do not); ``Undistortion.colours`` paints those pixels black.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..geometry.letterbox import Letterbox
from ..geometry.undistort import interpolate_map, subsample_positions, undistortion_map, valid_mask, validate_distortion

_SUPERSAMPLE_TOLERANCE = 0.05  # a shrink factor within 5 % above an integer n uses n sub-samples, not n + 1


@dataclass(frozen=True)
class FusedResampler:
    """Undistort + resize + edge-replicating pad in one interpolation.

    ``grid`` (1 x h*sy x w*sx x 2 float32 on the device, (x, y) normalised to [-1, 1] of the distorted image,
    align_corners=False) holds ``supersample`` = (sy, sx) sub-samples of each of the h x w content pixels; tent
    weights (``tent_y``/``tent_x``, empty when that axis has one sub-sample) and ``norm`` (1 x 1 x h x w on the
    device, the weights' renormalisation at the borders) turn them into h x w pixels; ``padding`` (left, right,
    top, bottom) is then edge-replicated. ``pixel_maps`` (the grid as OpenCV fixed-point maps, CV_16SC2 and
    CV_16UC1, CPU resamplers only) lets CPUs interpolate the uint8 image with ``cv2.remap``, several times faster
    than ``grid_sample`` on a CPU.
    """

    grid: torch.Tensor
    supersample: tuple[int, int]
    tent_y: tuple[float, ...]
    tent_x: tuple[float, ...]
    norm: torch.Tensor | None
    padding: tuple[int, int, int, int]
    pixel_maps: tuple[np.ndarray, np.ndarray] | None

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """B x C x H x W float distorted image -> B x C x (h + pads) x (w + pads), same dtype and device."""
        grid = self.grid.to(image.dtype).expand(image.shape[0], -1, -1, -1)
        return self._filter_and_pad(F.grid_sample(image, grid, mode="bilinear", padding_mode="border",
                                                  align_corners=False))

    def sample_uint8(self, image: torch.Tensor) -> torch.Tensor:
        """HxWx3 uint8 distorted image (any device) -> 1 x 3 x (h + pads) x (w + pads) float32 in [0, 255].

        On the CPU the interpolation runs on the uint8 image with ``cv2.remap`` (rounding the sub-samples to whole
        grey levels and their positions to 1/32 px, both far below the interpolation error); elsewhere in float32.
        """
        if self.pixel_maps is not None and image.device.type == "cpu":
            x = torch.from_numpy(self.remap(image)).permute(2, 0, 1).unsqueeze(0)
            x = x.to(torch.float32, memory_format=torch.contiguous_format)
            return self._filter_and_pad(x)
        return self(image.permute(2, 0, 1).unsqueeze(0).to(torch.float32))

    def remap(self, image: torch.Tensor) -> np.ndarray:
        """HxWx3 uint8 CPU image -> its h*sy x w*sx x 3 uint8 sub-samples (``cv2.remap``; CPU resamplers only)."""
        if self.pixel_maps is None:
            raise ValueError("remap needs a resampler built for the CPU")
        return cv2.remap(np.ascontiguousarray(image.numpy()), self.pixel_maps[0], self.pixel_maps[1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def _filter_and_pad(self, x: torch.Tensor) -> torch.Tensor:
        """B x C x h*sy x w*sx sub-samples -> B x C x (h + pads) x (w + pads) pixels."""
        sy, sx = self.supersample
        if self.tent_x:
            x = _tent_filter(x, self.tent_x, sx, dim=-1)
        if self.tent_y:
            x = _tent_filter(x, self.tent_y, sy, dim=-2)
        if self.norm is not None:
            x = x.mul_(self.norm.to(x.dtype))
        if any(self.padding):
            x = F.pad(x, self.padding, mode="replicate")
        return x


def fused_resampler(map_x: np.ndarray, map_y: np.ndarray, resized_height: int, resized_width: int, top: int,
                    left: int, canvas_height: int, canvas_width: int, device: torch.device) -> FusedResampler:
    """Resampler from the distorted image to the undistorted one resized to ``resized_height`` x ``resized_width``
    and pasted at (``top``, ``left``) in an edge-replicated ``canvas_height`` x ``canvas_width`` canvas.

    ``map_x``/``map_y``: HxW undistortion map (``undistortion_map``), H x W being the camera's size. The map is
    interpolated (bilinear, float64, clamped at its border) at each sub-sample's position in the undistorted image.
    """
    device = torch.device(device)
    height, width = map_x.shape
    sy = _supersample(height / resized_height)
    sx = _supersample(width / resized_width)
    ys = subsample_positions(height, resized_height, sy)
    xs = subsample_positions(width, resized_width, sx)
    source_x = interpolate_map(map_x, ys, xs)
    source_y = interpolate_map(map_y, ys, xs)
    grid = np.stack((_normalise(source_x, width), _normalise(source_y, height)), axis=-1)
    norm = None
    if sy > 1 or sx > 1:
        norm_y = _tent_norm(sy, resized_height)
        norm_x = _tent_norm(sx, resized_width)
        norm = (norm_y[:, None] * norm_x[None, :]).view(1, 1, resized_height, resized_width).to(device)
    pixel_maps = None
    if device.type == "cpu":
        finite = np.isfinite(source_x) & np.isfinite(source_y)
        pixel_maps = cv2.convertMaps(np.where(finite, source_x, -1.0).astype(np.float32),
                                     np.where(finite, source_y, -1.0).astype(np.float32), cv2.CV_16SC2)
    return FusedResampler(
        grid=torch.from_numpy(grid.astype(np.float32)).unsqueeze(0).to(device),
        supersample=(sy, sx),
        tent_y=_tent_weights(sy) if sy > 1 else (),
        tent_x=_tent_weights(sx) if sx > 1 else (),
        norm=norm,
        padding=(left, canvas_width - left - resized_width, top, canvas_height - top - resized_height),
        pixel_maps=pixel_maps,
    )


def network_resampler(map_x: np.ndarray, map_y: np.ndarray, box: Letterbox, device: torch.device) -> FusedResampler:
    """Distorted camera image -> letterboxed network input (``box`` from ``preprocess.letterbox``), fused."""
    return fused_resampler(map_x, map_y, box.resized_height, box.resized_width, box.top, box.left,
                           box.network_height, box.network_width, device)


def output_resampler(map_x: np.ndarray, map_y: np.ndarray, out_height: int, out_width: int,
                     device: torch.device) -> FusedResampler:
    """Distorted camera image -> undistorted image at the output size (point colours), fused."""
    return fused_resampler(map_x, map_y, out_height, out_width, 0, 0, out_height, out_width, device)


@dataclass(frozen=True)
class Undistortion:
    """Everything one camera (K, D, size) needs per frame, on the estimator's device.

    ``valid``: ``out_height`` x ``out_width`` bool tensor, False where the output pixel has no data (set depth NaN);
    ``all_valid``: whether every pixel is (then callers can skip masking).
    """

    network: FusedResampler
    output: FusedResampler
    valid: torch.Tensor
    all_valid: bool

    def network_input(self, image: torch.Tensor, *, dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
        """HxWx3 uint8 distorted RGB (on the device) -> 1x3xHnxWn undistorted, letterboxed input in [0, 1].

        The drop-in replacement of ``preprocess.to_network_input`` for a distorted camera.
        """
        x = self.network.sample_uint8(image).div_(255.0)
        memory_format = torch.channels_last if channels_last else torch.contiguous_format
        return x.to(dtype=dtype, memory_format=memory_format)

    def colours(self, image: torch.Tensor) -> torch.Tensor:
        """HxWx3 uint8 distorted RGB -> out_height x out_width x 3 uint8 undistorted, black where not ``valid``.

        The drop-in replacement of ``preprocess.resize_rgb`` for a distorted camera.
        """
        plain = self.output.supersample == (1, 1) and not any(self.output.padding)
        if plain and self.output.pixel_maps is not None and image.device.type == "cpu":
            rgb = torch.from_numpy(self.output.remap(image))
        else:
            x = self.output.sample_uint8(image).round_().clamp_(0, 255).to(torch.uint8)[0]
            rgb = x.permute(1, 2, 0).contiguous()
        if not self.all_valid:
            rgb.masked_fill_(~self.valid.unsqueeze(-1), 0)
        return rgb


def build_undistortion(intrinsics: Intrinsics, distortion_model: str, d: Sequence[float], box: Letterbox,
                       out_height: int, out_width: int, device: torch.device) -> Undistortion | None:
    """The undistortion of one camera for one network input and output size; None when D is zero or empty.

    ``intrinsics`` describe the camera image (its K and size), ``box`` that image's letterbox into the network.
    """
    if validate_distortion(distortion_model, d) is None:
        return None
    if (box.image_height, box.image_width) != (intrinsics.height, intrinsics.width):
        raise InvalidInputError(f"letterbox is for a {box.image_width}x{box.image_height} image but the intrinsics "
                                f"are for {intrinsics.width}x{intrinsics.height}")
    map_x, map_y = undistortion_map(intrinsics, distortion_model, d)
    valid = valid_mask(map_x, map_y, out_height, out_width)
    return Undistortion(
        network=network_resampler(map_x, map_y, box, device),
        output=output_resampler(map_x, map_y, out_height, out_width, device),
        valid=torch.from_numpy(valid).to(device),
        all_valid=bool(valid.all()),
    )


def _supersample(shrink: float) -> int:
    """Sub-samples per output pixel along an axis shrunk by ``shrink`` (source pixels per output pixel)."""
    return max(1, math.ceil(shrink - _SUPERSAMPLE_TOLERANCE))


def _normalise(source: np.ndarray, size: int) -> np.ndarray:
    """Pixel-centre coordinates -> grid_sample's [-1, 1] (align_corners=False); non-finite -> outside (-2)."""
    normalised = (source + 0.5) * (2.0 / size) - 1.0
    return np.where(np.isfinite(normalised), normalised, -2.0)


def _tent_weights(samples: int) -> tuple[float, ...]:
    """Tent weights over the sub-samples of an output pixel and its two neighbours (half-width: one output pixel),
    the anti-aliasing filter of torch's bilinear resize. Unnormalised, 3 * ``samples`` taps."""
    offsets = (np.arange(3 * samples) + 0.5) / samples - 1.5
    return tuple(float(weight) for weight in np.maximum(0.0, 1.0 - np.abs(offsets)))


def _tent_filter(x: torch.Tensor, weights: tuple[float, ...], samples: int, dim: int) -> torch.Tensor:
    """n * ``samples`` sub-samples along ``dim`` (-1 or -2) -> n pixels, each the ``weights``-weighted sum of its
    own and its neighbours' sub-samples (zero outside; ``FusedResampler.norm`` renormalises). One strided
    multiply-add per tap: much faster on CPUs than a strided one-channel convolution."""
    count = x.shape[dim] // samples
    padded = F.pad(x, (samples, samples) if dim == -1 else (0, 0, samples, samples))
    taps = [(tap, weight) for tap, weight in enumerate(weights) if weight != 0.0]
    out = _every_nth(padded, dim, taps[0][0], count, samples) * taps[0][1]
    for tap, weight in taps[1:]:
        out.add_(_every_nth(padded, dim, tap, count, samples), alpha=weight)
    return out


def _every_nth(x: torch.Tensor, dim: int, start: int, count: int, step: int) -> torch.Tensor:
    """View of ``count`` elements along ``dim`` (-1 or -2) from ``start`` every ``step``."""
    view = x.narrow(dim, start, (count - 1) * step + 1)
    return view[..., ::step] if dim == -1 else view[..., ::step, :]


def _tent_norm(samples: int, size: int) -> torch.Tensor:
    """1 / (sum of the tent weights that fall inside the image) for each of ``size`` output pixels, float32."""
    if samples == 1:
        return torch.ones(size, dtype=torch.float32)
    ones = torch.ones(1, size * samples, dtype=torch.float64)
    total = _tent_filter(ones, _tent_weights(samples), samples, dim=-1).view(-1)
    return (1.0 / total).float()

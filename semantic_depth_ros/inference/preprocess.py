"""Image -> network input (resize keeping the aspect ratio, centred edge-replicating pad) and the way back.

Each image is placed by its ``geometry.letterbox.Letterbox`` (one resize factor, centred, edge-replicated). The
padding is removed from the network's outputs before they are up-sampled, so no output pixel comes from it:
``output_grid`` maps every output pixel to the network's low-resolution output inside the crop of the cells that
overlap the image, and the sampling clamps to that crop's border.

The per-frame seam of the estimator: :func:`to_network_input` (one uploaded image + its :class:`Letterbox` -> its
slice of the network batch) and :func:`resize_rgb` (the colour image at the output size) are the only two places
where an input image is resampled. Given a frame's ``undistortion.Undistortion`` they delegate to it: lens
undistortion fused into the resize, one interpolation from the distorted image.

Coordinates follow the pixel-centre convention of ``geometry.intrinsics``: a map of ``n`` pixels spans the
continuous interval ``[0, n]`` in "edge" coordinates, pixel ``i`` covering ``[i, i + 1]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..geometry.letterbox import Letterbox
from .undistortion import Undistortion


def to_network_input(image: torch.Tensor, box: Letterbox, *, dtype: torch.dtype, channels_last: bool,
                     undistortion: Undistortion | None = None) -> torch.Tensor:
    """HxWx3 uint8 RGB image (any device) -> 1x3xHnxWn network input in [0, 1] of ``dtype`` (one batch slice).

    Bilinear resize (anti-aliased when shrinking), then centred edge-replicating pad. On the CPU the resize runs
    on the uint8 image (torch's faster vectorised uint8 path; rounding error at most 0.5 / 255),
    on other devices in float32. With ``undistortion`` (built for ``box``) the distorted image is undistorted,
    resized and padded in one resampling instead.
    """
    if undistortion is not None:
        return undistortion.network_input(image, dtype=dtype, channels_last=channels_last)
    x = image.permute(2, 0, 1).unsqueeze(0)
    size = (box.resized_height, box.resized_width)
    if box.needs_resize and image.device.type == "cpu":
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=box.downscales)
        x = x.to(torch.float32).div_(255.0)
    else:
        x = x.to(torch.float32).div_(255.0)
        if box.needs_resize:
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=box.downscales)
    if box.top or box.bottom or box.left or box.right:
        x = F.pad(x, (box.left, box.right, box.top, box.bottom), mode="replicate")
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return x.to(dtype=dtype, memory_format=memory_format)


def resize_rgb(image: torch.Tensor, height: int, width: int,
               undistortion: Undistortion | None = None) -> torch.Tensor:
    """HxWx3 uint8 RGB (any device) -> contiguous ``height`` x ``width`` x 3 uint8 on the same device.

    Bilinear, anti-aliased when shrinking (so point colours average the pixels each output pixel covers). With
    ``undistortion`` (built for this output size) the undistorted image, black where it has no data.
    """
    if undistortion is not None:
        return undistortion.colours(image)
    if tuple(image.shape[:2]) == (height, width):
        return image.contiguous()
    x = image.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
    x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False,
                      antialias=height < image.shape[0] or width < image.shape[1])
    return x.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0).contiguous()


@dataclass(frozen=True)
class OutputGrid:
    """Where to read each output pixel in a network output map of ``feature_height`` x ``feature_width``.

    ``rows``/``cols`` are the half-open cell ranges of the crop (the cells overlapping the image);
    ``grid`` (1 x out_height x out_width x 2, float32, (x, y) in [-1, 1] of the crop) is for
    ``torch.nn.functional.grid_sample(..., align_corners=False, padding_mode="border")``.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    grid: torch.Tensor

    def crop(self, maps: torch.Tensor) -> torch.Tensor:
        """Bx C x feature_height x feature_width -> the crop of cells overlapping the image."""
        return maps[..., self.rows[0]:self.rows[1], self.cols[0]:self.cols[1]]

    def sample(self, maps: torch.Tensor, mode: str) -> torch.Tensor:
        """Crop then resample ``maps`` (BxCxhxw float) to B x C x out_height x out_width (``bilinear``/``nearest``)."""
        crop = self.crop(maps)
        grid = self.grid.to(crop.dtype).expand(crop.shape[0], -1, -1, -1)
        return F.grid_sample(crop, grid, mode=mode, padding_mode="border", align_corners=False)


def output_grid(box: Letterbox, feature_height: int, feature_width: int, out_height: int, out_width: int,
                device: torch.device) -> OutputGrid:
    """Sampling grid taking a network output map (covering the whole network input) to the image's content.

    Output pixel ``u`` (of ``out_width``) sits at edge coordinate ``left + (u + 0.5) * resized_width / out_width``
    of the network input, i.e. at that times ``feature_width / network_width`` in the output map; likewise rows.
    """
    rows, ys = _axis(box.top, box.resized_height, box.network_height, feature_height, out_height)
    cols, xs = _axis(box.left, box.resized_width, box.network_width, feature_width, out_width)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    grid = torch.stack((gx, gy), dim=-1).unsqueeze(0).to(device=device, dtype=torch.float32)
    return OutputGrid(rows=rows, cols=cols, grid=grid)


def resize_grid(height: int, width: int, out_height: int, out_width: int, device: torch.device) -> OutputGrid:
    """``output_grid`` of a map that IS the image's content (no padding to crop): ``height`` x ``width`` ->
    ``out_height`` x ``out_width``, the same pixel-centre resampling."""
    whole = Letterbox(image_height=height, image_width=width, network_height=height, network_width=width,
                      resized_height=height, resized_width=width, top=0, left=0)
    return output_grid(whole, height, width, out_height, out_width, device)


def _axis(start: int, extent: int, network_size: int, feature_size: int,
          out_size: int) -> tuple[tuple[int, int], torch.Tensor]:
    """One axis of ``output_grid``: the crop's cell range and the normalised coordinates of the output pixels."""
    ratio = feature_size / network_size
    first = max(0, math.floor(start * ratio))
    last = min(feature_size, max(first + 1, math.ceil((start + extent) * ratio)))
    centres = (torch.arange(out_size, dtype=torch.float64) + 0.5) * (extent / out_size) + start
    in_crop = centres * ratio - first
    return (first, last), (in_crop * (2.0 / (last - first)) - 1.0).float()

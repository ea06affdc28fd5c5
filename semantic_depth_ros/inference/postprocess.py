"""Per-frame checks and post-processing of the estimator (steps 4 to 7 of ``estimator``'s module docstring).

Network outputs at the output stride -> outputs at the output size: depth, semantic argmax and confidence
(``resample_outputs``, one crop-and-resample through an ``OutputGrid``, cached by the estimator), then the
frame's rules: pixels without image data (undistortion), the canonical-camera depth scale and NaN outside the
valid depth range or on sky (``finish_depth``). Also the checks of what a caller hands the estimator
(``check_outputs``, ``check_image``).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..labels import IGNORE_LABEL, SKY_TRAIN_ID
from ..limits import MAX_IMAGE_SIDE
from ..model.bins import confidence_from_probs
from ..model.config import ModelConfig
from .preprocess import OutputGrid
from .undistortion import Undistortion

ESTIMATOR_OUTPUTS = ("depth", "semantic", "confidence", "image")  # what DepthEstimator can compute
# output grids kept (LRU), keyed by letterbox and sizes: two per camera size while stages run at the network's
# resolution (network output -> network size -> camera size), for the 16 cameras one node may batch
GRID_CACHE_SIZE = 32


def check_outputs(outputs: Collection[str]) -> frozenset[str]:
    """The requested outputs as a set; ConfigError naming an unknown one."""
    if isinstance(outputs, str):
        outputs = (outputs,)
    wanted = frozenset(outputs)
    unknown = sorted(wanted - set(ESTIMATOR_OUTPUTS))
    if unknown:
        raise ConfigError(f"unknown output(s) {', '.join(unknown)}: choose from {', '.join(ESTIMATOR_OUTPUTS)}")
    return wanted


def check_image(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of a valid HxWx3 uint8 image; InvalidInputError naming what is wrong."""
    if not isinstance(image, np.ndarray):
        raise InvalidInputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise InvalidInputError(f"image dtype {image.dtype} must be uint8")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidInputError(f"image shape {tuple(image.shape)} must be HxWx3 (RGB)")
    height, width = int(image.shape[0]), int(image.shape[1])
    if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
        raise InvalidInputError(f"image size {width}x{height} must be between 1x1 and "
                                f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}")
    return height, width


def resample_outputs(raw: dict[str, torch.Tensor], grid: OutputGrid, heads: tuple[str, ...],
                     wanted: frozenset[str]) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Stride-s network outputs -> (log-depth, confidence, float label ids), each HxW at the output size or None.

    Log-depth and confidence are cropped and resampled bilinearly in one pass, the argmax ids by nearest neighbour.
    """
    smooth = []
    if "depth" in wanted:
        smooth.append(torch.log(raw["depth"] if "drn" in heads else raw["dc_depth"]).float())
    if "confidence" in wanted:
        smooth.append(confidence_from_probs(raw["depth_probs"].float()))
    log_depth = confidence = labels = None
    if smooth:
        maps = grid.sample(torch.cat(smooth, dim=1) if len(smooth) > 1 else smooth[0], "bilinear")[0]
        log_depth = maps[0] if "depth" in wanted else None
        confidence = maps[-1] if "confidence" in wanted else None
    if "sc" in heads:
        ids = raw["semantic_logits"].argmax(dim=1, keepdim=True).to(torch.float32)
        labels = grid.sample(ids, "nearest")[0, 0]
    return log_depth, confidence, labels


def no_data_of(undistortion: Undistortion | None) -> torch.Tensor | None:
    """HxW bool of the output pixels without image data (outside the distorted camera image), or None when every
    pixel has data."""
    if undistortion is None or undistortion.all_valid:
        return None
    return ~undistortion.valid


def mask_no_data(no_data: torch.Tensor | None, confidence: torch.Tensor | None,
                 labels: torch.Tensor | None) -> torch.Tensor | None:
    """Where ``no_data`` (HxW bool, or None: every pixel has data), in place: confidence 0 and the label
    ``IGNORE_LABEL``; returns ``no_data``."""
    if no_data is None:
        return None
    if confidence is not None:
        confidence.masked_fill_(no_data, 0.0)
    if labels is not None:
        labels.masked_fill_(no_data, float(IGNORE_LABEL))
    return no_data


@dataclass(frozen=True)
class Upsampling:
    """How a frame's outputs at the network's resolution reach the output size (``upsample_outputs``).

    ``grid``: the network-resolution map -> output size (``preprocess.resize_grid``); ``intrinsics``: those of the
    output size (or None); ``no_data``: output pixels without image data (``no_data_of``), or None.
    """

    grid: OutputGrid
    intrinsics: Intrinsics | None
    no_data: torch.Tensor | None


def upsample_outputs(upsampling: Upsampling, depth: torch.Tensor | None, semantic: torch.Tensor | None,
                     confidence: torch.Tensor | None
                     ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """hxw outputs at the network's resolution -> (depth, semantic, confidence) at the output size, by the
    estimator's rules: log-depth and confidence bilinearly (one pass), label ids by nearest neighbour.

    Depth is NaN where invalid (range, sky, a stage's NaN): an output pixel is NaN where its nearest network pixel
    is, as the labels are carried, and elsewhere interpolates the log-depth of its valid neighbours only (their
    bilinear weights renormalised), so no NaN spreads and no masked value bleeds in. Pixels without image data
    (``no_data``) get NaN depth, confidence 0 and ``IGNORE_LABEL``.
    """
    smooth, nearest = [], []
    if depth is not None:
        valid = torch.isfinite(depth) & (depth > 0)
        weight = valid.to(torch.float32)
        smooth += [torch.where(valid, depth.float().log(), 0.0), weight]
        nearest.append(weight)
    if confidence is not None:
        smooth.append(confidence.float())
    if semantic is not None:
        nearest.append(semantic.to(torch.float32))
    out_depth = out_confidence = labels = None
    if smooth:
        maps = upsampling.grid.sample(torch.stack(smooth).unsqueeze(0), "bilinear")[0]
        out_confidence = maps[-1] if confidence is not None else None
    if nearest:
        picked = upsampling.grid.sample(torch.stack(nearest).unsqueeze(0), "nearest")[0]
        labels = picked[-1] if semantic is not None else None
    mask_no_data(upsampling.no_data, out_confidence, labels)
    if depth is not None:
        out_depth = maps[0].div_(maps[1].clamp_min_(1e-12)).exp_()
        invalid = picked[0] < 0.5
        if upsampling.no_data is not None:
            invalid |= upsampling.no_data
        out_depth.masked_fill_(invalid, math.nan)
    return out_depth, (labels.to(torch.uint8) if labels is not None else None), out_confidence


def finish_depth(log_depth: torch.Tensor, scale: float, depth_range: tuple[float, float], *,
                 labels: torch.Tensor | None, mask_sky: bool, no_data: torch.Tensor | None) -> torch.Tensor:
    """HxW metric depth (metres), in place of ``log_depth``: exp, times the canonical-camera ``scale``, NaN outside
    ``depth_range``, on sky ``labels`` with ``mask_sky`` and where ``no_data``."""
    depth = log_depth.exp_()
    if scale != 1.0:
        depth.mul_(scale)
    invalid = (depth < depth_range[0]) | (depth > depth_range[1])
    if mask_sky:
        invalid |= labels == SKY_TRAIN_ID
    if no_data is not None:
        invalid |= no_data
    return depth.masked_fill_(invalid, math.nan)


def depth_range_of(config: ModelConfig, min_depth: float | None, max_depth: float | None) -> tuple[float, float]:
    """The valid depth interval (metres): ``min_depth``/``max_depth``, None taking the model's own bound.

    ConfigError for a negative or non-finite minimum, or a maximum that is not above the minimum.
    """
    low = config.min_depth if min_depth is None else float(min_depth)
    high = config.max_depth if max_depth is None else float(max_depth)
    if not (math.isfinite(low) and low >= 0.0):
        raise ConfigError(f"min_depth = {min_depth!r} must be a non-negative number")
    if not (math.isfinite(high) and high > low):
        raise ConfigError(f"max_depth = {max_depth!r} must be larger than min_depth = {low!r}")
    return low, high

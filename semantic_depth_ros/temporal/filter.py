"""``TemporalFilter``: per-pixel fusion of a camera's depth over time, in log depth, on the depth's device.

Per frame (depth ``d`` HxW metres with NaN = invalid, confidence ``c`` HxW in [0, 1], semantic train ids HxW):

1. **Prior.** The previous fused state (log depth, weight, confidence) is forward-warped into the current view
   (:mod:`.warp`) with ``current_from_previous = inv(pose_t) @ pose_{t-1}`` when both frames have a
   ``world_from_camera`` pose, and the small holes the splat leaves on surfaces are filled
   (``warp.fill_small_holes``, neighbours within twice the gate); without poses (``static`` mode, or ``auto``
   while no pose arrives) the camera is assumed still and the state is used as it is.
2. **Scale** (pose-less operation only). ``r`` = median of ``log d - log prior`` over pixels of static classes (not
   sky, not ``temporal_moving_labels``) that roughly agree (within a factor 1.5); with at least
   ``MIN_SCALE_FRACTION`` of the pixels, the new depth is multiplied by ``exp(-s * r)`` (``s`` =
   ``temporal_scale_smoothing``), so the global scale follows the network's as an exponential average instead of
   jumping frame to frame. With poses the ratio also holds the motion the history lags behind, and correcting by
   it made flicker and accuracy worse on the generated drives (``temporal-eval``), so it is not applied.
3. **Gate.** A pixel fuses when both depths are valid, ``|log d - log prior| <= log(1 + temporal_disagreement)`` and
   its new label is not a moving class; otherwise it restarts from the new depth (so a moving car never smears).
   A pixel of a moving class fuses only within ``MOVING_GATE_SHARE`` of that gate and with the prior decayed by
   ``1 - 1 / temporal_moving_memory`` (2 frames by default; 1 = never): a parked car steadies a little, a car that
   moves restarts (``temporal-eval``: the moving car's abs rel within 1 % of the network's).
4. **Fuse.** Weights: the prior's ``w * (1 - 1 / temporal_memory)`` (bounded memory: the past decays) and the new
   observation's ``max(c, MIN_WEIGHT)``; fused log depth and confidence are their weighted means, the new weight
   their sum (it grows while a pixel keeps agreeing, up to about ``temporal_memory`` observations).

The filter restarts cleanly (state dropped, the frame passes through) on the first frame, a stamp gap above
``temporal_max_gap_s``, a stamp not newer than the last, a change of image size, intrinsics or device, and a change
between posed and pose-less frames. Memory: three HxW float32 images and one pose per camera.
Not thread-safe: one filter per camera, fed by one worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..data.tf_chain import invert_rigid
from ..errors import InvalidInputError
from ..geometry.intrinsics import Intrinsics
from ..labels import SKY
from .settings import TemporalSettings
from .warp import fill_small_holes, forward_warp

MOVING_GATE_SHARE = 0.25  # moving classes fuse only within this share of temporal_disagreement
MIN_WEIGHT = 0.05  # weight of an observation whose confidence is ~0 (an untrained or unsure network)
MIN_SCALE_FRACTION = 0.01  # fewest pixels (fraction of the image) that may set the scale correction
SCALE_AGREEMENT = math.log(1.5)  # pixels whose log ratio exceeds this do not vote on the scale


@dataclass
class _State:
    """One camera's fused history (HxW tensors on its device) and what it was computed for."""

    log_depth: torch.Tensor  # NaN where invalid
    weight: torch.Tensor  # 0 where invalid
    confidence: torch.Tensor
    stamp_ns: int
    intrinsics: Intrinsics | None
    pose: np.ndarray | None  # world_from_camera of the last frame, or None in pose-less operation


class TemporalFilter:
    """Fuses one camera's depth frames over time (see the module docstring); ``update`` once per frame."""

    def __init__(self, settings: TemporalSettings) -> None:
        self._state: _State | None = None
        self.configure(settings)
        self.frames = 0
        self.frames_without_pose = 0
        self.resets = 0
        self.last_reset = ""
        self._fused_fraction: torch.Tensor | float = 0.0  # 0-d tensors: read only in diagnostics (no device sync)
        self._scale_correction: torch.Tensor | float = 1.0
        self.last_fused: torch.Tensor | None = None  # HxW bool: the last frame's pixels fused with their history

    def reset(self) -> None:
        """Forget the history (lifecycle deactivate, a new replay); not counted in ``resets``."""
        self._state = None

    def configure(self, settings: TemporalSettings) -> None:
        """Use ``settings`` from the next frame on (a run-time parameter change); the history is kept unless
        ``temporal_filter`` changes."""
        if not isinstance(settings, TemporalSettings):
            raise InvalidInputError(f"TemporalFilter needs TemporalSettings, got {type(settings).__name__}")
        previous = getattr(self, "settings", None)  # None while __init__ configures
        if previous is not None and previous.temporal_filter != settings.temporal_filter:
            self.reset()
        self.settings = settings
        self._gate_limit = math.log1p(settings.temporal_disagreement)  # largest |log new - log prior| that fuses
        self._moving_gate_limit = math.log1p(settings.temporal_disagreement * MOVING_GATE_SHARE)
        self._moving_lut: dict[torch.device, torch.Tensor] = {}

    def update(self, depth: torch.Tensor, confidence: torch.Tensor, semantic: torch.Tensor,
               intrinsics: Intrinsics | None, stamp_ns: int, pose: np.ndarray | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused depth (HxW float32 metres, NaN where ``depth`` is NaN) and confidence (HxW float32) of this frame.

        ``depth``, ``confidence``, ``semantic``: HxW tensors on one device; ``intrinsics``: of the HxW image (needed
        to warp with poses; None = pose-less operation); ``stamp_ns``: the image stamp; ``pose``: 4x4
        ``world_from_camera`` (metres) or None.
        """
        _check_inputs(depth, confidence, semantic)
        if not self.settings.enabled:
            return depth, confidence
        self.frames += 1
        if pose is None:
            self.frames_without_pose += 1
        posed = pose is not None and intrinsics is not None and self.settings.temporal_filter == "auto"
        if posed:
            pose = _check_pose(pose)
        # NaN where the depth is invalid (NaN, <= 0 or infinite); arithmetic below, not torch.where, which is not
        # vectorised on CPUs
        log_new = torch.log(depth.float()).nan_to_num(nan=math.nan, posinf=math.nan, neginf=math.nan)
        conf_new = confidence.float()
        state = self._state
        reason = "first frame" if state is None else self._restart_reason(state, depth, intrinsics, stamp_ns, posed)
        if state is None or reason:
            if state is not None:
                self.resets += 1
                self.last_reset = reason
            self._restart(log_new, conf_new, stamp_ns, intrinsics, pose if posed else None)
            return torch.where(depth > 0, depth.float(), torch.nan), confidence
        if posed and state.pose is not None:
            current_from_previous = invert_rigid(pose) @ state.pose
            warped = fill_small_holes(forward_warp(torch.exp(state.log_depth), intrinsics, current_from_previous,
                                                   values=(state.weight, state.confidence)), 2 * self._gate_limit)
            prior_log, (prior_weight, prior_conf) = torch.log(warped.depth), warped.values
        else:
            prior_log, prior_weight, prior_conf = state.log_depth, state.weight, state.confidence
        moving = self._moving(semantic)
        if not posed:  # with poses the ratio also holds the history's motion lag: correcting by it measured worse
            log_new = self._stabilise_scale(log_new, prior_log, moving, semantic)
        else:
            self._scale_correction = 1.0
        # fuse where both depths agree and the new label is not a moving class (so a moving car never smears);
        # moving classes only within a tighter gate and with a short memory, when temporal_moving_memory > 1
        difference = (log_new - prior_log).abs()  # NaN where either depth is: every comparison below is False
        fuse = (difference <= self._gate_limit) & ~moving
        decay = 1.0 - 1.0 / self.settings.temporal_memory
        prior_weight = prior_weight.nan_to_num(0.0)
        w_prior = prior_weight * (fuse.float() * decay)  # 0 where not fused: the new value alone
        moving_decay = 1.0 - 1.0 / self.settings.temporal_moving_memory
        if moving_decay > 0.0:
            fuse_moving = (difference <= self._moving_gate_limit) & moving
            w_prior = w_prior + prior_weight * (fuse_moving.float() * moving_decay)
            fuse = fuse | fuse_moving
        w_new = conf_new.clamp(min=MIN_WEIGHT, max=1.0)
        total = w_prior + w_new
        log_fused = (w_prior * prior_log.nan_to_num(0.0) + w_new * log_new) / total  # NaN where log_new is
        conf_fused = (w_prior * prior_conf.nan_to_num(0.0) + w_new * conf_new) / total
        valid = ~torch.isnan(log_new)
        weight = total * valid.float()
        self._fused_fraction = fuse.sum() / valid.sum().clamp(min=1)
        self.last_fused = fuse
        self._state = _State(log_fused, weight, conf_fused, stamp_ns, intrinsics, pose if posed else None)
        return torch.exp(log_fused), conf_fused.to(confidence.dtype)

    def diagnostics(self) -> dict[str, str]:
        """Counters and the last frame's numbers, as strings (``/diagnostics`` key/values)."""
        return {
            "temporal_filter": self.settings.temporal_filter,
            "temporal_frames": str(self.frames),
            "temporal_fused_fraction": f"{float(self._fused_fraction):.3f}",
            "temporal_scale_correction": f"{float(self._scale_correction):.4f}",
            "temporal_frames_without_pose": str(self.frames_without_pose),
            "temporal_resets": str(self.resets),
            "temporal_last_reset": self.last_reset or "none",
        }

    @property
    def fused_fraction(self) -> float:
        """Fraction of the last frame's valid pixels that were fused with their history."""
        return float(self._fused_fraction)

    @property
    def scale_correction(self) -> float:
        """Factor the last frame's depth was multiplied by before fusion (1 = none)."""
        return float(self._scale_correction)

    # ------------------------------------------------------------------ steps

    def _restart_reason(self, state: _State, depth: torch.Tensor, intrinsics: Intrinsics | None, stamp_ns: int,
                        posed: bool) -> str:
        """Why this frame cannot be fused with ``state`` ("" when it can)."""
        if stamp_ns <= state.stamp_ns:
            return f"stamp {stamp_ns} ns not after the previous {state.stamp_ns} ns"
        gap = (stamp_ns - state.stamp_ns) * 1e-9
        if gap > self.settings.temporal_max_gap_s:
            return f"gap of {gap:.3f} s"
        if state.log_depth.shape != depth.shape:
            return f"size changed to {depth.shape[1]}x{depth.shape[0]}"
        if state.log_depth.device != depth.device:
            return f"device changed to {depth.device}"
        if state.intrinsics != intrinsics:
            return "camera intrinsics changed"
        if posed != (state.pose is not None):
            return "pose appeared" if posed else "pose lost"
        return ""

    def _restart(self, log_new: torch.Tensor, conf_new: torch.Tensor, stamp_ns: int, intrinsics: Intrinsics | None,
                 pose: np.ndarray | None) -> None:
        """Start a new history from this frame (which passes through unchanged)."""
        weight = torch.where(torch.isfinite(log_new), conf_new.clamp(min=MIN_WEIGHT, max=1.0), 0.0)
        self._state = _State(log_new, weight, conf_new, stamp_ns, intrinsics, pose)
        self._fused_fraction = 0.0
        self.last_fused = None
        self._scale_correction = 1.0

    def _moving(self, semantic: torch.Tensor) -> torch.Tensor:
        """HxW bool: pixels whose label is one of ``temporal_moving_labels`` (a range compare, or a 256-entry lookup
        table per device)."""
        labels = self.settings.temporal_moving_labels
        if not labels:
            return torch.zeros(semantic.shape, dtype=torch.bool, device=semantic.device)
        if labels == tuple(range(labels[0], labels[-1] + 1)):  # a contiguous range (the default): two compares
            return (semantic >= labels[0]) & (semantic <= labels[-1])
        lut = self._moving_lut.get(semantic.device)
        if lut is None:
            lut = torch.zeros(256, dtype=torch.bool)
            lut[list(self.settings.temporal_moving_labels)] = True
            lut = self._moving_lut.setdefault(semantic.device, lut.to(semantic.device))
        return lut[semantic.long()]

    def _stabilise_scale(self, log_new: torch.Tensor, prior_log: torch.Tensor, moving: torch.Tensor,
                         semantic: torch.Tensor) -> torch.Tensor:
        """``log_new`` corrected by ``-s * median log ratio`` over static pixels (unchanged when ``s`` = 0 or too
        few pixels vote)."""
        smoothing = self.settings.temporal_scale_smoothing
        if smoothing == 0.0:
            self._scale_correction = 1.0
            return log_new
        ratio = log_new - prior_log
        voters = torch.isfinite(ratio) & (ratio.abs() < SCALE_AGREEMENT) & ~moving & (semantic != SKY)
        enough = voters.sum() >= MIN_SCALE_FRACTION * voters.numel()
        median = torch.nanmedian(torch.where(voters, ratio, torch.nan))
        log_correction = torch.where(enough, -smoothing * median, 0.0).nan_to_num()
        self._scale_correction = torch.exp(log_correction)
        return log_new + log_correction


def _check_inputs(depth: torch.Tensor, confidence: torch.Tensor, semantic: torch.Tensor) -> None:
    """InvalidInputError naming the input unless all are HxW tensors of one shape and device."""
    if depth.dim() != 2 or not depth.is_floating_point():
        raise InvalidInputError(f"temporal filter depth must be a floating-point HxW tensor, got {depth.dtype} of "
                                f"shape {tuple(depth.shape)}")
    for name, tensor in (("confidence", confidence), ("semantic", semantic)):
        if tensor.shape != depth.shape or tensor.device != depth.device:
            raise InvalidInputError(f"temporal filter {name} of shape {tuple(tensor.shape)} on {tensor.device} does "
                                    f"not match depth's {tuple(depth.shape)} on {depth.device}")


def _check_pose(pose: np.ndarray) -> np.ndarray:
    """``pose`` as a finite 4x4 float64 rigid transform, or InvalidInputError naming it."""
    matrix = np.asarray(pose, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.all(np.isfinite(matrix)):
        raise InvalidInputError(f"camera pose must be a finite 4x4 world_from_camera matrix, got shape "
                                f"{matrix.shape}")
    rotation = matrix[:3, :3]
    if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-4) or not np.allclose(matrix[3], [0, 0, 0, 1]):
        raise InvalidInputError(f"camera pose is not a rigid transform: {matrix.tolist()}")
    return matrix

"""TemporalFilter, TemporalSettings and TemporalStage: fusion, gating, restarts, scale, diagnostics, errors."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from semantic_depth_ros.data.tf_chain import rigid_transform
from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.inference.estimator import EstimatorOutputs
from semantic_depth_ros.labels import BUILDING, CAR, PERSON, RIDER, ROAD
from semantic_depth_ros.pipeline.stages import FrameContext, FrameStage
from semantic_depth_ros.temporal import TemporalFilter, TemporalSettings, TemporalStage
from semantic_depth_ros.temporal.settings import MOVING_LABELS

H, W = 12, 16
INTR = Intrinsics(fx=20.0, fy=20.0, cx=7.5, cy=5.5, width=W, height=H)
MS = 1_000_000  # ns per millisecond
DECAY = 1.0 - 1.0 / 8.0  # default temporal_memory


def _settings(**changes: object) -> TemporalSettings:
    return TemporalSettings(**{"temporal_filter": "auto", "temporal_scale_smoothing": 0.0, **changes})


def _labels(label: int = BUILDING) -> torch.Tensor:
    return torch.full((H, W), label, dtype=torch.uint8)


def _update(filt: TemporalFilter, depth: float | torch.Tensor, stamp_ms: int, *, semantic: torch.Tensor | None = None,
            confidence: float = 1.0, intrinsics: Intrinsics | None = INTR, pose: np.ndarray | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    depth = depth if isinstance(depth, torch.Tensor) else torch.full((H, W), float(depth))
    conf = torch.full(depth.shape, confidence)
    labels = semantic if semantic is not None else torch.full(depth.shape, BUILDING, dtype=torch.uint8)
    return filt.update(depth, conf, labels, intrinsics, stamp_ms * MS, pose)


def _fused(prior: float, new: float, w_prior: float = 1.0, w_new: float = 1.0) -> float:
    """The filter's fusion rule by hand: weighted mean in log depth, the prior's weight decayed once."""
    w_prior *= DECAY
    return math.exp((w_prior * math.log(prior) + w_new * math.log(new)) / (w_prior + w_new))


def test_static_camera_fuses_in_log_depth_with_growing_weight() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static"))
    first, _ = _update(filt, 10.0, 0)
    assert torch.all(first == 10.0)  # the first frame passes through
    second, conf = _update(filt, 10.5, 100, confidence=0.6)
    expected = _fused(10.0, 10.5, w_prior=1.0, w_new=0.6)
    np.testing.assert_allclose(second.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(conf.numpy(), (DECAY * 1.0 + 0.6 * 0.6) / (DECAY + 0.6), rtol=1e-5)
    third, _ = _update(filt, 10.0, 200)
    # the history now weighs 0.875 * 1 + 0.6 = 1.475 observations
    w_history = DECAY * 1.0 + 0.6
    expected_third = math.exp((DECAY * w_history * math.log(expected) + math.log(10.0)) / (DECAY * w_history + 1.0))
    np.testing.assert_allclose(third.numpy(), expected_third, rtol=1e-5)
    assert filt.fused_fraction == pytest.approx(1.0)


def test_memory_of_one_frame_never_fuses() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_memory=1.0))
    _update(filt, 10.0, 0)
    out, _ = _update(filt, 10.5, 100)
    np.testing.assert_allclose(out.numpy(), 10.5, rtol=1e-6)


def test_moving_classes_are_never_fused_so_a_car_does_not_smear() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_moving_memory=1.0))
    labels = _labels(ROAD)
    labels[4:8, 4:10] = CAR
    _update(filt, 10.0, 0, semantic=labels)
    depth = torch.full((H, W), 10.4)
    depth[4:8, 4:10] = 10.3  # the car moved (within the disagreement threshold, so only the class gate stops it)
    out, _ = _update(filt, depth, 100, semantic=labels)
    np.testing.assert_allclose(out[4:8, 4:10].numpy(), 10.3, rtol=1e-6)
    np.testing.assert_allclose(out[0].numpy(), _fused(10.0, 10.4), rtol=1e-5)
    assert filt.fused_fraction == pytest.approx(1 - 24 / (H * W))
    np.testing.assert_array_equal(filt.last_fused.numpy(), (labels != CAR).numpy())


def test_moving_classes_fuse_only_within_a_quarter_of_the_gate_and_with_a_short_memory() -> None:
    """By default (temporal_moving_memory 2) a car pixel that keeps its depth (parked) is fused a little, one whose
    depth changes by more than a quarter of temporal_disagreement (0.05 of 0.2) restarts from the new depth."""
    filt = TemporalFilter(_settings(temporal_filter="static"))
    assert filt.settings.temporal_moving_memory == 2.0
    labels = _labels(CAR)
    _update(filt, 10.0, 0, semantic=labels)
    depth = torch.full((H, W), 10.3)  # 3 %: within 5 %, fused with the prior's weight halved
    depth[:, W // 2:] = 10.8  # 8 %: within the 20 % gate of static classes, but a moving class restarts
    out, _ = _update(filt, depth, 100, semantic=labels)
    half = math.exp((0.5 * math.log(10.0) + math.log(10.3)) / 1.5)
    np.testing.assert_allclose(out[:, :W // 2].numpy(), half, rtol=1e-5)
    np.testing.assert_allclose(out[:, W // 2:].numpy(), 10.8, rtol=1e-6)
    assert filt.fused_fraction == pytest.approx(0.5)
    out, _ = _update(filt, 10.3, 200, semantic=labels)  # the weight stays bounded: memory of about two frames
    assert abs(out[0, 0].item() - 10.3) < abs(half - 10.3)


def test_a_scattered_moving_label_list_gates_exactly_its_classes() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_moving_labels=(PERSON, CAR),
                                    temporal_moving_memory=1.0))
    labels = _labels(RIDER)
    labels[0] = CAR
    labels[1] = PERSON
    _update(filt, 10.0, 0, semantic=labels)
    out, _ = _update(filt, 10.3, 100, semantic=labels)
    np.testing.assert_allclose(out[:2].numpy(), 10.3, rtol=1e-6)
    np.testing.assert_allclose(out[2:].numpy(), _fused(10.0, 10.3), rtol=1e-5)


def test_an_empty_moving_label_list_fuses_cars_too() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_moving_labels=()))
    _update(filt, 10.0, 0, semantic=_labels(CAR))
    out, _ = _update(filt, 10.3, 100, semantic=_labels(CAR))
    np.testing.assert_allclose(out.numpy(), _fused(10.0, 10.3), rtol=1e-5)


def test_disagreement_restarts_a_pixel_from_the_new_depth() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_disagreement=0.1))
    _update(filt, 10.0, 0)
    depth = torch.full((H, W), 10.9)  # +9 %: fused
    depth[0, 0] = 11.2  # +12 %: restarts
    out, _ = _update(filt, depth, 100)
    assert out[0, 0].item() == pytest.approx(11.2, rel=1e-6)
    assert out[5, 5].item() == pytest.approx(_fused(10.0, 10.9), rel=1e-5)
    # the restarted pixel's history is the one new frame: its next fusion weighs it as one observation
    out, _ = _update(filt, 11.0, 200)
    assert out[0, 0].item() == pytest.approx(_fused(11.2, 11.0), rel=1e-5)


def test_invalid_depth_stays_invalid_and_is_not_filled_from_history() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static"))
    _update(filt, 10.0, 0)
    depth = torch.full((H, W), 10.0)
    depth[2, 3] = float("nan")
    out, _ = _update(filt, depth, 100)
    assert math.isnan(out[2, 3].item()) and torch.isfinite(out).sum() == H * W - 1
    out, _ = _update(filt, 10.0, 200)
    assert out[2, 3].item() == pytest.approx(10.0)  # restarted there: nothing to fuse with


def _restart_cases() -> list[tuple[str, dict[str, object], str]]:
    other = dataclasses.replace(INTR, fx=25.0)
    return [
        ("gap", {"stamp_ms": 700}, "gap of 0.600 s"),
        ("camera", {"intrinsics": other}, "camera intrinsics changed"),
        ("size", {"depth": torch.full((H + 2, W), 10.5), "intrinsics": None}, f"size changed to {W}x{H + 2}"),
        ("older stamp", {"stamp_ms": 50}, "stamp 50000000 ns not after the previous 100000000 ns"),
        ("same stamp", {"stamp_ms": 100}, "not after the previous"),
        ("pose appeared", {"pose": np.eye(4)}, "pose appeared"),
    ]


@pytest.mark.parametrize("name, change, reason", _restart_cases(), ids=[c[0] for c in _restart_cases()])
def test_restarts_pass_the_frame_through_and_are_counted(name: str, change: dict, reason: str) -> None:
    filt = TemporalFilter(_settings())
    _update(filt, 10.0, 0)
    _update(filt, 10.0, 100)
    args = {"depth": 10.5, "stamp_ms": 200, **change}
    out, _ = _update(filt, args.pop("depth"), args.pop("stamp_ms"), **args)
    np.testing.assert_allclose(out.numpy(), 10.5, rtol=1e-6)
    assert filt.resets == 1 and reason in filt.last_reset
    assert filt.diagnostics()["temporal_resets"] == "1"


def test_losing_the_pose_restarts() -> None:
    filt = TemporalFilter(_settings())
    _update(filt, 10.0, 0, pose=np.eye(4))
    out, _ = _update(filt, 10.5, 100)
    np.testing.assert_allclose(out.numpy(), 10.5, rtol=1e-6)
    assert filt.last_reset == "pose lost" and filt.frames_without_pose == 1


def test_with_poses_the_history_is_warped_into_the_current_view() -> None:
    filt = TemporalFilter(_settings())
    # a wall 10 m ahead; the camera then moves 1 m forward: the wall is 9 m away, the network says 9.2
    _update(filt, 10.0, 0, pose=np.eye(4))
    out, _ = _update(filt, 9.2, 100, pose=rigid_transform(np.eye(3), (0.0, 0.0, 1.0)))
    assert out[5, 7].item() == pytest.approx(_fused(9.0, 9.2), rel=1e-5)
    # without poses the same frames fuse with the unmoved 10 m (the static-camera assumption)
    still = TemporalFilter(_settings())
    _update(still, 10.0, 0)
    out, _ = _update(still, 9.2, 100)
    assert out[5, 7].item() == pytest.approx(_fused(10.0, 9.2), rel=1e-5)


def test_static_mode_ignores_poses() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static"))
    _update(filt, 10.0, 0, pose=np.eye(4))
    out, _ = _update(filt, 9.2, 100, pose=rigid_transform(np.eye(3), (0.0, 0.0, 1.0)))
    assert out[5, 7].item() == pytest.approx(_fused(10.0, 9.2), rel=1e-5)
    assert filt.resets == 0 and filt.frames_without_pose == 0


def test_scale_stabiliser_smooths_a_global_scale_jump() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_scale_smoothing=0.8))
    _update(filt, 10.0, 0)
    out, _ = _update(filt, 10.0 * 1.3, 100)  # a 30 % jump: beyond the gate, but the scale is corrected first
    corrected = 13.0 * 1.3 ** -0.8
    np.testing.assert_allclose(out.numpy(), _fused(10.0, corrected), rtol=1e-5)
    assert filt.scale_correction == pytest.approx(1.3 ** -0.8, rel=1e-5)
    assert filt.diagnostics()["temporal_scale_correction"] == f"{1.3 ** -0.8:.4f}"


def test_scale_stabiliser_is_not_applied_with_poses() -> None:
    filt = TemporalFilter(_settings(temporal_scale_smoothing=0.8))
    _update(filt, 10.0, 0, pose=np.eye(4))
    out, _ = _update(filt, 10.5, 100, pose=np.eye(4))
    assert filt.scale_correction == 1.0
    np.testing.assert_allclose(out.numpy(), _fused(10.0, 10.5), rtol=1e-5)


def test_scale_stabiliser_ignores_moving_classes_and_sky() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static", temporal_scale_smoothing=0.8))
    _update(filt, 10.0, 0, semantic=_labels(PERSON))
    out, _ = _update(filt, 13.0, 100, semantic=_labels(PERSON))
    assert filt.scale_correction == 1.0
    np.testing.assert_allclose(out.numpy(), 13.0, rtol=1e-6)


def test_off_mode_returns_the_inputs() -> None:
    filt = TemporalFilter(TemporalSettings())
    depth, conf = torch.full((H, W), 3.0), torch.full((H, W), 0.5)
    out_depth, out_conf = filt.update(depth, conf, _labels(), INTR, 0)
    assert out_depth is depth and out_conf is conf and filt.frames == 0


def test_diagnostics_report_every_counter() -> None:
    filt = TemporalFilter(_settings(temporal_filter="static"))
    _update(filt, 10.0, 0)
    _update(filt, 10.0, 100)
    _update(filt, 10.0, 2000)
    assert filt.diagnostics() == {
        "temporal_filter": "static", "temporal_frames": "3", "temporal_fused_fraction": "0.000",
        "temporal_scale_correction": "1.0000", "temporal_frames_without_pose": "3", "temporal_resets": "1",
        "temporal_last_reset": "gap of 1.900 s",
    }


def test_mismatched_inputs_are_rejected_naming_them() -> None:
    filt = TemporalFilter(_settings())
    with pytest.raises(InvalidInputError, match="temporal filter confidence of shape"):
        filt.update(torch.ones(H, W), torch.ones(H, W + 1), _labels(), INTR, 0)
    with pytest.raises(InvalidInputError, match="camera pose must be a finite 4x4"):
        filt.update(torch.ones(H, W), torch.ones(H, W), _labels(), INTR, 0, np.full((4, 4), np.nan))
    with pytest.raises(InvalidInputError, match="not a rigid transform"):
        filt.update(torch.ones(H, W), torch.ones(H, W), _labels(), INTR, 0, 2 * np.eye(4))


@pytest.mark.parametrize("field, value, message", [
    ("temporal_filter", "maybe", "temporal_filter = 'maybe' must be one of off, on, auto, static"),
    ("temporal_filter", 1, "temporal_filter = 1 must be one of off, on, auto, static"),
    ("temporal_disagreement", 0.0, "temporal_disagreement = 0.0 must be in"),
    ("temporal_disagreement", float("nan"), "temporal_disagreement = nan must be finite"),
    ("temporal_memory", 0.5, r"temporal_memory = 0.5 must be in \[1, 100\] frames"),
    ("temporal_max_gap_s", -1, r"temporal_max_gap_s = -1 must be in \(0, 60\] s"),
    ("temporal_scale_smoothing", 1.0, r"temporal_scale_smoothing = 1.0 must be in \[0, 1\)"),
    ("temporal_scale_smoothing", "a lot", "temporal_scale_smoothing = 'a lot' must be a number"),
    ("temporal_moving_labels", (11, 19), r"temporal_moving_labels: 19 is not a train id \(0..18\)"),
    ("temporal_moving_labels", "car", "temporal_moving_labels = 'car' must be a list of integers"),
    ("temporal_moving_labels", (1.5,), "must be a list of integers"),
])
def test_settings_validation_names_the_field_and_value(field: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        TemporalSettings(**{field: value})


def test_settings_defaults_and_normalisation() -> None:
    settings = TemporalSettings(temporal_memory=4, temporal_moving_labels=[13, 11, 13])
    assert settings.temporal_memory == 4.0 and isinstance(settings.temporal_memory, float)
    assert settings.temporal_moving_labels == (11, 13)
    assert TemporalSettings().temporal_moving_labels == MOVING_LABELS == (11, 12, 13, 14, 15, 16, 17, 18)
    assert not TemporalSettings().enabled and TemporalSettings(temporal_filter="auto").enabled
    assert TemporalSettings.field_names()[0] == "temporal_filter"


def _outputs(depth: float) -> EstimatorOutputs:
    image = torch.zeros((H, W, 3), dtype=torch.uint8)
    return EstimatorOutputs(depth=torch.full((H, W), depth), semantic=_labels(), confidence=torch.full((H, W), 1.0),
                            intrinsics=INTR, image=image)


def _run_chain(stages: list[FrameStage], outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
    for stage in stages:
        outputs = stage.process(outputs, context)
    return outputs


def test_stage_through_the_frame_stage_protocol() -> None:
    stage = TemporalStage(_settings(temporal_filter="static"))
    assert set(stage.needs) == {"depth", "confidence", "semantic"}
    first = _outputs(10.0)
    out = _run_chain([stage], first, FrameContext(stamp_ns=0))
    second = _outputs(10.5)
    out = _run_chain([stage], second, FrameContext(stamp_ns=100 * MS))
    np.testing.assert_allclose(out.depth.numpy(), _fused(10.0, 10.5), rtol=1e-5)
    assert out.depth.dtype == torch.float32 and out.confidence.shape == (H, W)
    assert out.semantic is second.semantic and out.image is second.image and out.intrinsics is second.intrinsics
    # an older stamp than the last restarts: the frame passes through
    out = _run_chain([stage], _outputs(12.0), FrameContext(stamp_ns=50 * MS))
    np.testing.assert_allclose(out.depth.numpy(), 12.0, rtol=1e-6)
    assert stage.diagnostics()["temporal_resets"] == "1"
    stage.reset()  # a new replay: not a counted restart
    out = _run_chain([stage], _outputs(11.0), FrameContext(stamp_ns=0))
    np.testing.assert_allclose(out.depth.numpy(), 11.0, rtol=1e-6)
    assert stage.diagnostics()["temporal_resets"] == "1"


def test_stage_settings_change_at_run_time() -> None:
    stage = TemporalStage(_settings(temporal_filter="static"))
    stage.process(_outputs(10.0), FrameContext(stamp_ns=0))
    stage.configure(_settings(temporal_filter="static", temporal_disagreement=0.01))  # history kept, tighter gate
    out = stage.process(_outputs(10.5), FrameContext(stamp_ns=100 * MS))
    np.testing.assert_allclose(out.depth.numpy(), 10.5, rtol=1e-6)  # +5 % is beyond a 1 % gate: restarted
    stage.configure(_settings(temporal_filter="static"))
    out = stage.process(_outputs(10.0), FrameContext(stamp_ns=200 * MS))
    np.testing.assert_allclose(out.depth.numpy(), _fused(10.5, 10.0), rtol=1e-5)
    stage.configure(TemporalSettings())  # off: passes through and forgets
    assert stage.settings.temporal_filter == "off"
    stage.configure(_settings(temporal_filter="static"))
    out = stage.process(_outputs(12.0), FrameContext(stamp_ns=300 * MS))
    np.testing.assert_allclose(out.depth.numpy(), 12.0, rtol=1e-6)
    assert stage.diagnostics()["temporal_resets"] == "0"


def test_stage_off_passes_outputs_through_and_missing_outputs_are_named() -> None:
    outputs = _outputs(10.0)
    assert TemporalStage(TemporalSettings()).process(outputs, FrameContext(stamp_ns=0)) is outputs
    stage = TemporalStage(_settings())
    with pytest.raises(InvalidInputError, match="missing: semantic"):
        stage.process(dataclasses.replace(outputs, semantic=None), FrameContext(stamp_ns=0))


@pytest.mark.parametrize("value, mode", [("on", "auto"), (True, "auto"), (False, "off"), ("static", "static")])
def test_on_and_yaml_booleans_name_the_modes(value, mode) -> None:
    assert TemporalSettings(temporal_filter=value).temporal_filter == mode

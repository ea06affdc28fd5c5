"""The per-camera frame path shared by the node and replay: OutputPlan, CloudLayout and CameraOutputs with stages."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from semantic_depth_ros.errors import ConfigError, InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import backproject_organised, build_rays, pack_rgb
from semantic_depth_ros.inference.colorize import colorize_depth, colorize_semantic
from semantic_depth_ros.inference.estimator import EstimatorOutputs
from semantic_depth_ros.messages import OUTPUT_TOPICS, cloud_array, image_array
from semantic_depth_ros.pipeline import CameraOutputs, CloudLayout, FrameContext, OutputPlan


def _estimator_outputs(height: int = 4, width: int = 6) -> EstimatorOutputs:
    generator = torch.Generator().manual_seed(0)
    depth = torch.rand(height, width, generator=generator) * 50 + 2
    depth[0, 0] = float("nan")
    return EstimatorOutputs(
        depth=depth, semantic=torch.randint(0, 19, (height, width), dtype=torch.uint8, generator=generator),
        confidence=torch.rand(height, width, generator=generator),
        intrinsics=Intrinsics(fx=5.0, fy=5.0, cx=2.5, cy=1.5, width=width, height=height),
        image=torch.randint(0, 256, (height, width, 3), dtype=torch.uint8, generator=generator))


class ScaleDepth:
    """A stage that multiplies depth by ``factor`` and records what it saw."""

    def __init__(self, factor: float, needs: tuple[str, ...] = ("depth",), enabled: bool = True) -> None:
        self.factor, self.needs, self.enabled = factor, needs, enabled
        self.name = f"scale_{factor:g}"
        self.seen: list[FrameContext] = []
        self.resets = 0

    def process(self, outputs: EstimatorOutputs, context: FrameContext) -> EstimatorOutputs:
        self.seen.append(context)
        return dataclasses.replace(outputs, depth=outputs.depth * self.factor)

    def reset(self) -> None:
        self.resets += 1
        self.seen.clear()

    def diagnostics(self) -> dict[str, str]:
        return {f"scale_{self.factor:g}": str(len(self.seen)), "frames": str(len(self.seen))}


def test_the_plan_derives_the_estimator_outputs() -> None:
    assert OutputPlan(("points",)).estimator_outputs() == ("depth", "image")
    assert OutputPlan(("semantic_color", "depth_info")).estimator_outputs() == ("depth", "semantic")
    assert OutputPlan(("semantic",), needs=("confidence", "depth")).estimator_outputs() == \
        ("depth", "semantic", "confidence")
    assert OutputPlan(("semantic",), host_depth=True).estimator_outputs() == ("depth", "semantic")
    assert OutputPlan(()).estimator_outputs() == ()


def test_the_plan_is_ordered_and_checked_once() -> None:
    plan = OutputPlan(("points", "depth", "depth_info"), CloudLayout("xyzrgbl", (10, 0, 10), 2))
    assert plan.outputs == ("depth", "depth_info", "points")  # OUTPUT_TOPICS order: depth is published first
    assert plan.cloud == CloudLayout("xyzrgbl", (0, 10), 2)  # labels sorted, without repeats
    with pytest.raises(ConfigError, match="output 'pointz' is not one of depth, depth_info, points"):
        OutputPlan(("pointz",))
    with pytest.raises(ConfigError, match="estimator output 'colour' is not one of depth, semantic"):
        OutputPlan(("depth",), needs=("colour",))
    with pytest.raises(InvalidInputError, match="point_fields = 'xyz' is not one of"):
        CloudLayout("xyz")
    with pytest.raises(InvalidInputError, match="drop label 19 is not a Cityscapes train id"):
        CloudLayout(drop_labels=(19,))
    with pytest.raises(InvalidInputError, match="point stride = 0 must be an integer >= 1"):
        CloudLayout(stride=0)


def test_outputs_that_need_intrinsics_are_left_out_in_one_place() -> None:
    plan = OutputPlan(("depth", "depth_info", "points", "semantic"))
    assert plan.needs_intrinsics and not OutputPlan(("depth",)).needs_intrinsics
    assert plan.servable(has_intrinsics=True) is plan
    assert plan.servable(has_intrinsics=False).outputs == ("depth", "semantic")
    assert plan.servable(has_intrinsics=False).estimator_outputs() == ("depth", "semantic")  # no colours
    camera = CameraOutputs(plan)
    assert camera.estimator_outputs(has_intrinsics=False) == ("depth", "semantic")
    assert camera.estimator_outputs(has_intrinsics=True) == ("depth", "semantic", "image")


def test_a_frame_of_every_output_from_estimator_outputs() -> None:
    outputs = _estimator_outputs()
    camera = CameraOutputs(OutputPlan(tuple(OUTPUT_TOPICS), CloudLayout(stride=2)))
    messages = camera.messages(outputs, 0, depth_range=(1.0, 80.0))
    fields = messages.fields
    assert list(fields) == list(OUTPUT_TOPICS)  # depth first: the order of publication
    np.testing.assert_array_equal(image_array(fields["depth"]), outputs.depth.numpy())
    np.testing.assert_array_equal(messages.depth, outputs.depth.numpy())
    np.testing.assert_array_equal(image_array(fields["semantic"]), outputs.semantic.numpy())
    np.testing.assert_array_equal(image_array(fields["confidence"]), outputs.confidence.numpy())
    np.testing.assert_array_equal(image_array(fields["semantic_color"]), colorize_semantic(outputs.semantic).numpy())
    np.testing.assert_array_equal(image_array(fields["depth_color"]),
                                  colorize_depth(outputs.depth, 1.0, 80.0).numpy())
    expected_cloud = backproject_organised(outputs.depth, build_rays(outputs.intrinsics, 2, "cpu"), outputs.image,
                                           stride=2)
    np.testing.assert_array_equal(cloud_array(fields["points"]), expected_cloud.numpy())
    assert cloud_array(fields["points"])[..., 3].view(np.int32).tolist() == \
        pack_rgb(outputs.image[::2, ::2]).view(torch.int32).tolist()
    assert fields["depth_info"].k == outputs.intrinsics.k()


def test_without_intrinsics_there_are_no_points_and_no_camera_info() -> None:
    outputs = _estimator_outputs()
    outputs = EstimatorOutputs(depth=outputs.depth, semantic=None, confidence=None, intrinsics=None, image=None)
    messages = CameraOutputs(OutputPlan(("depth", "depth_info", "points"))).messages(outputs, 0,
                                                                                   depth_range=(1.0, 80.0))
    assert list(messages.fields) == ["depth"]


def test_host_depth_without_publishing_it() -> None:
    outputs = _estimator_outputs()
    messages = CameraOutputs(OutputPlan(("semantic",), host_depth=True)).messages(outputs, 0, depth_range=(1.0, 80.0))
    assert list(messages.fields) == ["semantic"]
    np.testing.assert_array_equal(messages.depth, outputs.depth.numpy())
    assert CameraOutputs(OutputPlan(("semantic",))).messages(outputs, 0, depth_range=(1.0, 80.0)).depth is None


def test_stages_run_in_order_before_the_message_core() -> None:
    outputs = _estimator_outputs()
    first, second = ScaleDepth(2.0), ScaleDepth(3.0, needs=("depth", "confidence"))
    camera = CameraOutputs(OutputPlan(("depth", "points")), [first, second])
    assert camera.plan.estimator_outputs() == ("depth", "confidence", "image")  # the stages' needs included
    messages = camera.messages(outputs, 1_700_000_000_123_456_789, depth_range=(1.0, 80.0))
    np.testing.assert_allclose(image_array(messages.fields["depth"]), outputs.depth.numpy() * 6.0, equal_nan=True)
    points = cloud_array(messages.fields["points"])
    np.testing.assert_allclose(points[..., 2], outputs.depth.numpy() * 6.0, rtol=1e-6, equal_nan=True)
    assert first.seen == second.seen == [FrameContext(stamp_ns=1_700_000_000_123_456_789, pose=None)]
    assert list(messages.seconds) == ["scale_2", "scale_3", "outputs"]  # each stage timed, then the outputs
    assert all(0.0 < seconds < 60.0 for seconds in messages.seconds.values())
    assert camera.diagnostics() == {"scale_2": "1", "scale_3": "1", "frames": "1"}  # later stages win a key
    camera.reset()
    assert (first.resets, second.resets) == (1, 1) and camera.diagnostics()["frames"] == "0"


def test_a_stage_switched_off_runs_but_is_not_timed() -> None:
    off = ScaleDepth(1.0, enabled=False)
    messages = CameraOutputs(OutputPlan(("depth",)), [off]).messages(_estimator_outputs(), 5, depth_range=(1.0, 80.0))
    assert len(off.seen) == 1 and list(messages.seconds) == ["outputs"]


def test_replan_changes_the_plan_and_keeps_the_stages_needs() -> None:
    outputs = _estimator_outputs()
    camera = CameraOutputs(OutputPlan(("points",)), [ScaleDepth(1.0, needs=("confidence",))])
    assert cloud_array(camera.messages(outputs, 0, depth_range=(1.0, 80.0)).fields["points"]).shape == (4, 6, 4)
    camera.replan(OutputPlan(("points", "semantic"), CloudLayout("xyzrgblc", stride=2)))
    assert camera.plan.estimator_outputs() == ("depth", "semantic", "confidence", "image")
    fields = camera.messages(outputs, 1, depth_range=(1.0, 80.0)).fields
    assert list(fields) == ["points", "semantic"]
    assert cloud_array(fields["points"]).shape == (2, 3, 6)

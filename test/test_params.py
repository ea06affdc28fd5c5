"""Depth node parameters: validation, dynamic vs static changes, ROS descriptors (no node needed)."""

from __future__ import annotations

import array
import dataclasses

import numpy as np
import pytest
from rcl_interfaces.msg import ParameterType

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.ros.params import (
    DYNAMIC_PARAMETERS,
    PARAMETER_NAMES,
    PARAMETERS,
    SPECS,
    STATIC_PARAMETERS,
    NodeSettings,
    apply_changes,
    declaration_list,
    make_descriptor,
    settings_from_values,
    validate_value,
)

pytestmark = pytest.mark.ros  # the parameters' ROS 2 declaration

ISSUE_PARAMETERS = {"model_path", "device", "precision", "output_resolution", "min_depth", "max_depth", "mask_sky",
                    "point_stride", "fx", "fy", "cx", "cy", "input_transport",
                    "point_fields", "points_drop_labels"}  # the last two: issue 10's semantic point clouds
EXTRA_PARAMETERS = {"backend", "cameras", "trt_cache_dir", "input_rectified"}  # the last: issue 21
QOS_PARAMETERS = {"input_qos_reliability", "input_qos_depth", "output_qos_reliability", "output_qos_depth"}
ROAD_PARAMETERS = {"scale_from_road", "camera_height", "camera_pitch", "camera_heights", "camera_pitches",
                   "scale_window", "road_labels",
                   "road_min_fraction", "road_min_inlier_ratio", "road_inlier_tolerance", "road_max_tilt"}  # issue 16
TEMPORAL_PARAMETERS = {"temporal_filter", "temporal_disagreement", "temporal_memory", "temporal_max_gap_s",
                       "temporal_scale_smoothing", "temporal_moving_labels", "temporal_moving_memory",
                       "odom_wait_s"}  # issue 15, dynamic
ODOMETRY_PARAMETERS = {"odom_topic", "camera_extrinsic"}  # issue 15, static


def test_the_table_has_the_issue_parameters_plus_qos_and_matches_node_settings() -> None:
    assert set(PARAMETER_NAMES) == (ISSUE_PARAMETERS | EXTRA_PARAMETERS | QOS_PARAMETERS | ROAD_PARAMETERS
                                    | TEMPORAL_PARAMETERS | ODOMETRY_PARAMETERS)
    assert [f.name for f in dataclasses.fields(NodeSettings)] == list(PARAMETER_NAMES)
    defaults = NodeSettings()
    for spec in PARAMETERS:
        assert getattr(defaults, spec.name) == spec.default, spec.name
        assert type(spec.default) is type(getattr(defaults, spec.name)), spec.name


def test_dynamic_and_static_split() -> None:
    assert DYNAMIC_PARAMETERS == {"output_resolution", "min_depth", "max_depth", "mask_sky", "point_stride",
                                  "fx", "fy", "cx", "cy", "point_fields", "points_drop_labels"} | TEMPORAL_PARAMETERS
    assert STATIC_PARAMETERS == {"model_path", "device", "precision", "backend", "trt_cache_dir",
                                 "input_transport", "input_rectified", "cameras"} | QOS_PARAMETERS | ROAD_PARAMETERS \
        | ODOMETRY_PARAMETERS


def test_qos_defaults_are_best_effort_in_and_reliable_out_keep_last_one() -> None:
    defaults = NodeSettings()
    assert (defaults.input_qos_reliability, defaults.input_qos_depth) == ("best_effort", 1)
    assert (defaults.output_qos_reliability, defaults.output_qos_depth) == ("reliable", 1)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("precision", "fp64", "parameter precision = 'fp64' must be one of auto, fp32, fp16, bf16"),
    ("backend", "tensorrt", "parameter backend = 'tensorrt' must be one of auto, eager, compile, cudagraphs, "
                 "onnxruntime"),
    ("input_transport", "theora", "parameter input_transport = 'theora' must be one of raw, compressed"),
    ("input_rectified", "yes", "parameter input_rectified = 'yes' must be one of auto, true, false"),
    ("output_resolution", "half", "parameter output_resolution = 'half' must be one of input, network"),
    ("point_stride", 0, "parameter point_stride = 0 is outside [1, 64]"),
    ("point_stride", 65, "parameter point_stride = 65 is outside [1, 64]"),
    ("point_stride", 2.0, "parameter point_stride = 2.0 must be of type int"),
    ("point_stride", True, "parameter point_stride = True must be of type int"),
    ("min_depth", -1.0, "parameter min_depth = -1.0 is outside [0, 1000]"),
    ("max_depth", float("nan"), "parameter max_depth = nan is outside [0, 1000]"),
    ("fx", 500, "parameter fx = 500 must be of type float"),
    ("mask_sky", 1, "parameter mask_sky = 1 must be of type bool"),
    ("model_path", None, "parameter model_path = None must be of type str"),
    ("input_qos_depth", 0, "parameter input_qos_depth = 0 is outside [1, 100]"),
    ("cameras", "front", "parameter cameras = 'front' must be of type str_list"),
    ("cameras", [1, 2], "parameter cameras = [1, 2] must be of type str_list"),
    ("cameras", ["front", "2nd"], "parameter cameras: camera name '2nd' must start with a letter and hold only "
                                  "letters, digits and underscores"),
    ("cameras", ["front/left"], "parameter cameras: camera name 'front/left' must start with a letter and hold "
                                "only letters, digits and underscores"),
    ("cameras", ["a", "b", "a"], "parameter cameras = ['a', 'b', 'a'] names a camera twice"),
    ("cameras", [f"c{i}" for i in range(17)], "parameter cameras lists 17 cameras; at most 16 are supported"),
    ("output_qos_reliability", "lossy", "parameter output_qos_reliability = 'lossy' must be one of reliable, "
                                        "best_effort"),
    ("point_fields", "xyzi", "parameter point_fields = 'xyzi' must be one of xyzrgb, xyzrgbl, xyzrgblc"),
    ("points_drop_labels", [10, 19], "parameter points_drop_labels = [10, 19]: 19 is outside [0, 18]"),
    ("points_drop_labels", [-1], "parameter points_drop_labels = [-1]: -1 is outside [0, 18]"),
    ("points_drop_labels", [1.0], "parameter points_drop_labels = [1.0] must be a list of integers"),
    ("points_drop_labels", [True], "parameter points_drop_labels = [True] must be a list of integers"),
    ("points_drop_labels", "10", "parameter points_drop_labels = '10' must be a list of integers"),
])
def test_invalid_values_are_rejected_naming_the_parameter(name: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_value(name, value)
    assert str(info.value) == message


def test_unknown_parameter_is_rejected() -> None:
    with pytest.raises(ConfigError, match="parameter frame_rate is not a parameter of the depth node"):
        validate_value("frame_rate", 30)


def test_valid_values_pass_unchanged() -> None:
    assert validate_value("point_stride", 64) == 64
    assert validate_value("cx", -12.5) == -12.5
    assert validate_value("device", "cuda:1") == "cuda:1"
    assert validate_value("mask_sky", True) is True
    assert validate_value("cameras", ["front", "left_2", "Right"]) == ("front", "left_2", "Right")
    assert validate_value("cameras", []) == ()


def test_static_parameters_may_change_before_anything_is_loaded() -> None:
    current = settings_from_values({"model_path": "a.pt"})
    changed = apply_changes(current, {"model_path": "b.pt", "cameras": ["front", "left"]}, allow_static=True)
    assert (changed.model_path, changed.cameras) == ("b.pt", ("front", "left"))
    assert apply_changes(current, {"cameras": []}) == current  # a list equal to the current tuple is no change
    with pytest.raises(ConfigError, match="parameter cameras is static"):
        apply_changes(current, {"cameras": ["front"]})


def test_settings_cross_checks() -> None:
    settings = settings_from_values({"min_depth": 2.0, "max_depth": 50.0, "fx": 700.0, "fy": 710.0})
    assert settings.depth_range == (2.0, 50.0)
    assert settings.has_fallback_intrinsics
    assert NodeSettings().depth_range == (None, None)
    assert not NodeSettings().has_fallback_intrinsics
    with pytest.raises(ConfigError, match=r"min_depth = 50.0 must be smaller than max_depth = 50.0"):
        settings_from_values({"min_depth": 50.0, "max_depth": 50.0})
    assert not settings_from_values({"fx": 700.0}).has_fallback_intrinsics  # fy still unset: no fallback yet


def test_dynamic_changes_apply_and_static_changes_are_rejected_with_a_reason() -> None:
    current = settings_from_values({"model_path": "a.pt"})
    changed = apply_changes(current, {"point_stride": 4, "mask_sky": True, "output_resolution": "network"})
    assert (changed.point_stride, changed.mask_sky, changed.output_resolution) == (4, True, "network")
    assert changed.model_path == "a.pt"
    for name, value in (("model_path", "b.pt"), ("device", "cpu"), ("precision", "fp16"),
                        ("input_transport", "compressed"), ("input_qos_depth", 5)):
        with pytest.raises(ConfigError) as info:
            apply_changes(current, {name: value})
        assert str(info.value) == f"parameter {name} is static (read at start-up): restart the node to change it"
    assert apply_changes(current, {"model_path": "a.pt"}) == current  # same value: not a change
    with pytest.raises(ConfigError, match="min_depth = 90.0 must be smaller than max_depth = 80.0"):
        apply_changes(settings_from_values({"max_depth": 80.0}), {"min_depth": 90.0})


def test_descriptors_carry_type_range_choices_and_dynamic_flag() -> None:
    stride = make_descriptor(SPECS["point_stride"])
    assert stride.type == ParameterType.PARAMETER_INTEGER
    assert (stride.integer_range[0].from_value, stride.integer_range[0].to_value, stride.integer_range[0].step) == (
        1, 64, 1)
    assert "dynamic" in stride.description
    depth = make_descriptor(SPECS["max_depth"])
    assert depth.type == ParameterType.PARAMETER_DOUBLE
    assert (depth.floating_point_range[0].from_value, depth.floating_point_range[0].to_value) == (0.0, 1000.0)
    precision = make_descriptor(SPECS["precision"])
    assert precision.type == ParameterType.PARAMETER_STRING
    assert precision.additional_constraints == "one of: auto, fp32, fp16, bf16"
    assert "static" in precision.description
    assert make_descriptor(SPECS["mask_sky"]).type == ParameterType.PARAMETER_BOOL
    cameras = make_descriptor(SPECS["cameras"])
    assert cameras.type == ParameterType.PARAMETER_STRING_ARRAY and "static" in cameras.description
    declared = declaration_list()
    assert [name for name, _, _ in declared] == list(PARAMETER_NAMES)
    assert all(descriptor.name == name for name, _, descriptor in declared)


def test_points_drop_labels_accepts_any_integer_list_and_unset() -> None:
    assert validate_value("points_drop_labels", [10, 0, 10]) == (0, 10)
    assert validate_value("points_drop_labels", array.array("q", [18])) == (18,)  # rclpy's integer arrays
    assert validate_value("points_drop_labels", []) == ()
    assert validate_value("points_drop_labels", None) == ()  # a YAML [] leaves the ROS parameter unset
    changed = apply_changes(NodeSettings(), {"points_drop_labels": [10], "point_fields": "xyzrgbl"})
    assert (changed.points_drop_labels, changed.point_fields) == ((10,), "xyzrgbl")


def test_points_drop_labels_declares_and_changes_in_rclpy() -> None:
    """An empty integer list has no ROS 2 type: the descriptor's dynamic typing lets [] be declared and set."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    descriptor = make_descriptor(SPECS["points_drop_labels"])
    assert descriptor.type == ParameterType.PARAMETER_INTEGER_ARRAY and descriptor.dynamic_typing
    context = rclpy.Context()
    rclpy.init(context=context)
    try:
        node = Node("params_probe", context=context)
        node.declare_parameters("", [d for d in declaration_list() if d[0] in ("points_drop_labels",
                                                                               "point_fields")])
        assert validate_value("points_drop_labels", node.get_parameter("points_drop_labels").value) == ()
        for value in ([10, 0], []):
            result = node.set_parameters([Parameter("points_drop_labels", value=value)])[0]
            assert result.successful
            assert validate_value("points_drop_labels", node.get_parameter("points_drop_labels").value) == \
                tuple(sorted(value))
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_a_depth_bound_below_the_models_other_bound_is_refused() -> None:
    """max_depth alone under the model's min_depth (or min_depth alone over its max_depth) passes the parameter
    checks but leaves no range: the node refuses it instead of failing every frame."""
    from types import SimpleNamespace

    from semantic_depth_ros.ros.params import check_model_settings

    estimator = SimpleNamespace(config=SimpleNamespace(min_depth=1.0, max_depth=80.0), source="m.pt",
                                available_outputs=frozenset({"image"}))
    for values in ({"max_depth": 0.5}, {"min_depth": 90.0}, {"max_depth": 1.0}):
        settings = settings_from_values(values)  # each accepted on its own
        with pytest.raises(ConfigError, match=r"leave no depth range with model file m\.pt") as info:
            check_model_settings(settings, estimator)
        assert "\n" not in str(info.value)
    check_model_settings(settings_from_values({"max_depth": 2.0}), estimator)  # [1, 2] m: fine
    check_model_settings(settings_from_values({"min_depth": 0.5, "max_depth": 0.8}), estimator)


@pytest.mark.parametrize(("values", "message"), [
    ({"scale_from_road": True}, "parameter camera_height is not set: it must be > 0 metres when scale_from_road is on"),
    ({"scale_from_road": True, "camera_height": 1.5, "road_min_inlier_ratio": 0.0},
     "parameter road_min_inlier_ratio = 0.0 must be in (0, 1]"),
    ({"scale_from_road": "on"}, "parameter scale_from_road = 'on' must be of type bool"),
])
def test_scale_from_road_needs_a_camera_height_and_valid_thresholds(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_values(values)
    assert str(info.value) == message


def test_scale_from_road_settings_map_onto_the_core_settings() -> None:
    settings = settings_from_values({"scale_from_road": True, "camera_height": 1.65, "camera_pitch": 0.05,
                                     "scale_window": 5, "road_labels": [1, 0]})
    road = settings.road_scale()
    assert (road.camera_height, road.camera_pitch, road.scale_window, road.road_labels) == (1.65, 0.05, 5, (0, 1))
    assert settings_from_values({"camera_height": 0.0}).road_scale() is None  # off: nothing else is checked


def test_each_camera_may_have_its_own_height_and_pitch_for_the_road_scale() -> None:
    settings = settings_from_values({"scale_from_road": True, "cameras": ["front", "left", "rear"],
                                     "camera_height": 1.5, "camera_heights": [1.6, 1.4, 1.9],
                                     "camera_pitches": [0.05, 0.0, -0.02]})
    assert [(settings.road_scale(c).camera_height, settings.road_scale(c).camera_pitch)
            for c in settings.cameras] == [(1.6, 0.05), (1.4, 0.0), (1.9, -0.02)]
    shared = settings_from_values({"scale_from_road": True, "cameras": ["front", "left"], "camera_height": 1.5})
    assert {shared.road_scale(c).camera_height for c in shared.cameras} == {1.5}  # empty lists: the shared value


@pytest.mark.parametrize(("values", "message"), [
    ({"cameras": ["front", "left"], "camera_heights": [1.6]},
     "parameter camera_heights has 1 values for 2 camera(s) ['front', 'left']: give one per camera of `cameras`, "
     "in its order (or none)"),
    ({"camera_pitches": [0.1, 0.2]},
     "parameter camera_pitches has 2 values for 1 camera(s): give one per camera of `cameras`, in its order (or none)"),
    ({"scale_from_road": True, "cameras": ["front", "left"], "camera_heights": [1.6, 0.0]},
     "parameter camera_height is not set: it must be > 0 metres when scale_from_road is on (camera left)"),
    ({"camera_heights": [-1.0]}, "parameter camera_heights = [-1.0]: -1.0 is outside [0, 100]"),
])
def test_per_camera_heights_and_pitches_are_checked_in_one_line(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_values(values)
    assert str(info.value) == message


# ------------------------------------------------------------------------------------------- temporal filter
@pytest.mark.parametrize(("value", "stored", "mode"), [
    ("off", "off", "off"), (False, "off", "off"), ("on", "on", "auto"), (True, "on", "auto"), ("auto", "auto", "auto"),
    ("static", "static", "static"),
])
def test_temporal_filter_takes_on_off_as_yaml_booleans_and_on_means_auto(value, stored, mode) -> None:
    settings = settings_from_values({"temporal_filter": value})
    assert settings.temporal_filter == stored and settings.temporal.temporal_filter == mode
    assert settings.temporal.enabled == (mode != "off")


@pytest.mark.parametrize(("values", "message"), [
    ({"temporal_filter": "maybe"}, "parameter temporal_filter = 'maybe' must be one of off, on, auto, static"),
    ({"temporal_filter": 1}, "parameter temporal_filter = 1 must be of type str"),
    ({"temporal_disagreement": 0.0}, "parameter temporal_disagreement = 0.0 must be in (0, 1]"),
    ({"temporal_memory": 0.5}, "parameter temporal_memory = 0.5 is outside [1, 100]"),
    ({"temporal_scale_smoothing": 1.0}, "parameter temporal_scale_smoothing = 1.0 must be in [0, 1)"),
    ({"temporal_moving_labels": [13, 19]}, "parameter temporal_moving_labels = [13, 19]: 19 is outside [0, 18]"),
    ({"odom_topic": "/odom"}, "parameter camera_extrinsic is not set: with odom_topic = '/odom' give the camera "
                              "optical frame's pose in the odometry child frame, x y z qx qy qz qw"),
    ({"odom_topic": "/odom", "camera_extrinsic": [0.0, 1.0]},
     "parameter camera_extrinsic has 2 numbers: give 7 (x y z qx qy qz qw)"),
    ({"odom_topic": "/odom", "camera_extrinsic": [0.0] * 7},
     "parameter camera_extrinsic quaternion (qx, qy, qz, qw) = [0.0, 0.0, 0.0, 0.0] is not a unit quaternion"),
    ({"odom_topic": "/odom", "camera_extrinsic": [0.0, 0.0, float("nan"), 0.0, 0.0, 0.0, 1.0]},
     "parameter camera_extrinsic = [0.0, 0.0, nan, 0.0, 0.0, 0.0, 1.0]: nan is outside"),
    ({"odom_topic": "/odom", "cameras": ["front", "left"], "camera_extrinsic": [0.0] * 6 + [1.0] + [0.0] * 7},
     "parameter camera_extrinsic quaternion (qx, qy, qz, qw) = [0.0, 0.0, 0.0, 0.0] is not a unit quaternion "
     "(norm 0) (camera left)"),
    ({"odom_topic": "/odom", "cameras": ["front", "left"], "camera_extrinsic": [0.0] * 6 + [1.0] + [0.0] * 3},
     "parameter camera_extrinsic has 10 numbers: give 7 (x y z qx qy qz qw) for every camera or 14 (7 per camera "
     "of ['front', 'left'])"),
])
def test_temporal_parameters_are_checked_in_one_line_naming_the_value(values, message) -> None:
    with pytest.raises(ConfigError) as info:
        settings_from_values(values)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_camera_extrinsic_is_one_mounting_for_every_camera_or_one_per_camera() -> None:
    from semantic_depth_ros.data.tf_chain import make_transform

    lifted = [0.0, 0.0, 1.5, -0.5, 0.5, -0.5, 0.5]  # optical frame (z forward) 1.5 m above base_link (x forward)
    one = settings_from_values({"odom_topic": "/odom", "camera_extrinsic": [0, 0, 1, 0, 0, 0, 1]})  # integers too
    assert one.camera_extrinsic == (0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose(one.mountings[""], make_transform((0, 0, 1), (0, 0, 0, 1)))
    two = settings_from_values({"odom_topic": "/odom", "cameras": ["front", "rear"],
                                "camera_extrinsic": lifted + [0.0, 0.0, 1.5, 0.5, 0.5, -0.5, -0.5]})
    np.testing.assert_allclose(two.mountings["front"] @ [0, 0, 1, 1], [1.0, 0.0, 1.5, 1.0], atol=1e-12)  # looks +x
    np.testing.assert_allclose(two.mountings["rear"] @ [0, 0, 1, 1], [-1.0, 0.0, 1.5, 1.0], atol=1e-12)  # looks -x
    shared = settings_from_values({"odom_topic": "/odom", "cameras": ["front", "rear"], "camera_extrinsic": lifted})
    np.testing.assert_allclose(shared.mountings["rear"], two.mountings["front"])
    assert settings_from_values({"camera_extrinsic": lifted}).mountings == {}  # no odometry: unused


def test_temporal_filter_and_camera_extrinsic_declare_and_change_in_rclpy() -> None:
    """YAML's on/off reach the node as booleans and an empty float list has no type: both are declared with
    dynamic typing, and every form is read back as the settings expect."""
    import rclpy
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    assert make_descriptor(SPECS["temporal_filter"]).dynamic_typing
    extrinsic = make_descriptor(SPECS["camera_extrinsic"])
    assert extrinsic.type == ParameterType.PARAMETER_DOUBLE_ARRAY and extrinsic.dynamic_typing
    context = rclpy.Context()
    rclpy.init(context=context, args=["probe", "--ros-args", "-p", "temporal_filter:=on"])
    try:
        node = Node("params_probe", context=context)
        node.declare_parameters("", [d for d in declaration_list() if d[0] in ("temporal_filter", "camera_extrinsic")])
        assert node.get_parameter("temporal_filter").value is True  # what `-p temporal_filter:=on` gives
        assert validate_value("temporal_filter", node.get_parameter("temporal_filter").value) == "on"
        assert validate_value("camera_extrinsic", node.get_parameter("camera_extrinsic").value) == ()
        for name, value in (("temporal_filter", "static"), ("temporal_filter", False),
                            ("camera_extrinsic", [0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 1.0])):
            assert node.set_parameters([Parameter(name, value=value)])[0].successful
        assert validate_value("temporal_filter", node.get_parameter("temporal_filter").value) == "off"
        assert validate_value("camera_extrinsic", node.get_parameter("camera_extrinsic").value)[2] == 1.5
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), (True, "true"), (False, "false"),
                                                 ("true", "true"), ("false", "false")])
def test_input_rectified_takes_yaml_booleans_as_its_words(value: object, expected: str) -> None:
    assert validate_value("input_rectified", value) == expected
    assert make_descriptor(SPECS["input_rectified"]).description.endswith("(static: read at start-up)")

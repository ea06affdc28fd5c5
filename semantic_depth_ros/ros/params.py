"""The depth node's parameters: one table of specs, validation, and their ROS 2 declaration with descriptors.

Each parameter is either *dynamic* (takes effect on the next frame when changed at run time) or *static* (read at
start-up; a run-time change is rejected with a reason). ``config/depth_node.yaml`` lists exactly these names.
Depth range parameters use 0.0 for "the checkpoint's own range"; focal lengths use 0.0 for "no fallback".
ROS 2 cannot type an empty list (rclpy infers ``[]`` as a byte array, and a YAML ``[]`` leaves the parameter unset).
``cameras`` (a string list, static) is therefore declared by its type and an unset value reads as the empty default
(``unset_defaults``); ``points_drop_labels`` (an integer list, dynamic) is declared with ``dynamic_typing`` and an
unset value or any list of integers is accepted, then validated here.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.parameter import Parameter

from ..errors import ConfigError
from ..geometry.intrinsics import INPUT_RECTIFIED_CHOICES
from ..geometry.pointcloud import DEFAULT_POINT_FIELDS, POINT_LAYOUTS, layout_needs
from ..labels import NUM_CLASSES

from ..devices import FIXED_PRECISIONS
from ..inference.estimator import ESTIMATOR_BACKENDS, DepthEstimator, depth_range_of
from ..pipeline import CloudLayout
from ..roadscale import SCALE_FROM_ROAD_MODES, RoadScaleSettings, road_scale_settings
from ..temporal import TemporalSettings
from .param_spec import ParamSpec, ParamValue, check_value, declared_default, make_descriptor, type_error
from .temporal_params import DEFAULT_ODOM_WAIT_S, TEMPORAL_PARAMETERS, camera_mountings

MAX_DEPTH_LIMIT_M = 1000.0
MAX_FOCAL_PX = 1.0e6
MAX_POINT_STRIDE = 64
MAX_QOS_DEPTH = 100
MAX_CAMERAS = 16
MAX_CAMERA_HEIGHT_M = 100.0
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # one ROS name token: becomes the camera's topic namespace


PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("model_path", "", "model file: a checkpoint (.pt) written by `semantic-depth train` or "
              "`init-checkpoint`, or an ONNX model (.onnx) written by `semantic-depth export` (runs on onnxruntime)",
              dynamic=False),
    ParamSpec("device", "auto", "device: auto (CUDA when available), cpu, cuda or cuda:N; for an .onnx model the "
              "onnxruntime execution provider's (auto: TensorRT, CUDA, CPU, the first installed)", dynamic=False),
    ParamSpec("precision", "auto", "network precision: auto (fp16 on CUDA, bf16 on CPUs with native bf16, else "
              "fp32; .onnx: fp16 on TensorRT, else the file's), fp32, fp16 (CUDA only; .onnx: TensorRT or an fp16 "
              "file) or bf16 (not for .onnx)", dynamic=False, choices=("auto", *FIXED_PRECISIONS)),
    ParamSpec("backend", "auto", "network execution: auto (.onnx: onnxruntime; .pt: cudagraphs on CUDA, eager on "
              "the CPU), eager, compile (torch.compile; slow first frames), cudagraphs (CUDA only) or onnxruntime "
              "(.onnx only)", dynamic=False, choices=ESTIMATOR_BACKENDS),
    ParamSpec("cameras", (), "camera names sharing this node's network, e.g. [front, left, right]: camera <name> "
              "is read from <name>/image and <name>/camera_info and served under <name>/; empty: one camera on "
              "image and camera_info, outputs at the node's namespace", dynamic=False, item_type="str"),
    ParamSpec("trt_cache_dir", "", "folder where onnxruntime's TensorRT provider keeps the engines it builds from an "
              ".onnx model, so they are built once (empty: $XDG_CACHE_HOME/semantic_depth_ros/trt, by default "
              "~/.cache/semantic_depth_ros/trt); "
              "unused by other providers and by .pt models", dynamic=False),
    ParamSpec("input_transport", "raw", "raw: subscribe sensor_msgs/Image on `image`; compressed: "
              "sensor_msgs/CompressedImage (jpeg/png) on `image/compressed`", dynamic=False,
              choices=("raw", "compressed")),
    ParamSpec("input_rectified", "auto", "true: the image is already rectified (image_proc's image_rect): its "
              "camera is camera_info's P, D is ignored, nothing is undistorted; false: a raw image, camera K and D "
              "(undistorted before the network); auto: true when the image topic's resolved name ends in "
              "image_rect or image_rect_color", dynamic=False, choices=INPUT_RECTIFIED_CHOICES, accepts_bool=True),
    ParamSpec("output_resolution", "input", "input: outputs at the camera image size; network: at the resized "
              "network input size (cheaper)", dynamic=True, choices=("input", "network")),
    ParamSpec("min_depth", 0.0, "metres; depth below it is published as NaN (0.0: the checkpoint's min_depth)",
              dynamic=True, value_range=(0.0, MAX_DEPTH_LIMIT_M)),
    ParamSpec("max_depth", 0.0, "metres; depth above it is published as NaN (0.0: the checkpoint's max_depth)",
              dynamic=True, value_range=(0.0, MAX_DEPTH_LIMIT_M)),
    ParamSpec("mask_sky", False, "publish NaN depth where the semantic head says sky (computes the semantic head)",
              dynamic=True),
    ParamSpec("point_stride", 1, "keep every N-th depth pixel in rows and columns of `points`", dynamic=True,
              value_range=(1, MAX_POINT_STRIDE)),
    ParamSpec("point_fields", DEFAULT_POINT_FIELDS, "layout of `points`: xyzrgb (x y z rgb float32, 16 bytes), "
              "xyzrgbl (+ label uint32: Cityscapes train id, PCL PointXYZRGBL fields, 20 bytes) or xyzrgblc (+ "
              "confidence float32, 24 bytes); labels compute the semantic head", dynamic=True,
              choices=tuple(POINT_LAYOUTS)),
    ParamSpec("points_drop_labels", (), "Cityscapes train ids (0..18) whose points are NaN in `points`, e.g. "
              "[10] drops sky, [0, 1] road and sidewalk (computes the semantic head when not empty)", dynamic=True,
              value_range=(0, NUM_CLASSES - 1), item_type="int"),
    ParamSpec("fx", 0.0, "fallback focal length x in pixels at the camera image size, used while no camera_info "
              "arrived (0.0: no fallback)", dynamic=True, value_range=(0.0, MAX_FOCAL_PX)),
    ParamSpec("fy", 0.0, "fallback focal length y in pixels (0.0: no fallback)", dynamic=True,
              value_range=(0.0, MAX_FOCAL_PX)),
    ParamSpec("cx", 0.0, "fallback principal point x in pixels", dynamic=True,
              value_range=(-MAX_FOCAL_PX, MAX_FOCAL_PX)),
    ParamSpec("cy", 0.0, "fallback principal point y in pixels", dynamic=True,
              value_range=(-MAX_FOCAL_PX, MAX_FOCAL_PX)),
    ParamSpec("scale_from_road", False, "on (true): correct the depth scale every frame from the road plane the "
              "semantic head finds and camera_height (computes the semantic head)", dynamic=False),
    ParamSpec("camera_height", 0.0, "metres from the camera's optical centre down to the road; must be > 0 with "
              "scale_from_road on (0.0: not set)", dynamic=False, value_range=(0.0, MAX_CAMERA_HEIGHT_M)),
    ParamSpec("camera_pitch", 0.0, "nose-down pitch of the camera in radians, the expected road normal's tilt "
              "(0.0: level, the road is expected near the image's vertical axis)", dynamic=False,
              value_range=(-1.5, 1.5)),
    ParamSpec("camera_heights", (), "metres, one per camera of `cameras` in its order: each camera's own "
              "camera_height (empty: camera_height for every camera)", dynamic=False,
              value_range=(0.0, MAX_CAMERA_HEIGHT_M), item_type="float"),
    ParamSpec("camera_pitches", (), "radians, one per camera of `cameras` in its order: each camera's own "
              "camera_pitch (empty: camera_pitch for every camera)", dynamic=False, value_range=(-1.5, 1.5),
              item_type="float"),
    ParamSpec("scale_window", RoadScaleSettings.scale_window, "accepted frames whose median scale is applied "
              "(the last one is held through frames without road)", dynamic=False, value_range=(1, 1000)),
    ParamSpec("road_labels", RoadScaleSettings.road_labels, "Cityscapes train ids counted as road for the scale "
              "(0 road; add 1 for sidewalk)", dynamic=False, value_range=(0, NUM_CLASSES - 1), item_type="int"),
    ParamSpec("road_min_fraction", RoadScaleSettings.road_min_fraction, "least fraction of the image that must be "
              "road with valid depth for a frame's scale to be accepted", dynamic=False, value_range=(0.0, 1.0)),
    ParamSpec("road_min_inlier_ratio", RoadScaleSettings.road_min_inlier_ratio, "least fraction of road points "
              "on the fitted plane", dynamic=False, value_range=(0.0, 1.0)),
    ParamSpec("road_inlier_tolerance", RoadScaleSettings.road_inlier_tolerance, "inlier distance to the plane, "
              "as a fraction of the fitted camera height", dynamic=False, value_range=(0.0, 1.0)),
    ParamSpec("road_max_tilt", RoadScaleSettings.road_max_tilt, "largest angle in radians between the fitted "
              "road normal and the expected up", dynamic=False, value_range=(0.0, 1.5708)),
    *TEMPORAL_PARAMETERS,
    ParamSpec("input_qos_reliability", "best_effort", "QoS reliability of the image and camera_info subscriptions "
              "(best_effort also receives from reliable publishers)", dynamic=False,
              choices=("best_effort", "reliable")),
    ParamSpec("input_qos_depth", 1, "QoS history depth of the input subscriptions", dynamic=False,
              value_range=(1, MAX_QOS_DEPTH)),
    ParamSpec("output_qos_reliability", "reliable", "QoS reliability of the published outputs", dynamic=False,
              choices=("reliable", "best_effort")),
    ParamSpec("output_qos_depth", 1, "QoS history depth of the published outputs", dynamic=False,
              value_range=(1, MAX_QOS_DEPTH)),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}
PARAMETER_NAMES: tuple[str, ...] = tuple(SPECS)
DYNAMIC_PARAMETERS: frozenset[str] = frozenset(s.name for s in PARAMETERS if s.dynamic)
STATIC_PARAMETERS: frozenset[str] = frozenset(s.name for s in PARAMETERS if not s.dynamic)


@dataclass(frozen=True)
class NodeSettings:
    """Validated values of every parameter (field names = parameter names)."""

    model_path: str = ""
    device: str = "auto"
    precision: str = "auto"
    backend: str = "auto"
    cameras: tuple[str, ...] = ()
    trt_cache_dir: str = ""
    input_transport: str = "raw"
    input_rectified: str = "auto"
    output_resolution: str = "input"
    min_depth: float = 0.0
    max_depth: float = 0.0
    mask_sky: bool = False
    point_stride: int = 1
    point_fields: str = DEFAULT_POINT_FIELDS
    points_drop_labels: tuple[int, ...] = ()
    fx: float = 0.0
    fy: float = 0.0
    cx: float = 0.0
    cy: float = 0.0
    scale_from_road: bool = False  # a bool, so that `-p scale_from_road:=on` (YAML's on/off) works
    camera_height: float = 0.0
    camera_pitch: float = 0.0
    camera_heights: tuple[float, ...] = ()
    camera_pitches: tuple[float, ...] = ()
    scale_window: int = RoadScaleSettings.scale_window
    road_labels: tuple[int, ...] = RoadScaleSettings.road_labels
    road_min_fraction: float = RoadScaleSettings.road_min_fraction
    road_min_inlier_ratio: float = RoadScaleSettings.road_min_inlier_ratio
    road_inlier_tolerance: float = RoadScaleSettings.road_inlier_tolerance
    road_max_tilt: float = RoadScaleSettings.road_max_tilt
    temporal_filter: str = "off"  # off, on, auto or static (on: auto)
    temporal_disagreement: float = TemporalSettings.temporal_disagreement
    temporal_memory: float = TemporalSettings.temporal_memory
    temporal_max_gap_s: float = TemporalSettings.temporal_max_gap_s
    temporal_scale_smoothing: float = TemporalSettings.temporal_scale_smoothing
    temporal_moving_labels: tuple[int, ...] = TemporalSettings.temporal_moving_labels
    temporal_moving_memory: float = TemporalSettings.temporal_moving_memory
    odom_topic: str = ""
    odom_wait_s: float = DEFAULT_ODOM_WAIT_S
    camera_extrinsic: tuple[float, ...] = ()
    input_qos_reliability: str = "best_effort"
    input_qos_depth: int = 1
    output_qos_reliability: str = "reliable"
    output_qos_depth: int = 1

    @property
    def has_fallback_intrinsics(self) -> bool:
        """True when ``fx`` and ``fy`` are both set (> 0), so points can be published without camera_info.

        One of them alone is not an error (``ros2 param set`` changes one parameter at a time); it is just unused.
        """
        return self.fx > 0.0 and self.fy > 0.0

    @functools.cached_property
    def cloud(self) -> CloudLayout:
        """The layout of ``points`` (``point_fields``, ``points_drop_labels``, ``point_stride``), built once."""
        return CloudLayout(self.point_fields, self.points_drop_labels, self.point_stride)

    def road_scale(self, camera: str = "") -> RoadScaleSettings | None:
        """Camera ``camera``'s scale-from-the-road settings when ``scale_from_road`` is on (its entries of
        ``camera_heights``/``camera_pitches`` when given; "" = the first or only camera). ConfigError naming a
        bad value."""
        values = {name: getattr(self, name) for name in ROAD_SCALE_PARAMETERS}
        index = self.cameras.index(camera) if camera else 0
        for name, per_camera in (("camera_height", self.camera_heights), ("camera_pitch", self.camera_pitches)):
            if per_camera:
                values[name] = per_camera[index]
        values["camera_height"] = values["camera_height"] or None  # 0.0: not set, refused when on
        return road_scale_settings(SCALE_FROM_ROAD_MODES[int(self.scale_from_road)], values)

    @functools.cached_property
    def temporal(self) -> TemporalSettings:
        """The temporal filter's settings (ConfigError naming a bad value)."""
        return TemporalSettings(**{name: getattr(self, name) for name in TemporalSettings.field_names()})

    @property
    def mountings(self) -> dict[str, np.ndarray]:
        """Each camera's ``child_from_camera`` (4x4) from ``camera_extrinsic``; empty without ``odom_topic``."""
        return camera_mountings(self.camera_extrinsic, self.cameras, self.odom_topic)

    @property
    def depth_range(self) -> tuple[float | None, float | None]:
        """``(min_depth, max_depth)`` in metres for the estimator, None where the checkpoint's range applies."""
        return (self.min_depth or None, self.max_depth or None)


ROAD_SCALE_PARAMETERS = ("camera_height", "camera_pitch", "scale_window", "road_labels", "road_min_fraction",
                         "road_min_inlier_ratio", "road_inlier_tolerance", "road_max_tilt")


def _camera_names(spec: ParamSpec, value: Any) -> tuple[str, ...]:
    """A list of unique camera names (ROS name tokens), at most ``MAX_CAMERAS``; ConfigError otherwise."""
    if not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
        raise type_error(spec, value)
    names = tuple(value)
    bad = [name for name in names if not CAMERA_NAME.fullmatch(name)]
    if bad:
        raise ConfigError(f"parameter {spec.name}: camera name {bad[0]!r} must start with a letter and hold only "
                          "letters, digits and underscores")
    if len(set(names)) != len(names):
        raise ConfigError(f"parameter {spec.name} = {list(names)!r} names a camera twice")
    if len(names) > MAX_CAMERAS:
        raise ConfigError(f"parameter {spec.name} lists {len(names)} cameras; at most {MAX_CAMERAS} are supported")
    return names


def validate_value(name: str, value: Any) -> ParamValue:
    """Check one value against its spec (type, choices, range); return it as the parameter's type.

    Raises ConfigError naming the parameter for an unknown name or an invalid value. Types must match exactly,
    as ROS 2 parameters require (write ``fx: 500.0`` in YAML, not ``fx: 500``).
    """
    spec = SPECS.get(name)
    if spec is None:
        raise ConfigError(f"parameter {name} is not a parameter of the depth node "
                          f"(known: {', '.join(PARAMETER_NAMES)})")
    if spec.type_name == "str_list":
        return _camera_names(spec, value)
    return check_value(spec, value)


def validate_settings(settings: NodeSettings) -> NodeSettings:
    """Cross-parameter checks; return ``settings`` unchanged or raise ConfigError naming the parameters."""
    low, high = settings.depth_range
    if low is not None and high is not None and not low < high:
        raise ConfigError(f"parameter min_depth = {settings.min_depth!r} must be smaller than "
                          f"max_depth = {settings.max_depth!r}")
    cameras = settings.cameras or ("",)
    for name in ("camera_heights", "camera_pitches"):
        given = getattr(settings, name)
        if given and len(given) != len(cameras):
            names = f" {list(settings.cameras)}" if settings.cameras else ""
            raise ConfigError(f"parameter {name} has {len(given)} values for {len(cameras)} camera(s){names}: give "
                              "one per camera of `cameras`, in its order (or none)")
    for camera in cameras:  # camera_height and the thresholds when scale_from_road is on
        try:
            settings.road_scale(camera)
        except ConfigError as exc:
            where = f" (camera {camera})" if settings.camera_heights and camera else ""
            raise ConfigError(f"parameter {exc}{where}") from None
    try:
        settings.temporal  # noqa: B018 - the filter's own bounds (e.g. temporal_disagreement > 0)
    except ConfigError as exc:
        raise ConfigError(f"parameter {exc}") from None
    settings.mountings  # noqa: B018 - camera_extrinsic with odom_topic (its errors name the parameter)
    return settings


def settings_from_values(values: Mapping[str, Any]) -> NodeSettings:
    """Validated settings from ``{name: value}`` (missing names take their defaults)."""
    checked = {name: validate_value(name, value) for name, value in values.items()}
    return validate_settings(NodeSettings(**checked))


def apply_changes(current: NodeSettings, changes: Mapping[str, Any], *, allow_static: bool = False) -> NodeSettings:
    """Settings after a run-time change; ConfigError (the rejection reason) for static or invalid values.

    ``allow_static``: static parameters may change too (a managed node before ``configure``, nothing loaded yet).
    """
    for name, value in changes.items():
        spec = SPECS.get(name)
        if spec is None or allow_static:
            continue
        if isinstance(value, list):
            value = tuple(value)
        if not spec.dynamic and value != getattr(current, name):
            raise ConfigError(f"parameter {name} is static (read at start-up): restart the node to change it")
    checked = {name: validate_value(name, value) for name, value in changes.items()}
    return validate_settings(dataclasses.replace(current, **checked))


def declaration_list(specs: Sequence[ParamSpec] = PARAMETERS) -> list[tuple[str, Any, ParameterDescriptor]]:
    """``(name, default, descriptor)`` tuples for ``rclpy.node.Node.declare_parameters("", ...)``."""
    return [(spec.name, declared_default(spec), make_descriptor(spec)) for spec in specs]


def unset_defaults(values: Mapping[str, Parameter]) -> list[Parameter]:
    """Parameters to set after declaration: every string list left unset (no override) gets its empty default."""
    return [Parameter(name, Parameter.Type.STRING_ARRAY, list(SPECS[name].default))
            for name, parameter in values.items()
            if SPECS[name].type_name == "str_list" and parameter.type_ == Parameter.Type.NOT_SET]


def check_model_settings(settings: NodeSettings, estimator: DepthEstimator) -> None:
    """ConfigError (one line naming the parameter and the model file) when ``min_depth``/``max_depth`` leave an
    empty range once 0.0 takes the model's own bound (every frame would fail), or a setting needs a head the model lacks
    (an .onnx exported with fewer heads): ``mask_sky``, or ``points`` in the layout ``point_fields`` dropping
    ``points_drop_labels`` (labels need the semantic head, ``xyzrgblc`` the confidence). Such a setting is refused
    at ``configure`` and at run time instead of failing every frame."""
    try:  # None: the model's own bound, which the other parameter must respect too
        depth_range_of(estimator.config, *settings.depth_range)
    except ConfigError as exc:
        raise ConfigError(f"parameters min_depth = {settings.min_depth!r} and max_depth = {settings.max_depth!r} "
                          f"leave no depth range with model file {estimator.source} ({exc}; 0.0 takes the model's "
                          f"own {estimator.config.min_depth:g} or {estimator.config.max_depth:g} m)") from None
    if "depth" not in estimator.available_outputs:
        return  # no depth: neither sky masking nor points
    if settings.scale_from_road:
        try:
            estimator.require_outputs(("semantic",))
        except ConfigError as exc:
            raise ConfigError(f"parameter scale_from_road = true: {exc}") from None
    if settings.temporal.enabled:
        try:
            estimator.require_outputs(("semantic", "confidence"))
        except ConfigError as exc:
            raise ConfigError(f"parameter temporal_filter = {settings.temporal_filter!r}: {exc}") from None
    if settings.mask_sky:
        estimator.check_mask_sky()
    try:
        estimator.require_outputs(layout_needs(settings.point_fields, settings.points_drop_labels))
    except ConfigError as exc:
        raise ConfigError(f"parameter point_fields = {settings.point_fields!r} with points_drop_labels = "
                          f"{list(settings.points_drop_labels)}: {exc}") from None

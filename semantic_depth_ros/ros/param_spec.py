"""One node parameter's spec and what follows from it alone: its type, the check of a value, its ROS 2 descriptor.

``ros.params`` holds the table of the depth node's parameters and the checks across parameters. Lists: ROS 2
cannot type an empty list (rclpy infers ``[]`` as a byte array, and a YAML ``[]`` leaves the parameter unset), so
integer and float lists are declared with ``dynamic_typing``; an unset value reads as the empty list and any list
of numbers is accepted, then checked here. A switch parameter (``accepts_bool``) also takes YAML's on/off, which
ROS 2 reads as booleans (``-p temporal_filter:=on``), as the strings ``"on"``/``"off"`` (``"true"``/``"false"`` for a
switch whose choices are those words, e.g. ``input_rectified``).
"""

from __future__ import annotations

import array
import math
from dataclasses import dataclass
from typing import Any, Union

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.parameter import Parameter

from ..errors import ConfigError

ParamValue = Union[bool, int, float, str, tuple[str, ...], tuple[int, ...], tuple[float, ...]]


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default (whose Python type is the parameter's type), description, constraints."""

    name: str
    default: ParamValue
    description: str
    dynamic: bool
    choices: tuple[str, ...] = ()
    value_range: tuple[float, float] | None = None  # inclusive, for int and float parameters (and list items)
    item_type: str = ""  # list parameters (tuple default): "str", "int" or "float"
    accepts_bool: bool = False  # a string switch that also takes true/false as "on"/"off" (module docstring)

    @property
    def type_name(self) -> str:
        """'bool', 'int', 'float', 'str', 'str_list', 'int_list' or 'float_list'."""
        return f"{self.item_type}_list" if isinstance(self.default, tuple) else type(self.default).__name__


def type_error(spec: ParamSpec, value: Any) -> ConfigError:
    """The ConfigError for a value of the wrong type."""
    return ConfigError(f"parameter {spec.name} = {value!r} must be of type {spec.type_name}")


def _number_list(spec: ParamSpec, value: Any, integers: bool) -> tuple[Any, ...]:
    """A list parameter's numbers, each inside ``value_range``; None (declared but unset) is the empty list."""
    if value is None:
        return ()
    kinds = (int,) if integers else (int, float)
    if not isinstance(value, (list, tuple, array.array)) or \
            any(isinstance(item, bool) or not isinstance(item, kinds) for item in value):
        kind = "integers" if integers else "numbers"
        raise ConfigError(f"parameter {spec.name} = {value!r} must be a list of {kind}")
    low, high = spec.value_range if spec.value_range is not None else (-math.inf, math.inf)
    for item in value:
        if not (math.isfinite(item) and low <= item <= high):
            raise ConfigError(f"parameter {spec.name} = {list(value)!r}: {item} is outside [{low:g}, {high:g}]")
    return tuple(value)


def check_value(spec: ParamSpec, value: Any) -> ParamValue:
    """``value`` checked against ``spec`` (type, choices, range) and returned as the parameter's type: an integer
    list as sorted unique ids, a float list as floats in order. ConfigError naming the parameter and the value.
    String lists are the caller's (their rules are the parameter's own)."""
    if spec.type_name == "int_list":
        return tuple(sorted(set(_number_list(spec, value, integers=True))))
    if spec.type_name == "float_list":
        return tuple(float(item) for item in _number_list(spec, value, integers=False))
    if spec.accepts_bool and isinstance(value, bool):  # YAML's on/off or true/false, as the spec's words
        value = ("on" if value else "off") if "on" in spec.choices else ("true" if value else "false")
    if type(value) is not type(spec.default):
        raise type_error(spec, value)
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"parameter {spec.name} = {value!r} must be one of {', '.join(spec.choices)}")
    if spec.value_range is not None:
        low, high = spec.value_range
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"parameter {spec.name} = {value!r} is outside [{low:g}, {high:g}]")
    return value


_ROS_TYPES = {"bool": ParameterType.PARAMETER_BOOL, "int": ParameterType.PARAMETER_INTEGER,
              "float": ParameterType.PARAMETER_DOUBLE, "str": ParameterType.PARAMETER_STRING,
              "str_list": ParameterType.PARAMETER_STRING_ARRAY, "int_list": ParameterType.PARAMETER_INTEGER_ARRAY,
              "float_list": ParameterType.PARAMETER_DOUBLE_ARRAY}


def make_descriptor(spec: ParamSpec) -> ParameterDescriptor:
    """ROS 2 descriptor of ``spec``: type, description, allowed values and numeric range."""
    kind = "dynamic: takes effect on the next frame" if spec.dynamic else "static: read at start-up"
    descriptor = ParameterDescriptor(name=spec.name, type=_ROS_TYPES[spec.type_name],
                                     description=f"{spec.description} ({kind})")
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    if spec.accepts_bool:
        descriptor.dynamic_typing = True  # YAML's on/off arrive as booleans (module docstring)
    if spec.type_name in ("int_list", "float_list"):
        descriptor.dynamic_typing = True  # an empty list has no type in ROS 2 (module docstring)
        if spec.value_range is not None:
            low, high = spec.value_range
            descriptor.additional_constraints = (f"integers in {int(low)}..{int(high)}" if spec.item_type == "int"
                                                 else f"numbers in [{low:g}, {high:g}]")
    elif spec.value_range is not None:
        low, high = spec.value_range
        if spec.type_name == "int":
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
        else:
            descriptor.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high),
                                                                  step=0.0)]
    return descriptor


def declared_default(spec: ParamSpec) -> Any:
    """What ``declare_parameters`` gets: a string list's type (``params.unset_defaults`` sets its value), a list
    for a number list, else the default."""
    if spec.type_name == "str_list":
        return Parameter.Type.STRING_ARRAY
    return list(spec.default) if isinstance(spec.default, tuple) else spec.default

"""The one strict converter from plain YAML data (mappings, lists, scalars) to typed dataclasses.

Used by the model config (``model/config.py``) and the training config (``training/config.py``). Rules, the same
everywhere:

- unknown keys are refused, naming the dotted key (``optimizer.lrr``, ``datasets[0].root``);
- ``int`` fields take integers, and floats only when they are whole numbers (``800.0`` -> 800; ``800.5`` and
  ``32.9`` are refused): YAML writers often emit ``1.0`` for a count, but a fraction is always a mistake;
- ``float`` fields take finite ints and floats; ``bool`` takes only true/false (no 0/1, no "yes");
  ``str`` only strings; booleans are never numbers;
- ``tuple[T, ...]`` and ``list[T]`` take YAML lists, ``tuple[A, B]`` exactly that many values, ``X | None``
  also null, nested dataclasses mappings, ``dict[...]`` any mapping (checked by its user).

Every failure is a one-line :class:`ConfigError` ``"<source>: <dotted key> = <value> is not a valid <type>"``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def build_dataclass(cls: type[T], data: Any, *, source: str, prefix: str = "") -> T:
    """Instantiate dataclass ``cls`` from a mapping (nested dataclasses included), converting every field.

    ``prefix`` is the dotted path of ``data`` inside its file (``"model."``), used in error messages.
    Errors raised by ``cls``'s own ``__post_init__`` pass through unchanged.
    """
    return cls(**convert_fields(cls, data, source=source, prefix=prefix))


def convert_fields(cls: type, data: Any, *, source: str, prefix: str = "") -> dict[str, Any]:
    """The converted values of a (possibly partial) mapping of ``cls``'s fields, without instantiating ``cls``."""
    where = prefix.rstrip(".") or "top level"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [str(key) for key in data if key not in names]
    if unknown:
        raise ConfigError(f"{source}: unknown key '{prefix}{unknown[0]}' (known: {', '.join(names)})")
    return {key: convert_value(value, hints[key], f"{prefix}{key}", source) for key, value in data.items()}


def convert_value(value: Any, hint: Any, key: str, source: str) -> Any:
    """``value`` converted to the annotated type ``hint``; ConfigError naming ``key`` otherwise."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"config_io supports only 'X | None' unions, got {hint}")
        return convert_value(value, inner[0], key, source)
    if dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, source=source, prefix=f"{key}.")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
        return [convert_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value)]
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{source}: {key} must be a list, got {value!r}")
            return tuple(convert_value(v, args[0], f"{key}[{i}]", source) for i, v in enumerate(value))
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{source}: {key} must be a list of {len(args)} values, got {value!r}")
        return tuple(convert_value(v, a, f"{key}[{i}]", source) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
        return dict(value)
    return convert_scalar(value, hint, key, source)


def convert_scalar(value: Any, hint: Any, key: str, source: str) -> Any:
    """int, float, bool, str or Any, by the module's rules."""
    if hint is Any:
        return value
    if hint not in (bool, int, float, str):
        raise TypeError(f"config_io cannot convert to {hint!r} (field {key})")
    converted: Any = _INVALID
    if hint is bool or hint is str:
        converted = value if isinstance(value, hint) else _INVALID
    elif isinstance(value, bool):
        converted = _INVALID  # a boolean is never a number
    elif hint is int:
        if isinstance(value, int):
            converted = value
        elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
            converted = int(value)
    elif isinstance(value, (int, float)) and math.isfinite(value):
        converted = float(value)
    if converted is _INVALID:
        whole = " (not a whole number)" if hint is int and isinstance(value, float) else ""
        raise ConfigError(f"{source}: {key} = {value!r} is not a valid {hint.__name__}{whole}")
    return converted


_INVALID = object()

"""What differs between the ROS 2 distributions we support (Humble, Jazzy, Kilted), in one place.

Everything here is chosen by feature detection, never by a distribution name:

- **Publishing serialized bytes.** The node publishes every output as the message core's CDR bytes
  (``messages.to_cdr``). ``Publisher.publish`` takes ``bytes`` on every distribution we support: Humble's
  (ros2/rclpy, humble branch, ``rclpy/publisher.py``) already dispatches an ``isinstance(msg, bytes)`` argument
  to ``publish_raw`` (``rcl_publish_serialized_message`` on the bytes as they are), as Jazzy's and Kilted's do.
  The node itself calls that rcl function through ``ctypes`` (``ros.serialized_publish``: no pybind11 copy of the
  bytes, GIL released), reaching the rcl publisher through ``Publisher.handle.pointer``, which the humble, jazzy
  and rolling branches all have, with the same ``rcl_serialized_message_t`` layout.
- **Message construction** (the messages a client or test sends as input). Iron and later generate message classes with a ``check_fields`` argument; with field
  checks on, an ``array.array('B')`` assigned to a ``uint8[]`` field is kept as is, with them off the setter copies
  it once more. Humble's classes have no such argument (their ``__init__`` asserts that every keyword is a slot)
  and always keep an ``array.array`` as is. :func:`new_message` passes ``check_fields=True`` exactly where the
  generated class has the slot, so both keep a zero-extra-copy ``data`` assignment.
- **Parameter callbacks.** Iron and later run a post-set callback once parameters are stored
  (``add_post_set_parameters_callback``); Humble has only the on-set (validating) callback.
  :func:`add_parameter_callbacks` registers both where they exist and, on Humble, calls the post-set one from the
  on-set callback once validation succeeded (Humble stores the values right after; nothing later can refuse them).
- **The Fast DDS profile.** Fast DDS 2.x (Humble, Jazzy) reads ``FASTRTPS_DEFAULT_PROFILES_FILE`` and names the
  writer's heartbeat ``heartbeatPeriod``; Fast DDS 3.x (Kilted) reads ``FASTDDS_DEFAULT_PROFILES_FILE`` and names it
  ``heartbeat_period``, and rejects the whole 2.x file. Kilted's rmw_fastrtps still loads a file named by the old
  variable (with a deprecation warning), so the two cannot simply both be set. :func:`dds_profile_environment`
  finds the installed Fast DDS library and names the matching file (``config/fastdds.xml`` or
  ``config/fastdds3.xml``) in the matching variable.
- **The publication mode.** rmw_fastrtps (every distribution) publishes synchronously unless
  ``RMW_FASTRTPS_PUBLICATION_MODE`` says otherwise, and a profile's ``publishMode`` is ignored unless
  ``RMW_FASTRTPS_USE_QOS_FROM_XML=1`` hands all writer QoS to the XML. Synchronous, the DDS write of a 14 MB frame
  copies it into the writer's payload and again into the shared-memory segment inside ``publish``;
  asynchronous, ``publish`` returns after the first copy and Fast DDS's sending thread does the rest.
  :func:`dds_profile_environment` sets ``ASYNCHRONOUS`` with the package's profile unless the user chose a mode
  (or XML QoS) themselves.

This module imports no ROS package, so the launch file can use it before any node exists.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from ..resources import find_data_file

# Fast DDS major version -> (the variable its XML loader reads, the package's profile in that schema)
DDS_PROFILES: dict[int, tuple[str, str]] = {
    2: ("FASTRTPS_DEFAULT_PROFILES_FILE", "fastdds.xml"),
    3: ("FASTDDS_DEFAULT_PROFILES_FILE", "fastdds3.xml"),
}
# a user who set either keeps their own configuration
USER_DDS_PROFILE_ENVS = tuple(variable for variable, _ in DDS_PROFILES.values())
PUBLICATION_MODE_ENV = "RMW_FASTRTPS_PUBLICATION_MODE"
PUBLICATION_MODE = "ASYNCHRONOUS"  # publish returns once Fast DDS holds the frame (see the module docstring)
# a user who set either chose the publication mode (XML QoS overrides the variable)
USER_PUBLICATION_MODE_ENVS = (PUBLICATION_MODE_ENV, "RMW_FASTRTPS_USE_QOS_FROM_XML")
DEFAULT_FAST_DDS_MAJOR = 2  # when no Fast DDS library is found (Humble and Jazzy, most vehicles today)
# shared-library name prefix -> Fast DDS major version (Fast DDS 3 renamed libfastrtps to libfastdds)
_LIBRARIES = (("libfastdds.so.3", 3), ("libfastrtps.so.2", 2))

M = TypeVar("M")


@functools.lru_cache(maxsize=None)
def has_check_fields(message_type: type) -> bool:
    """Whether a generated message class takes ``check_fields`` (Iron and later; not Humble)."""
    return "_check_fields" in getattr(message_type, "__slots__", ())


def new_message(message_type: type[M], **fields: Any) -> M:
    """``message_type(**fields)`` with field checks on where the class has them (see the module docstring)."""
    if has_check_fields(message_type):
        return message_type(check_fields=True, **fields)
    return message_type(**fields)


ParametersCallback = Callable[[list[Any]], Any]


def add_parameter_callbacks(node: Any, on_set: ParametersCallback, after_set: Callable[[list[Any]], None]) -> None:
    """Register ``on_set`` (validates: returns a ``SetParametersResult``) and ``after_set`` (called with the
    parameters once they are accepted) on ``node``, on every distribution (see the module docstring)."""
    if hasattr(node, "add_post_set_parameters_callback"):
        node.add_on_set_parameters_callback(on_set)
        node.add_post_set_parameters_callback(after_set)
        return

    def validate_then_apply(parameters: list[Any]) -> Any:
        result = on_set(parameters)
        if result.successful:
            after_set(parameters)
        return result

    node.add_on_set_parameters_callback(validate_then_apply)


def _library_dirs(environ: Mapping[str, str]) -> list[Path]:
    """Where a ROS install keeps its shared libraries: every ``AMENT_PREFIX_PATH`` prefix (overlay first), the
    ``LD_LIBRARY_PATH`` entries, then this Python's prefix (PyPI's ROS wheels install there)."""
    dirs = [Path(prefix) / "lib" for prefix in environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if prefix]
    dirs += [Path(entry) for entry in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if entry]
    dirs.append(Path(sys.prefix) / "lib")
    return dirs


def fast_dds_major(environ: Mapping[str, str] | None = None, library_dirs: Iterable[Path] | None = None
                   ) -> int | None:
    """The major version of the Fast DDS library found first (3 or 2), or None when there is none."""
    environ = os.environ if environ is None else environ
    for directory in (_library_dirs(environ) if library_dirs is None else library_dirs):
        try:
            names = [entry.name for entry in os.scandir(directory)]
        except OSError:
            continue
        for prefix, major in _LIBRARIES:
            if any(name.startswith(prefix) for name in names):
                return major
    return None


def dds_profile_variable(environ: Mapping[str, str] | None = None) -> str:
    """The profile variable the installed Fast DDS reads."""
    return DDS_PROFILES[fast_dds_major(environ) or DEFAULT_FAST_DDS_MAJOR][0]


def default_dds_profile(environ: Mapping[str, str] | None = None, share_dir: Path | None = None) -> Path | None:
    """The package's profile in the installed Fast DDS's schema (``share_dir``/config, else the installed one)."""
    name = DDS_PROFILES[fast_dds_major(environ) or DEFAULT_FAST_DDS_MAJOR][1]
    if share_dir is not None:
        return share_dir / "config" / name
    return find_data_file("config", name)


def dds_profile_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``{variable: profile}`` for a process that should get the package's profile, plus
    ``RMW_FASTRTPS_PUBLICATION_MODE=ASYNCHRONOUS`` unless ``environ`` chose a mode (:func:`publication_mode`);
    {} when ``environ`` already names a profile (either variable) or the profile is not installed.

    The profile (a shared-memory segment that holds a whole frame of outputs, a 100 ms heartbeat) avoids the ~3 s
    per-frame stalls Fast DDS defaults give a subscriber to every multi-megabyte output.
    """
    if any(name in environ for name in USER_DDS_PROFILE_ENVS):
        return {}
    profile = default_dds_profile(environ)
    if profile is None:
        return {}
    return {dds_profile_variable(environ): str(profile), **publication_mode(environ)}


def publication_mode(environ: Mapping[str, str]) -> dict[str, str]:
    """``{RMW_FASTRTPS_PUBLICATION_MODE: ASYNCHRONOUS}``, or {} when ``environ`` sets the mode or XML QoS."""
    if any(name in environ for name in USER_PUBLICATION_MODE_ENVS):
        return {}
    return {PUBLICATION_MODE_ENV: PUBLICATION_MODE}

"""Publish serialized CDR bytes through rcl, without rclpy's copy of them and without holding the GIL.

rclpy's ``Publisher.publish(bytes)`` (ros2/rclpy ``src/rclpy/publisher.cpp``, identical on the humble, jazzy and
rolling branches) binds ``Publisher::publish_raw(std::string msg)``: pybind11 first copies the whole ``bytes``
into a ``std::string``, then ``rcl_publish_serialized_message`` runs with the GIL held (no
``gil_scoped_release`` there), so a 14 MB frame blocks every other Python thread of the node, the worker's network
included, for the whole of the DDS write. :func:`publish_serialized` calls the same rcl function through
``ctypes`` (which releases the GIL for the call) on an ``rcl_serialized_message_t`` that points into the
``bytes`` object itself: one copy fewer, and the worker runs the next frame while DDS writes this one.

The rcl publisher is reached through rclpy's own handle (``Publisher.handle.pointer``), used inside
``with publisher.handle`` exactly as rclpy's ``publish`` does, so a publisher destroyed meanwhile raises rclpy's
``InvalidHandle`` and one destroyed during the call is freed only after it. Where librcl or the handle's pointer
cannot be found, ``Publisher.publish`` is used instead (same bytes on the wire).
"""

from __future__ import annotations

import ctypes
from typing import Any


class _Allocator(ctypes.Structure):
    """``rcutils_allocator_t`` (unused by a publish: left zero)."""

    _fields_ = [("allocate", ctypes.c_void_p), ("deallocate", ctypes.c_void_p), ("reallocate", ctypes.c_void_p),
                ("zero_allocate", ctypes.c_void_p), ("state", ctypes.c_void_p)]


class _SerializedMessage(ctypes.Structure):
    """``rcl_serialized_message_t`` = ``rcutils_uint8_array_t``: buffer, length, capacity, allocator."""

    _fields_ = [("buffer", ctypes.c_char_p), ("buffer_length", ctypes.c_size_t),
                ("buffer_capacity", ctypes.c_size_t), ("allocator", _Allocator)]


class _ErrorString(ctypes.Structure):
    """``rcutils_error_string_t``."""

    _fields_ = [("str", ctypes.c_char * 1024)]


def _load_rcl() -> tuple[Any, Any, Any] | None:
    """librcl's ``rcl_publish_serialized_message`` and librcutils' error-state functions (the libraries rclpy
    has loaded already), or None where they cannot be found."""
    try:
        rcl = ctypes.CDLL("librcl.so")
        rcutils = ctypes.CDLL("librcutils.so")
        publish = rcl.rcl_publish_serialized_message
        get_error, reset_error = rcutils.rcutils_get_error_string, rcutils.rcutils_reset_error
    except (OSError, AttributeError):
        return None
    publish.argtypes = [ctypes.c_void_p, ctypes.POINTER(_SerializedMessage), ctypes.c_void_p]
    publish.restype = ctypes.c_int32
    get_error.argtypes, get_error.restype = [], _ErrorString
    reset_error.argtypes, reset_error.restype = [], None
    return publish, get_error, reset_error


_RCL = _load_rcl()


def native_publish_available(publisher: Any) -> bool:
    """Whether :func:`publish_serialized` publishes ``publisher``'s bytes through rcl directly (GIL released)."""
    return _RCL is not None and isinstance(getattr(getattr(publisher, "handle", None), "pointer", None), int)


def publish_serialized(publisher: Any, data: bytes) -> None:
    """Publish the serialized message ``data`` (CDR with its encapsulation header) on rclpy ``publisher``.

    Raises rclpy's ``InvalidHandle`` for a destroyed publisher and RuntimeError (rcl's message) when rcl refuses
    the publish, as ``Publisher.publish`` would.
    """
    if not isinstance(data, bytes):
        raise TypeError(f"serialized message must be bytes, got {type(data).__name__}")
    handle = getattr(publisher, "handle", None)
    if _RCL is None or handle is None:  # no librcl, or not an rclpy publisher (a test's stand-in)
        publisher.publish(data)
        return
    publish, get_error, reset_error = _RCL
    with handle:  # rclpy's own guard: the rcl publisher outlives this call
        pointer = getattr(handle, "pointer", None)
        if not isinstance(pointer, int):
            publisher.publish(data)
            return
        # c_char_p points into the bytes object itself (no copy); `data` keeps it alive during the call
        message = _SerializedMessage(data, len(data), len(data), _Allocator())
        ret = publish(pointer, ctypes.byref(message), None)
    if ret != 0:
        text = get_error().str.decode(errors="replace")
        reset_error()
        raise RuntimeError(f"rcl_publish_serialized_message failed ({ret}): {text}")

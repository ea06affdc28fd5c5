"""``--copy-input``: input messages into the output ROS 2 bag, keeping each connection's message type.

ROS 2 input (CDR) is copied byte for byte under the input connection's own definition, hash and QoS. ROS 1 input
is converted to the same type of ROS 2 Jazzy (field by field: ``K`` -> ``k``, the header's ``seq`` dropped) and
serialized to CDR.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data.bag_reader import BagReader
from .bag_writer import TYPESTORE, OutputBag

_TYPES = TYPESTORE.types


def is_cdr(connection: Any) -> bool:
    """Whether the input connection stores CDR (a ROS 2 bag)."""
    return getattr(connection.ext, "serialization_format", None) == "cdr"


def register_copy(out: OutputBag, connection: Any) -> None:
    """Register the output connection of a copied input ``connection`` (same topic and message type)."""
    definition = getattr(connection.msgdef, "data", "") or None
    if is_cdr(connection) and definition and connection.digest:
        out.connection(connection.topic, connection.msgtype, msgdef=definition, rihs01=connection.digest,
                       qos=list(connection.ext.offered_qos_profiles))
    else:
        out.connection(connection.topic, connection.msgtype)


def _to_jazzy(value: Any) -> Any:
    """A deserialized message of any generation -> the Jazzy message of the same type (recursively)."""
    msgtype = getattr(value, "__msgtype__", None)
    if msgtype is None:
        if isinstance(value, list):
            return [_to_jazzy(item) for item in value]
        return value
    target = _TYPES[msgtype]
    kwargs = {}
    for name in target.__dataclass_fields__:
        if name == "__msgtype__":
            continue
        source = getattr(value, name) if hasattr(value, name) else getattr(value, name.upper())
        kwargs[name] = source if isinstance(source, np.ndarray) else _to_jazzy(source)
    return target(**kwargs)


def to_output_cdr(bag: BagReader, connection: Any, raw: bytes) -> bytes:
    """The CDR bytes to store for input message ``raw`` of ``connection``."""
    if is_cdr(connection):
        return bytes(raw)
    msg = _to_jazzy(bag.deserialize(raw, connection.msgtype))
    return bytes(TYPESTORE.serialize_cdr(msg, connection.msgtype))

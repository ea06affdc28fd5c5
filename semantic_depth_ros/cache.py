"""The package's one bounded cache: least-recently-used values built on a miss (importable from every layer).

Per-size and per-camera tensors (output grids, undistortion maps, ray grids, colour tables) are cached so that no
frame rebuilds them, and bounded so that a camera whose size or camera_info keeps changing cannot grow memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch

from .errors import ConfigError

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """At most ``max_entries`` values, the least recently used evicted first; thread-safe.

    ``get(key, build)`` returns the cached value of ``key`` (the same object until it is evicted) or stores and
    returns ``build()``. Callers must not modify a returned value. ``name`` appears in error messages.
    """

    def __init__(self, max_entries: int, name: str = "cache") -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise ConfigError(f"{name} max_entries = {max_entries!r} must be an integer >= 1")
        self.max_entries = max_entries
        self.name = name
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, build: Callable[[], V]) -> V:
        """The value of ``key``, built (under the lock, once) on a miss."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            value = build()
            self._entries[key] = value
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return value

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._entries

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()


def device_key(device: torch.device | str) -> torch.device:
    """The device as a cache key: CUDA with an explicit index, so that ``cuda`` and ``cuda:0`` share entries."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device

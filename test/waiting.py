"""Polling helper of the ROS tests: wait for a condition that another thread (executor, DDS) makes true."""

from __future__ import annotations

import time
from collections.abc import Callable

TIMEOUT = 20.0  # seconds: generous for DDS discovery on a loaded CI machine


def wait_until(condition: Callable[[], bool], what: str = "condition", timeout: float = TIMEOUT) -> None:
    """Poll ``condition`` every 10 ms; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)

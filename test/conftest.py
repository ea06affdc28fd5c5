"""Shared test set-up: an isolated ROS 2 graph, a tiny untrained checkpoint, and the ``ros`` tier's guard.

ROS isolation is set here, at import time, before any test imports rclpy or starts a node subprocess: a random
``ROS_DOMAIN_ID`` per test session (so test runs started at the same time do not see each other) and discovery
limited to this machine.

Tests that need ROS carry ``pytest.mark.ros`` (``scripts/check_imports.py`` checks their imports); a test without
it that imports rclpy anyway, e.g. through a command, fails here, so ``-m "not ros"`` stays runnable without ROS.
On a machine without rclpy, ``-m "not ros"`` does not even import the modules marked ros as a whole.
"""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from pathlib import Path

import pytest
from _pytest.mark.expression import Expression
from helpers import TINY_MODEL

os.environ["ROS_DOMAIN_ID"] = str(random.SystemRandom().randint(1, 100))
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)  # deprecated; conflicts with the variable above
os.environ.pop("ROS_STATIC_PEERS", None)

pytest_plugins = ("pytester",)  # test_imports runs an inner session to check the ros guard
REPO_ROOT = Path(__file__).resolve().parent.parent
_ROS_LOADED = pytest.StashKey[bool]()
ROS_MODULE_MARK = "pytestmark = pytest.mark.ros"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Without rclpy, skip importing a test module marked ros as a whole when ``-m`` deselects ros tests anyway
    (its module-level ``import rclpy`` would be a collection error)."""
    if collection_path.suffix != ".py" or _rclpy_installed():
        return None
    expression = config.getoption("markexpr")
    if not expression or Expression.compile(expression).evaluate(lambda name, **_: name == "ros"):
        return None
    lines = collection_path.read_text(encoding="utf-8").splitlines()
    return True if any(line.startswith(ROS_MODULE_MARK) for line in lines) else None


def _rclpy_installed() -> bool:
    try:
        return importlib.util.find_spec("rclpy") is not None
    except (ImportError, ValueError):
        return False


def _ros_loaded() -> bool:
    return "rclpy" in sys.modules


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    item.stash[_ROS_LOADED] = _ros_loaded()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if not item.stash.get(_ROS_LOADED, True) and _ros_loaded() and item.get_closest_marker("ros") is None:
        pytest.fail(f"{item.nodeid} imported rclpy without pytest.mark.ros: mark it (the ROS-free tier, "
                    "-m 'not ros', must run without ROS)", pytrace=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of an UNTRAINED checkpoint of ``TINY_MODEL`` (seeded, so every session gets the same weights)."""
    import torch

    from semantic_depth_ros.model.checkpoint import save_checkpoint
    from semantic_depth_ros.model.config import ModelConfig
    from semantic_depth_ros.model.network import SemanticDepthNet

    config = ModelConfig(**TINY_MODEL)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("checkpoints") / "tiny.pt"
    save_checkpoint(path, SemanticDepthNet(config), config, trained=False, extra={"seed": 0})
    return path

"""The package's layers (scripts/check_imports.py, run here so CI runs it) and the ``ros`` test tier's guard."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _checker():
    spec = importlib.util.spec_from_file_location("check_imports", REPO_ROOT / "scripts" / "check_imports.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("check_imports", module)
    spec.loader.exec_module(module)
    return module


def _write(root: Path, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_package_imports_point_down_and_ros_tests_are_marked() -> None:
    findings, counts = _checker().check(REPO_ROOT)
    assert findings == []
    assert counts["modules"] > 100 and counts["layers"] == len(_checker().LAYERS)


def test_every_package_and_top_level_module_has_a_layer() -> None:
    checker = _checker()
    package = REPO_ROOT / "semantic_depth_ros"
    names = {path.stem for path in package.glob("*.py")} | {path.name for path in package.iterdir()
                                                             if (path / "__init__.py").is_file()}
    assert all(checker.layer_entry(checker._relative(f"semantic_depth_ros.{name}")) is not None for name in names)


def test_the_checker_finds_each_kind_of_problem(tmp_path: Path) -> None:
    _write(tmp_path, {
        "semantic_depth_ros/__init__.py": "",
        "semantic_depth_ros/errors.py": "",
        "semantic_depth_ros/geometry/__init__.py": "",
        "semantic_depth_ros/geometry/box.py": """\
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from ..inference.pre import Pre
            """,
        "semantic_depth_ros/inference/__init__.py": "",
        "semantic_depth_ros/inference/pre.py": "from ..geometry.box import Box\nfrom ..errors import Oops\n",
        "semantic_depth_ros/data/__init__.py": "",
        "semantic_depth_ros/data/read.py": "from semantic_depth_ros.inference import pre\n",
        "semantic_depth_ros/messages/__init__.py": "",
        "semantic_depth_ros/messages/wrap.py": "def wrap():\n    from sensor_msgs.msg import Image\n",
        "semantic_depth_ros/extras/__init__.py": "",
        "semantic_depth_ros/ros/__init__.py": "",
        "semantic_depth_ros/ros/node.py": "import rclpy\n",
        "semantic_depth_ros/ros/worker.py": "import threading\n",
        "test/test_a.py": "import rclpy\n",
        "test/test_b.py": """\
            import pytest
            from test_a import helper

            def _helper():
                from semantic_depth_ros.ros import node

            def test_direct():
                from semantic_depth_ros.ros.node import main

            def test_through_a_helper():
                _helper()

            @pytest.mark.ros
            def test_marked():
                from semantic_depth_ros.ros.node import main

            def test_pure_python_part_of_ros():
                from semantic_depth_ros.ros.worker import Worker
            """,
        "test/test_c.py": "import pytest\nimport rclpy\n\npytestmark = pytest.mark.ros\n",
    })
    findings, _ = _checker().check(tmp_path)
    assert sorted(findings) == sorted([
        "ROS outside ros/: semantic_depth_ros/messages/wrap.py:2 imports sensor_msgs.msg",
        "unplaced: semantic_depth_ros/extras/__init__.py is in no entry of LAYERS (scripts/check_imports.py)",
        "sibling import: semantic_depth_ros/data/read.py:1 imports semantic_depth_ros.inference.pre "
        "(data and inference share a layer)",
        "upward import: semantic_depth_ros/geometry/box.py:3 imports semantic_depth_ros.inference.pre "
        "(geometry is below inference)",
        "cycle: semantic_depth_ros.geometry.box <-> semantic_depth_ros.inference.pre",
        "unmarked ROS test module: test/test_a.py:1 imports rclpy outside its tests; set pytestmark = pytest.mark.ros",
        "test helper import: test/test_b.py:2 imports test_a; put shared helpers in a helper module or conftest.py "
        "fixtures",
        "unmarked ROS test: test/test_b.py:7 test_direct imports semantic_depth_ros.ros.node; mark it (or the "
        "module) with pytest.mark.ros",
        "unmarked ROS test: test/test_b.py:10 test_through_a_helper imports semantic_depth_ros.ros.node (through "
        "_helper); mark it (or the module) with pytest.mark.ros",
    ])
    assert _checker().main(["check_imports.py", str(tmp_path)]) == 1


@pytest.mark.ros  # the inner session imports rclpy
def test_an_unmarked_test_that_imports_rclpy_fails(pytester: pytest.Pytester) -> None:
    pytester.makeconftest((REPO_ROOT / "test" / "conftest.py").read_text())
    pytester.makepyfile(helpers=(REPO_ROOT / "test" / "helpers.py").read_text())
    pytester.makeini('[pytest]\nmarkers =\n    ros: needs ROS\n')
    pytester.makepyfile(test_inner="""\
        import pytest

        def test_unmarked():
            import rclpy

        @pytest.mark.ros
        def test_marked():
            import rclpy
        """)
    unmarked = pytester.runpytest_subprocess("-p", "no:randomly", "-k", "unmarked")
    unmarked.assert_outcomes(passed=1, errors=1)
    unmarked.stdout.fnmatch_lines(["*test_unmarked imported rclpy without pytest.mark.ros*"])
    pytester.runpytest_subprocess("-p", "no:randomly", "-k", "test_marked").assert_outcomes(passed=1)

"""The package as users install it: colcon and pip layouts, package.xml, launch file, parameter file."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from semantic_depth_ros.ros.params import PARAMETER_NAMES, NodeSettings, settings_from_values

pytestmark = pytest.mark.ros  # the ROS 2 parameters and launch files

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "semantic_depth_ros"
EXECUTABLES = ("depth_node", "depth_lifecycle_node", "train", "extract_rosbag", "export", "infer_bag",
               "semantic-depth")
PACKAGE_FILES = ("setup.py", "setup.cfg", "package.xml", "resource", PACKAGE, "launch", "config", "models",
                 "reference")
REFERENCE_FILES = ("reference/paper_table1.csv", *(f"reference/kitti_eigen_split/eigen_{name}_files.txt"
                                                    for name in ("train", "val", "test")))
FIND_SPLIT = ("from semantic_depth_ros.data.kitti_split import resolve_split_file; "
              "from semantic_depth_ros.evaluation.paper_table import paper_rows; "
              "print(resolve_split_file('eigen_test')); print(len(paper_rows()))")
SITE = f"lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages"


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` from the console_scripts list in setup.py (read with ast, not executed)."""
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    for item in ast.literal_eval(value):
                        name, target = (part.strip() for part in item.split("="))
                        scripts[name] = target
    return scripts


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's files copied out of the working tree, so builds leave no build/ folders in it."""
    root = tmp_path_factory.mktemp("src") / PACKAGE
    root.mkdir()
    for name in PACKAGE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, root / name)
    return root


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 240) -> str:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _installed_env(site_packages: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site_packages)
    env.update(extra or {})
    return env


def test_colcon_build_installs_executables_and_data_where_ros2_run_and_launch_look(
        source_copy: Path, tmp_path: Path) -> None:
    colcon = Path(sys.executable).parent / "colcon"
    if not colcon.exists():
        if os.environ.get("CI"):  # CI installs the test extras: a missing colcon there is a setup bug
            pytest.fail(f"colcon is not installed beside {sys.executable} (pip install -e '.[test]')")
        pytest.skip("colcon is not installed in this environment")
    _run([str(colcon), "--log-base", str(tmp_path / "log"), "build", "--base-paths", str(source_copy.parent),
          "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install"),
          "--packages-select", PACKAGE], cwd=tmp_path)
    prefix = tmp_path / "install" / PACKAGE
    for name in EXECUTABLES:  # `ros2 run semantic_depth_ros <name>` looks in lib/<package>/
        executable = prefix / "lib" / PACKAGE / name
        assert executable.is_file() and os.access(executable, os.X_OK), executable
    share = prefix / "share" / PACKAGE
    for relative in ("package.xml", "launch/depth.launch.py", "config/depth_node.yaml", "config/depth.rviz",
                     "models/resnet18.yaml", "models/resnet50.yaml", *REFERENCE_FILES):
        assert (share / relative).is_file(), relative
        if relative.startswith("reference/"):
            assert (share / relative).read_bytes() == (REPO / relative).read_bytes(), relative
    assert (prefix / "share/ament_index/resource_index/packages" / PACKAGE).is_file()
    # The installed command runs, and finds its data files through the ament index of this install.
    env = _installed_env(prefix / SITE, {"AMENT_PREFIX_PATH": str(prefix)})
    out = _run([str(prefix / "lib" / PACKAGE / "semantic-depth"), "--version"], cwd=tmp_path, env=env)
    assert out.strip() == "semantic-depth 0.1.0"
    code = "from semantic_depth_ros.resources import find_data_file; print(find_data_file('config', 'depth_node.yaml'))"
    out = _run([sys.executable, "-c", code], cwd=tmp_path, env=env)
    assert Path(out.strip()) == share / "config" / "depth_node.yaml"
    split, rows = _run([sys.executable, "-c", FIND_SPLIT], cwd=tmp_path, env=env).split()
    assert Path(split) == share / "reference" / "kitti_eigen_split" / "eigen_test_files.txt" and rows == "22"


def test_pip_install_gives_the_commands_and_data_files(source_copy: Path, tmp_path: Path) -> None:
    build_copy = tmp_path / "src"
    shutil.copytree(source_copy, build_copy)  # pip builds in place: keep the shared copy clean for colcon
    prefix = tmp_path / "prefix"
    # --ignore-installed: install beside, never uninstall, the package already in this environment
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          "--ignore-installed", "--disable-pip-version-check", "--prefix", str(prefix), str(build_copy)], cwd=tmp_path)
    for name in EXECUTABLES:
        assert (prefix / "bin" / name).is_file(), name
    share = prefix / "share" / PACKAGE
    assert (share / "config" / "depth_node.yaml").is_file()
    assert (share / "launch" / "depth.launch.py").is_file()
    assert (share / "models" / "resnet18.yaml").is_file()
    for relative in REFERENCE_FILES:
        assert (share / relative).read_bytes() == (REPO / relative).read_bytes(), relative
    out = _run([str(prefix / "bin" / "semantic-depth"), "--version"], cwd=tmp_path, env=_installed_env(prefix / SITE))
    assert out.strip() == "semantic-depth 0.1.0"


def test_console_scripts_point_at_existing_functions() -> None:
    scripts = console_scripts()
    assert set(scripts) == set(EXECUTABLES)
    for name, target in scripts.items():
        module_name, function = target.split(":")
        assert module_name.startswith(PACKAGE + "."), name
        spec = importlib.util.find_spec(module_name)
        assert spec is not None, target
        source = Path(spec.origin).read_text()
        assert f"def {function}(" in source, target  # checked without importing rclpy/torch-heavy modules


ROS_LIBRARIES = ("rclpy", "cv_bridge", "image_geometry", "message_filters", "tf2_ros")


def _ros_packages_imported() -> set[str]:
    """Top-level ROS packages (rclpy, *_msgs, *_interfaces, ROS libraries) imported by the package and launch files."""
    found = set()
    for path in [*(REPO / PACKAGE).rglob("*.py"), *(REPO / "launch").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ROS_LIBRARIES or top.endswith(("_msgs", "_interfaces")):
                    found.add(top)
    return found


def test_package_xml() -> None:
    root = ET.parse(REPO / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == PACKAGE
    assert root.findtext("export/build_type") == "ament_python"
    exec_depends = {e.text for e in root.findall("exec_depend")}
    assert {"launch", "launch_ros", "python3-numpy", "python3-opencv"} <= exec_depends
    ros_imports = _ros_packages_imported()
    assert {"rclpy", "sensor_msgs", "diagnostic_msgs", "std_msgs", "rcl_interfaces"} <= ros_imports
    assert ros_imports <= exec_depends  # every ROS package a module imports is declared ...
    ros_declared = {name for name in exec_depends if name in ROS_LIBRARIES or name.endswith(("_msgs", "_interfaces"))}
    assert ros_declared <= ros_imports  # ... and no ROS library is declared that no module imports (cv_bridge)
    assert "python3-pytest" in {e.text for e in root.findall("test_depend")}
    assert root.findtext("version") == "0.1.0"


def test_setup_cfg_puts_scripts_in_lib_package() -> None:
    text = (REPO / "setup.cfg").read_text()
    assert f"script_dir=$base/lib/{PACKAGE}" in text
    assert f"install_scripts=$base/lib/{PACKAGE}" in text


# ------------------------------------------------------------------------------------------------ launch file
class _Recorder:
    """Stand-in for a launch/launch_ros class: remembers its constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


def _stub_modules() -> dict[str, types.ModuleType]:
    classes = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable"],
        "launch.conditions": ["IfCondition", "UnlessCondition"],
        "launch.substitutions": ["LaunchConfiguration", "PathJoinSubstitution", "PythonExpression",
                                 "NotEqualsSubstitution"],
        "launch_ros.actions": ["LifecycleNode", "Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
    }
    modules: dict[str, types.ModuleType] = {"launch_ros": types.ModuleType("launch_ros")}
    for module_name, names in classes.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, type(name, (_Recorder,), {}))
        modules[module_name] = module
    return modules


def _load_launch_with_stubs(monkeypatch: pytest.MonkeyPatch) -> tuple[types.ModuleType, _Recorder]:
    for name, module in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("depth_launch_stubbed", REPO / "launch" / "depth.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.generate_launch_description()


def _launch_arguments(description: _Recorder) -> dict[str, str]:
    (entities,) = description.args
    return {e.args[0]: e.kwargs.get("default_value") for e in entities if type(e).__name__ == "DeclareLaunchArgument"}


def test_launch_file_names_an_existing_executable_params_file_and_rviz_config(monkeypatch: pytest.MonkeyPatch) -> None:
    module, description = _load_launch_with_stubs(monkeypatch)
    arguments = _launch_arguments(description)
    assert {"model_path", "image", "camera_info", "namespace", "params_file", "use_rviz", "cameras",
            "lifecycle"} <= set(arguments)
    assert (arguments["use_rviz"], arguments["lifecycle"], arguments["cameras"]) == ("false", "false", "")
    params_file = Path(arguments["params_file"])
    assert params_file == REPO / "config" / "depth_node.yaml" and params_file.is_file()
    (entities,) = description.args
    assert any(type(e).__name__ == "OpaqueFunction" for e in entities)  # the nodes are built at launch time
    nodes = module.node_actions({**arguments, "use_rviz": "true", "model_path": "m.pt"})
    depth_node = next(n for n in nodes if n.kwargs["package"] == PACKAGE)
    assert type(depth_node).__name__ == "Node"
    assert depth_node.kwargs["executable"] in console_scripts()
    assert (depth_node.kwargs["executable"], depth_node.kwargs["name"]) == ("depth_node", "depth_node")
    params_path, overrides = depth_node.kwargs["parameters"]
    assert params_path == arguments["params_file"] and set(overrides) == {"model_path"}
    assert overrides["model_path"].args == ("m.pt",) and overrides["model_path"].kwargs == {"value_type": str}
    assert depth_node.kwargs["remappings"] == [("image", "/camera/image_raw"),
                                               ("image/compressed", "/camera/image_raw/compressed"),
                                               ("camera_info", "/camera/camera_info")]
    rviz = next(n for n in nodes if n.kwargs["package"] == "rviz2")
    rviz_config = Path(rviz.kwargs["arguments"][rviz.kwargs["arguments"].index("-d") + 1])
    assert rviz_config.is_file()
    assert rviz.kwargs["remappings"] == [("image", "/camera/image_raw")]
    (default_node,) = module.node_actions(arguments)  # use_rviz false: no rviz2
    assert default_node.kwargs["package"] == PACKAGE
    # no model_path argument: the params file's model_path stands (an empty override would erase it)
    assert "model_path" not in default_node.kwargs["parameters"][1]


def test_launch_lifecycle_and_cameras_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    module, description = _load_launch_with_stubs(monkeypatch)
    arguments = _launch_arguments(description)
    values = {**arguments, "lifecycle": "true", "cameras": "front, left,right", "namespace": "car",
              "image": "/{camera}/image_raw", "camera_info": "/sensors/{camera}/info", "use_rviz": "true",
              "rviz_camera": "left"}
    depth_node, rviz = module.node_actions(values)
    assert type(depth_node).__name__ == "LifecycleNode"
    assert depth_node.kwargs["executable"] == "depth_lifecycle_node" in console_scripts()
    assert (depth_node.kwargs["name"], depth_node.kwargs["namespace"]) == ("depth_node", "car")
    assert depth_node.kwargs["parameters"][1]["cameras"] == ["front", "left", "right"]
    remappings = dict(depth_node.kwargs["remappings"])
    assert remappings["left/image"] == "/left/image_raw"
    assert remappings["left/image/compressed"] == "/left/image_raw/compressed"
    assert remappings["right/camera_info"] == "/sensors/right/info"
    assert len(remappings) == 9
    assert rviz.kwargs["namespace"] == "car/left" and rviz.kwargs["remappings"] == [("image", "/left/image_raw")]
    # without a {camera} template the per-camera inputs keep their names (<namespace>/<camera>/image)
    plain = module.node_actions({**arguments, "cameras": "[front, rear]"})[0]
    assert type(plain).__name__ == "Node" and plain.kwargs["remappings"] == []
    assert plain.kwargs["parameters"][1]["cameras"] == ["front", "rear"]
    assert module.parse_cameras("") == [] and module.parse_cameras("[a, 'b']") == ["a", "b"]


def test_launch_file_builds_with_real_launch_ros() -> None:
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros", reason="launch_ros is not on PyPI; needs a ROS 2 install")
    from launch import LaunchDescription
    from launch_ros.actions import Node

    spec = importlib.util.spec_from_file_location("depth_launch", REPO / "launch" / "depth.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    names = {a.name for a in description.get_launch_arguments()}
    assert {"model_path", "image", "camera_info", "namespace", "params_file", "use_rviz", "cameras",
            "lifecycle"} <= names
    values = {name: default for name, (default, _) in module.ARGUMENTS.items()}
    nodes = module.node_actions({**values, "use_rviz": "true", "lifecycle": "true", "cameras": "front,left"})
    assert len(nodes) == 2 and all(isinstance(n, Node) for n in nodes)


# ------------------------------------------------------------------------------------------- parameter files
def test_params_yaml_has_exactly_the_node_parameters_with_their_types_and_defaults() -> None:
    data = yaml.safe_load((REPO / "config" / "depth_node.yaml").read_text())
    assert list(data) == ["/**"]
    values = data["/**"]["ros__parameters"]
    assert set(values) == set(PARAMETER_NAMES)
    assert settings_from_values(values) == NodeSettings()  # types exact (500.0 not 500) and defaults as declared


def test_three_camera_example_is_valid_and_read_by_a_node() -> None:
    path = REPO / "config" / "depth_node_three_cameras.yaml"
    values = yaml.safe_load(path.read_text())["/**"]["ros__parameters"]
    assert set(values) == set(PARAMETER_NAMES)
    settings = settings_from_values(values)
    assert settings.cameras == ("front", "left", "right") and settings.point_stride == 2
    # the real YAML parser of rcl reads it: a managed node (nothing loaded) declares the three cameras
    code = ("import rclpy; from semantic_depth_ros.ros.lifecycle_node import DepthLifecycleNode; rclpy.init(args="
            f"['x', '--ros-args', '--params-file', {str(path)!r}]); node = DepthLifecycleNode(); "
            "print(node.settings.cameras, node.get_parameter('cameras').value); node.destroy_node()")
    out = _run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert out.strip() == "('front', 'left', 'right') ['front', 'left', 'right']"
    default = REPO / "config" / "depth_node.yaml"  # `cameras: []` reads as the empty default
    code = code.replace(repr(str(path)), repr(str(default)))
    out = _run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert out.strip() == "() []"


def test_rviz_config_shows_image_depth_colour_semantic_colour_and_points() -> None:
    config = yaml.safe_load((REPO / "config" / "depth.rviz").read_text())
    displays = config["Visualization Manager"]["Displays"]
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays}
    assert topics == {
        "image": "rviz_default_plugins/Image",
        "depth/color": "rviz_default_plugins/Image",
        "semantic/color": "rviz_default_plugins/Image",
        "points": "rviz_default_plugins/PointCloud2",
    }
    points = next(d for d in displays if d["Topic"]["Value"] == "points")
    assert points["Color Transformer"] == "RGB8"


ROSDEP_KEYS = REPO / "test" / "data" / "rosdep_keys.txt"
SUPPORTED_DISTRIBUTIONS = ("humble", "jazzy", "kilted")


def _rosdistro_names() -> dict[str, set[str]]:
    """test/data/rosdep_keys.txt (scripts/update_rosdep_keys.py): name -> where rosdep finds it."""
    names: dict[str, set[str]] = {}
    for line in ROSDEP_KEYS.read_text().splitlines():
        if line and not line.startswith("#"):
            name, where = line.split()
            names.setdefault(name, set()).update(where.split(","))
    return names


def test_every_package_xml_dependency_resolves_with_rosdep_on_every_supported_distribution() -> None:
    header = ROSDEP_KEYS.read_text().splitlines()[0]
    assert header.startswith("# rosdistro ") and "(20" in header  # commit and date of the list
    names = _rosdistro_names()
    assert {"rclpy", "python3-numpy", "python3-pytorch-pip"} <= set(names)  # the list is whole, not a stub
    root = ET.parse(REPO / "package.xml").getroot()
    depends = [e.text for e in root if e.tag.endswith("depend")]
    assert "python3-onnx-pip" not in depends  # rosdistro has no onnx key: README's pip line installs it
    unresolved = {}
    for key in depends:
        where = names.get(key, set())
        if "base.yaml" in where or "python.yaml" in where:
            continue
        missing = [d for d in SUPPORTED_DISTRIBUTIONS if d not in where]
        if missing:
            unresolved[key] = missing
    assert unresolved == {}, f"rosdep cannot resolve (key: distributions): {unresolved}"


def test_the_rosdep_check_fails_on_a_key_rosdistro_does_not_have() -> None:
    names = _rosdistro_names()
    assert "python3-onnx-pip" not in names and "ament_python" not in names
    assert names["python3-onnxruntime-pip"] == {"python.yaml"}

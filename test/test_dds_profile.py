"""The Fast DDS profiles (config/fastdds.xml for Fast DDS 2.x, config/fastdds3.xml for 3.x): their settings, that the
installed Fast DDS accepts its own without an error, and that launch, bench and demo hand it to the node (and the demo
client) in the variable that Fast DDS reads, unless the user names a profile of their own."""

from __future__ import annotations

import importlib.util
import os
import runpy
import subprocess
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from semantic_depth_ros.resources import find_data_file
from semantic_depth_ros.ros import client as client_module
from semantic_depth_ros.ros.distro import (PUBLICATION_MODE_ENV, USER_DDS_PROFILE_ENVS, USER_PUBLICATION_MODE_ENVS,
                                          dds_profile_environment, dds_profile_variable, default_dds_profile)
from semantic_depth_ros.ros.node_process import NodeProcess
from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES

pytestmark = pytest.mark.ros  # node processes and the DDS profile

REPO = Path(__file__).resolve().parent.parent
PROFILE = default_dds_profile(share_dir=REPO)  # the profile of the Fast DDS installed here
ENV = dds_profile_variable()  # the variable it reads
USER_ENVS = USER_DDS_PROFILE_ENVS
# file -> XML namespace of its schema; every settings test runs on both files
PROFILE_NAMESPACES = {"fastdds.xml": "http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles",
                      "fastdds3.xml": "http://www.eprosima.com"}
HEARTBEAT = {"fastdds.xml": "heartbeatPeriod", "fastdds3.xml": "heartbeat_period"}
NS = {"dds": ""}
# bytes per pixel of every per-pixel output (depth_info is a CameraInfo of a few hundred bytes)
OUTPUT_BYTES_PER_PIXEL = {"depth": 4, "points": 16, "semantic": 1, "semantic_color": 3, "confidence": 4,
                          "depth_color": 3}
KITTI_FULL = (375, 1242)  # height, width of the largest camera the profile is sized for


@pytest.fixture(autouse=True)
def _no_user_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from an environment that names no profile (a developer's shell may set one)."""
    for name in (*USER_ENVS, *USER_PUBLICATION_MODE_ENVS):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=sorted(PROFILE_NAMESPACES))
def profile_file(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each shipped profile in turn (``NS`` set to its schema's namespace)."""
    monkeypatch.setitem(NS, "dds", PROFILE_NAMESPACES[request.param])
    return request.param


def _profiles(name: str) -> ET.Element:
    root = ET.parse(REPO / "config" / name).getroot()
    assert root.tag == f"{{{NS['dds']}}}dds"
    profiles = root.find("dds:profiles", NS)
    assert profiles is not None
    return profiles


def _transports(name: str) -> dict[str, ET.Element]:
    return {d.findtext("dds:transport_id", namespaces=NS): d
            for d in _profiles(name).findall("dds:transport_descriptors/dds:transport_descriptor", NS)}


def _default(name: str, kind: str) -> ET.Element:
    (profile,) = [p for p in _profiles(name).findall(f"dds:{kind}", NS) if p.get("is_default_profile") == "true"]
    return profile


# ------------------------------------------------------------------------------------------------ the XML file
def test_default_participant_uses_only_a_large_shared_memory_segment_and_udp(profile_file: str) -> None:
    transports = _transports(profile_file)
    rtps = _default(profile_file, "participant").find("dds:rtps", NS)
    assert rtps.findtext("dds:useBuiltinTransports", namespaces=NS) == "false"
    used = [t.text for t in rtps.findall("dds:userTransports/dds:transport_id", NS)]
    assert sorted(transports[name].findtext("dds:type", namespaces=NS) for name in used) == ["SHM", "UDPv4"]
    (shm,) = [transports[name] for name in used if transports[name].findtext("dds:type", namespaces=NS) == "SHM"]
    (udp,) = [transports[name] for name in used if transports[name].findtext("dds:type", namespaces=NS) == "UDPv4"]
    segment = int(shm.findtext("dds:segment_size", namespaces=NS))
    assert segment == 16 * 1024 * 1024
    assert int(udp.findtext("dds:sendBufferSize", namespaces=NS)) == 4 * 1024 * 1024
    assert int(udp.findtext("dds:receiveBufferSize", namespaces=NS)) == 4 * 1024 * 1024


def test_shared_memory_segment_holds_one_full_size_frame_of_every_output(profile_file: str) -> None:
    assert set(OUTPUT_MESSAGES) == set(OUTPUT_BYTES_PER_PIXEL) | {"depth_info"}  # a new output must be sized here too
    height, width = KITTI_FULL
    frame_bytes = height * width * sum(OUTPUT_BYTES_PER_PIXEL.values())
    segment = int(_transports(profile_file)["semantic_depth_shm"].findtext("dds:segment_size", namespaces=NS))
    assert frame_bytes == 14_438_250
    assert segment > frame_bytes


def test_default_writer_heartbeat_is_100_ms(profile_file: str) -> None:
    period = _default(profile_file, "data_writer").find(f"dds:times/dds:{HEARTBEAT[profile_file]}", NS)
    assert (int(period.findtext("dds:sec", namespaces=NS)), int(period.findtext("dds:nanosec", namespaces=NS))) \
        == (0, 100_000_000)


def test_fast_dds_loads_its_profile_without_errors_or_warnings_and_applies_the_segment_size() -> None:
    script = (
        "import os, rclpy\n"
        "from rclpy.context import Context\n"
        "shm = '/dev/shm'\n"
        "before = set(os.listdir(shm)) if os.path.isdir(shm) else set()\n"
        "context = Context()\n"
        "rclpy.init(context=context)\n"
        "node = rclpy.create_node('dds_profile_check', context=context)\n"
        "new = set(os.listdir(shm)) - before if os.path.isdir(shm) else set()\n"
        "print(max([os.path.getsize(os.path.join(shm, n)) for n in new if n.startswith(('fastrtps_', 'fastdds_'))], default=-1))\n"
        "node.destroy_node()\n"
        "rclpy.shutdown(context=context)\n"
    )
    env = dict(os.environ, **NodeProcess(Path("model.pt"), domain_id=7).environment())  # what the node gets
    assert env[ENV] == str(find_data_file("config", PROFILE.name))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("XMLPARSER", "Error", "deprecated"):  # Kilted warns when the Fast DDS 2 variable is set
        assert text not in result.stderr, result.stderr[-2000:]
    largest_segment = int(result.stdout.split()[-1])
    if largest_segment >= 0:  # Linux: Fast DDS keeps its shared-memory segments in /dev/shm
        assert largest_segment >= 16 * 1024 * 1024


def test_setup_installs_the_profile_with_the_other_config_files(monkeypatch: pytest.MonkeyPatch) -> None:
    captured: dict[str, Any] = {}
    monkeypatch.setattr("setuptools.setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(REPO)
    runpy.run_path(str(REPO / "setup.py"))
    data_files = dict(captured["data_files"])
    assert {"config/fastdds.xml", "config/fastdds3.xml"} <= set(data_files["share/semantic_depth_ros/config"])
    assert "config/depth_node.yaml" in data_files["share/semantic_depth_ros/config"]


# ------------------------------------------------------------------------------------------------ bench and demo
def _node_env() -> dict[str, str]:
    """The environment NodeProcess gives the node (no process is started)."""
    return NodeProcess(Path("model.pt"), domain_id=7, device="cpu", num_threads=1).environment()


def test_bench_and_demo_node_process_gets_the_installed_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _node_env()
    assert env[ENV] == str(find_data_file("config", PROFILE.name))
    assert Path(env[ENV]).read_bytes() == PROFILE.read_bytes()
    assert env[PUBLICATION_MODE_ENV] == "ASYNCHRONOUS"  # publish returns once Fast DDS holds the frame
    assert env["ROS_DOMAIN_ID"] == "7"
    assert ENV not in os.environ and PUBLICATION_MODE_ENV not in os.environ  # the caller's environment is untouched


@pytest.mark.parametrize(("name", "value"), [(PUBLICATION_MODE_ENV, "SYNCHRONOUS"),
                                             ("RMW_FASTRTPS_USE_QOS_FROM_XML", "1")])
def test_node_process_keeps_a_publication_mode_the_user_chose(monkeypatch: pytest.MonkeyPatch, name: str,
                                                              value: str) -> None:
    monkeypatch.setenv(name, value)
    env = _node_env()
    assert env[ENV] == str(find_data_file("config", PROFILE.name))  # the profile still comes with the node
    assert env[name] == value
    assert env.get(PUBLICATION_MODE_ENV) == (value if name == PUBLICATION_MODE_ENV else None)


@pytest.mark.parametrize("name", USER_ENVS)
def test_node_process_keeps_a_profile_the_user_set(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "/etc/my_fastdds.xml")
    env = _node_env()
    assert env[name] == "/etc/my_fastdds.xml"
    assert {n: env[n] for n in USER_ENVS if n in env} == {name: "/etc/my_fastdds.xml"}


class _NodeCreated(Exception):
    """Raised by the stand-in Node: the test needs only what the environment was when the participant was made."""


def _client_env_at_node_creation(monkeypatch: pytest.MonkeyPatch) -> str | None:
    seen: dict[str, str | None] = {}

    def fake_node(*args: Any, **kwargs: Any) -> None:
        seen["profile"] = os.environ.get(ENV)  # rmw_fastrtps creates the participant (and reads the XML) here
        raise _NodeCreated

    monkeypatch.setattr(client_module.rclpy, "init", lambda **kwargs: None)
    monkeypatch.setattr(client_module, "Node", fake_node)
    with pytest.raises(_NodeCreated):
        client_module.DepthClient(domain_id=7)
    return seen["profile"]


def test_client_participant_gets_the_profile_and_the_environment_is_restored(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert _client_env_at_node_creation(monkeypatch) == str(find_data_file("config", PROFILE.name))
    assert ENV not in os.environ


def test_client_keeps_a_profile_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "/etc/my_fastdds.xml")
    assert _client_env_at_node_creation(monkeypatch) == "/etc/my_fastdds.xml"
    assert os.environ[ENV] == "/etc/my_fastdds.xml"


# ------------------------------------------------------------------------------------------------ launch file
class _Recorder:
    """Stand-in for a launch/launch_ros class: remembers its constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs


def _launch_description(monkeypatch: pytest.MonkeyPatch) -> list[_Recorder]:
    """Entities of launch/depth.launch.py built with stand-ins for launch and launch_ros (not on PyPI)."""
    classes = {
        "launch": ["LaunchDescription"],
        "launch.actions": ["DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable"],
        "launch.conditions": ["IfCondition"],
        "launch.substitutions": ["LaunchConfiguration", "NotEqualsSubstitution"],
        "launch_ros.actions": ["LifecycleNode", "Node"],
        "launch_ros.parameter_descriptions": ["ParameterValue"],
    }
    monkeypatch.setitem(sys.modules, "launch_ros", types.ModuleType("launch_ros"))
    for module_name, names in classes.items():
        module = types.ModuleType(module_name)
        for name in names:
            setattr(module, name, type(name, (_Recorder,), {}))
        monkeypatch.setitem(sys.modules, module_name, module)
    spec = importlib.util.spec_from_file_location("depth_launch_dds", REPO / "launch" / "depth.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    (entities,) = module.generate_launch_description().args
    return entities


def _dds_profile_default(entities: list[_Recorder]) -> str:
    (argument,) = [e for e in entities if type(e).__name__ == "DeclareLaunchArgument" and e.args[0] == "dds_profile"]
    return argument.kwargs["default_value"]


def test_launch_sets_the_profile_before_starting_nodes_unless_the_argument_is_empty(
        monkeypatch: pytest.MonkeyPatch) -> None:
    entities = _launch_description(monkeypatch)
    assert Path(_dds_profile_default(entities)) == PROFILE  # source tree layout == installed share layout
    names = [type(e).__name__ for e in entities]
    setters = {e.args[0]: e for e in entities if type(e).__name__ == "SetEnvironmentVariable"}
    assert set(setters) == {ENV, PUBLICATION_MODE_ENV}
    assert max(i for i, n in enumerate(names) if n == "SetEnvironmentVariable") < names.index("OpaqueFunction")
    value = setters[ENV].args[1]
    assert type(value).__name__ == "LaunchConfiguration" and value.args == ("dds_profile",)
    assert setters[PUBLICATION_MODE_ENV].args[1] == "ASYNCHRONOUS"
    for setter in setters.values():  # both only with a profile
        condition = setter.kwargs["condition"]
        assert type(condition).__name__ == "IfCondition"
        (predicate,) = condition.args
        assert type(predicate).__name__ == "NotEqualsSubstitution"
        assert predicate.args[0].args == ("dds_profile",) and predicate.args[1] == ""


def test_launch_keeps_a_publication_mode_the_user_chose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PUBLICATION_MODE_ENV, "SYNCHRONOUS")
    entities = _launch_description(monkeypatch)
    assert [e.args[0] for e in entities if type(e).__name__ == "SetEnvironmentVariable"] == [ENV]


@pytest.mark.parametrize("name", USER_ENVS)
def test_launch_leaves_a_profile_the_user_set(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "/etc/my_fastdds.xml")
    assert _dds_profile_default(_launch_description(monkeypatch)) == ""


# ------------------------------------------------------------------------------ a full-size frame over real DDS
STALL_S = 3.0  # Fast DDS's default heartbeat: a lost fragment of a large output waits this long for its repair


# The client side runs in a process of its own: Fast DDS reads its XML profile once per process, at the first
# participant, and earlier tests of this pytest process (in-process nodes) made participants without it.
_FULL_FRAME_CLIENT = """
import json, sys
from semantic_depth_ros.ros.bench_node import bench_frame
from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES
from semantic_depth_ros.ros.client import DepthClient
height, width, domain = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
image, info = bench_frame(height, width)
frames = []
with DepthClient(domain_id=domain, outputs=tuple(OUTPUT_MESSAGES)) as client:
    client.wait_connected()
    for stamp in range(1, 7):
        published = client.publish(stamp, image, info)
        done = client.wait(stamp, timeout=60.0)
        if done is None:
            break
        received = client.take(stamp)
        depth, cloud = client.message("depth", received["depth"]), client.message("points", received["points"])
        frames.append({"seconds": done - published, "outputs": sorted(received),
                       "depth": [depth.height, depth.width, len(depth.data)], "points": len(cloud.data)})
print(json.dumps(frames))
"""


def test_node_over_dds_serves_every_output_at_375x1242_without_heartbeat_stalls(tiny_checkpoint: Path) -> None:
    """The node and the client both get the profile of the Fast DDS installed here (the Jazzy and the Kilted run
    of CI); one frame in flight at a time, every output of a KITTI-size frame (14 MB) subscribed.

    Not a speed target: with an empty profile no frame arrived within 60 s here, and a lost fragment waits for the
    3 s default heartbeat; with the profile a frame takes the tiny model's compute time (~0.4-1 s on a busy 2-core
    CPU), so a median below the heartbeat tells the two apart."""
    import json

    from semantic_depth_ros.ros.node_process import random_domain_id

    height, width = KITTI_FULL
    domain = random_domain_id()
    with NodeProcess(tiny_checkpoint, domain_id=domain, device="cpu", precision="fp32", num_threads=1) as node:
        result = subprocess.run([sys.executable, "-c", _FULL_FRAME_CLIENT, str(height), str(width), str(domain)],
                                env=dict(os.environ, **dds_profile_environment(os.environ)), capture_output=True,
                                text=True, timeout=600)
        errors = [line for line in node.log if "XMLPARSER" in line or "deprecated" in line]
    assert result.returncode == 0, result.stderr[-2000:]
    frames = json.loads(result.stdout.splitlines()[-1])
    assert len(frames) == 6, f"frame {len(frames) + 1} incomplete; node log: {node.log[-5:]}"
    for frame in frames:
        assert frame["outputs"] == sorted(OUTPUT_MESSAGES)
        assert frame["depth"] == [height, width, height * width * 4] and frame["points"] == height * width * 16
    assert errors == [] and "XMLPARSER" not in result.stderr and "deprecated" not in result.stderr
    latencies = [frame["seconds"] for frame in frames]
    assert float(np.median(latencies[1:])) < STALL_S, f"per-frame seconds {latencies}"  # the 1st builds caches

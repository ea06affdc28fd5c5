"""What differs between ROS 2 distributions (``ros.distro``): message construction on Humble's generated classes,
the node publishing serialized bytes through Humble's ``Publisher.publish`` contract, parameter callbacks without a
post-set callback (Humble), and the Fast DDS profile's file and variable."""

from __future__ import annotations

import array
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rclpy
import torch
from rcl_interfaces.msg import SetParametersResult
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.messages import camera_info_fields, cloud_fields, image_fields
from semantic_depth_ros.ros import distro
from semantic_depth_ros.ros import messages as ros_messages
from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES
from semantic_depth_ros.ros.node import DepthNode

pytestmark = pytest.mark.ros  # rclpy message classes and an in-process node

REPO = Path(__file__).resolve().parent.parent
HEIGHT, WIDTH = 48, 160
K = (150.0, 0.0, 79.5, 0.0, 140.0, 23.5, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------------ Humble's generated-class contract
def humble_style(real: type) -> type:
    """A message class with the contract of Humble's rosidl_generator_py (humble branch, ``_msg.py.em``): no
    ``_check_fields`` slot, an ``__init__`` that asserts every keyword is a slot, and a ``uint8[]`` setter that keeps
    an ``array.array('B')`` as is (anything else is copied into a new array, counted in ``copies``)."""
    fields = [slot[1:] for slot in real.__slots__ if slot != "_check_fields"]
    defaults = {name: getattr(real(), name) for name in fields}
    byte_sequences = {name for name, kind in real.get_fields_and_field_types().items() if kind == "sequence<uint8>"}

    def __init__(self: Any, **kwargs: Any) -> None:
        assert all("_" + key in self.__slots__ for key in kwargs), \
            "Invalid arguments passed to constructor: %s" % ", ".join(
                sorted(k for k in kwargs if "_" + k not in self.__slots__))
        for name in fields:
            setattr(self, name, kwargs.get(name, defaults[name]))

    def make_property(name: str) -> property:
        def setter(self: Any, value: Any) -> None:
            if name in byte_sequences and not isinstance(value, array.array):
                type(self).copies += 1
                value = array.array("B", value)
            object.__setattr__(self, "_" + name, value)
        return property(lambda self: object.__getattribute__(self, "_" + name), setter)

    namespace: dict[str, Any] = {"__slots__": tuple("_" + name for name in fields), "__init__": __init__,
                                 "copies": 0}
    namespace.update({name: make_property(name) for name in fields})
    return type(f"Humble{real.__name__}", (), namespace)


@pytest.fixture()
def humble_messages(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    """ros.messages builds Humble-style Image, PointCloud2 and CameraInfo."""
    classes = {name: humble_style(real) for name, real in
               (("Image", Image), ("PointCloud2", PointCloud2), ("CameraInfo", CameraInfo))}
    for name, cls in classes.items():
        monkeypatch.setattr(ros_messages, name, cls)
    return classes


def test_humble_classes_refuse_check_fields_and_new_message_does_not_pass_it() -> None:
    humble_image = humble_style(Image)
    with pytest.raises(AssertionError, match="Invalid arguments passed to constructor: check_fields"):
        humble_image(check_fields=True, height=1)
    assert not distro.has_check_fields(humble_image) and distro.has_check_fields(Image)
    assert distro.new_message(humble_image, height=3).height == 3
    assert distro.new_message(Image, height=3)._check_fields is True  # Iron+: the array is kept as is


def _every_output_fields() -> list[Any]:
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 80, (HEIGHT, WIDTH)).astype(np.float32)
    points = rng.normal(size=(HEIGHT, WIDTH, 4)).astype(np.float32)
    intrinsics = Intrinsics(150.0, 140.0, 79.5, 23.5, WIDTH, HEIGHT)
    return [image_fields(depth, "32FC1"), image_fields(rng.integers(0, 19, (HEIGHT, WIDTH), dtype=np.uint8), "mono8"),
            image_fields(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8), "rgb8"),
            cloud_fields(points), camera_info_fields(intrinsics)]


def _fields_of(msg: Any) -> dict[str, Any]:
    names = [slot[1:] for slot in msg.__slots__ if slot != "_check_fields"]
    return {name: bytes(getattr(msg, name)) if name == "data" else getattr(msg, name) for name in names}


def test_every_output_message_is_built_on_humble_with_the_same_fields_and_no_extra_copy(
        humble_messages: dict[str, type]) -> None:
    for fields in _every_output_fields():
        humble = ros_messages.to_msg(Header(frame_id="cam"), fields)
        assert type(humble).__name__.startswith("Humble")
        with pytest.MonkeyPatch.context() as patch:  # the same fields through Jazzy's (this install's) classes
            for name, real in (("Image", Image), ("PointCloud2", PointCloud2), ("CameraInfo", CameraInfo)):
                patch.setattr(ros_messages, name, real)
            jazzy = ros_messages.to_msg(Header(frame_id="cam"), fields)
        humble_fields, jazzy_fields = _fields_of(humble), _fields_of(jazzy)
        assert set(humble_fields) == set(jazzy_fields)
        for name, value in jazzy_fields.items():
            if name in ("fields", "roi", "header"):  # sub-messages: compare what they carry
                assert repr(humble_fields[name]) == repr(value), name
            elif name in ("d", "k", "r", "p"):
                assert list(humble_fields[name]) == list(value), name
            else:
                assert humble_fields[name] == value, name
        if hasattr(fields, "data"):
            assert bytes(humble.data) == np.ascontiguousarray(fields.data).tobytes()
            assert isinstance(humble.data, array.array)
    assert all(cls.copies == 0 for cls in humble_messages.values())  # data went in as the array it was built as


# -------------------------------------------------------------------- the node serving a stream on Humble classes
class _RecordingPublisher:
    """Stands in for an output publisher with one subscriber: keeps what the node publishes, checked the way
    Humble's ``Publisher.publish`` checks it (ros2/rclpy humble, ``rclpy/publisher.py``: a message of the
    publisher's type, or ``bytes`` for ``publish_raw``; anything else is a TypeError)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def get_subscription_count(self) -> int:
        return 1

    def publish(self, msg: Any) -> None:
        if not isinstance(msg, bytes):
            raise TypeError(f"Expected bytes, got {type(msg)}")  # the node publishes only serialized outputs
        self.messages.append(msg)


def _input_image(rgb: np.ndarray, stamp: int) -> Image:
    msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=rgb.shape[1] * 3)
    msg.header.stamp.sec = stamp
    msg.header.frame_id = "cam_optical"
    msg.data = rgb.tobytes()
    return msg


@pytest.fixture()
def node(tiny_checkpoint: Path) -> Iterator[DepthNode]:
    torch.set_num_threads(1)
    context = Context()
    rclpy.init(context=context)
    depth_node = DepthNode("humble_style_node", context=context, parameter_overrides=[
        Parameter("model_path", value=str(tiny_checkpoint)), Parameter("device", value="cpu")])
    yield depth_node
    depth_node.close()
    rclpy.shutdown(context=context)


def test_node_serves_a_stream_through_humbles_publish_contract(node: DepthNode) -> None:
    (channel,) = node.channels.values()
    real_publishers = channel.publishers
    recorders = {key: _RecordingPublisher() for key in real_publishers}
    channel.publishers = recorders
    try:
        info = CameraInfo(width=WIDTH, height=HEIGHT, k=list(K), distortion_model="plumb_bob", d=[0.0] * 5)
        channel._on_camera_info(info)
        rng = np.random.default_rng(1)
        frames = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(3)]
        for stamp, rgb in enumerate(frames, start=1):
            channel._on_image(_input_image(rgb, stamp))
            deadline = time.monotonic() + 60
            while len(recorders["depth"].messages) < stamp and time.monotonic() < deadline:
                time.sleep(0.01)
        deadline = time.monotonic() + 60
        while any(len(r.messages) < len(frames) for r in recorders.values()) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        channel.publishers = real_publishers
    assert set(recorders) == set(OUTPUT_MESSAGES)
    estimator = node.estimator
    camera = Intrinsics(K[0], K[4], K[2], K[5], WIDTH, HEIGHT)
    for index, rgb in enumerate(frames):
        for key, recorder in recorders.items():
            msg = deserialize_message(recorder.messages[index], OUTPUT_MESSAGES[key][1])
            assert msg.header.stamp.sec == index + 1 and msg.header.frame_id == "cam_optical"
        depth = deserialize_message(recorders["depth"].messages[index], Image)
        expected = estimator.estimate(rgb, camera=camera).depth.numpy()
        assert (depth.height, depth.width, depth.encoding) == (HEIGHT, WIDTH, "32FC1")
        np.testing.assert_allclose(np.frombuffer(bytes(depth.data), np.float32).reshape(HEIGHT, WIDTH), expected,
                                   rtol=1e-6, equal_nan=True)
        cloud = deserialize_message(recorders["points"].messages[index], PointCloud2)
        assert len(cloud.data) == HEIGHT * WIDTH * 16 and cloud.point_step == 16


# ------------------------------------------------------------------------------------- parameter callbacks
class _HumbleNode:
    """Humble's Node parameter-callback API: ``add_on_set_parameters_callback`` only."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def add_on_set_parameters_callback(self, callback: Any) -> None:
        self.callbacks.insert(0, callback)


@pytest.mark.parametrize("accept", [True, False])
def test_post_set_callback_runs_after_a_successful_validation_on_humble(accept: bool) -> None:
    node, applied = _HumbleNode(), []
    distro.add_parameter_callbacks(node, lambda params: SetParametersResult(successful=accept, reason="no"),
                                   applied.append)
    (callback,) = node.callbacks
    result = callback([Parameter("point_stride", value=2)])
    assert result.successful is accept
    assert [[p.name for p in params] for params in applied] == ([["point_stride"]] if accept else [])


def test_post_set_callback_is_registered_as_such_where_it_exists() -> None:
    registered: dict[str, Any] = {}

    class JazzyNode(_HumbleNode):
        def add_post_set_parameters_callback(self, callback: Any) -> None:
            registered["post"] = callback

    node = JazzyNode()
    on_set, after = (lambda params: SetParametersResult(successful=True)), (lambda params: None)
    distro.add_parameter_callbacks(node, on_set, after)
    assert node.callbacks == [on_set] and registered["post"] is after


# ----------------------------------------------------------------------------------------- the Fast DDS profile
def _lib(tmp_path: Path, name: str) -> Path:
    directory = tmp_path / name.split(".")[0] / "lib"
    directory.mkdir(parents=True)
    (directory / name).write_bytes(b"")
    return directory


def test_fast_dds_major_is_read_from_the_installed_library(tmp_path: Path) -> None:
    three, two = _lib(tmp_path, "libfastdds.so.3.2.2"), _lib(tmp_path, "libfastrtps.so.2.6.10")
    assert distro.fast_dds_major(library_dirs=[three, two]) == 3
    assert distro.fast_dds_major(library_dirs=[tmp_path / "missing", two, three]) == 2  # the overlay first
    assert distro.fast_dds_major(library_dirs=[tmp_path]) is None
    environ = {"AMENT_PREFIX_PATH": os.pathsep.join([str(three.parent), str(two.parent)])}
    assert distro.fast_dds_major(environ) == 3  # a sourced ROS install (AMENT_PREFIX_PATH)


def test_this_install_is_detected() -> None:
    # the suite runs on the Jazzy wheels (Fast DDS 2.14) and on the Kilted wheels (Fast DDS 3)
    import importlib.metadata

    names = {dist.metadata["Name"] for dist in importlib.metadata.distributions()}
    expected = 3 if "ros-fastdds" in names else 2 if "ros-fastrtps" in names else None
    if expected is None:
        pytest.skip("rclpy does not come from PyPI's ROS wheels here")
    assert distro.fast_dds_major() == expected


@pytest.mark.parametrize(("major", "variable", "name"), [(3, "FASTDDS_DEFAULT_PROFILES_FILE", "fastdds3.xml"),
                                                          (2, "FASTRTPS_DEFAULT_PROFILES_FILE", "fastdds.xml"),
                                                          (None, "FASTRTPS_DEFAULT_PROFILES_FILE", "fastdds.xml")])
def test_profile_environment_names_the_file_of_the_installed_schema_in_its_variable(
        monkeypatch: pytest.MonkeyPatch, major: int | None, variable: str, name: str) -> None:
    monkeypatch.setattr(distro, "fast_dds_major", lambda environ=None, library_dirs=None: major)
    env = distro.dds_profile_environment({})
    # one profile variable (Kilted's rmw also loads a file named by the old one), and asynchronous publication
    assert list(env) == [variable, "RMW_FASTRTPS_PUBLICATION_MODE"]
    assert Path(env[variable]).name == name and Path(env[variable]).is_file()
    assert env["RMW_FASTRTPS_PUBLICATION_MODE"] == "ASYNCHRONOUS"
    for user in distro.USER_DDS_PROFILE_ENVS:
        assert distro.dds_profile_environment({user: "/etc/mine.xml"}) == {}
    for user in ("RMW_FASTRTPS_PUBLICATION_MODE", "RMW_FASTRTPS_USE_QOS_FROM_XML"):  # the user chose the mode
        assert list(distro.dds_profile_environment({user: "SYNCHRONOUS"})) == [variable]


def test_the_two_profiles_differ_only_in_the_schema_element_names() -> None:
    two = (REPO / "config" / "fastdds.xml").read_text()
    three = (REPO / "config" / "fastdds3.xml").read_text()

    def body(text: str) -> str:  # without the comment, which says which schema each file is in
        return text[text.index("-->") + 3:]

    assert "heartbeatPeriod" in body(two) and "heartbeat_period" not in body(two)
    translated = body(two).replace("heartbeatPeriod", "heartbeat_period").replace(
        'xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles"', 'xmlns="http://www.eprosima.com"')
    assert translated == body(three)

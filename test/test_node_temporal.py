"""Temporal fusion with ego-motion in the node over DDS (Image, CameraInfo and Odometry publishers) and in
``infer-bag --temporal`` on a bag of the same drive: both publish the core ``TemporalStage``'s depth and
confidence, frame after frame; a bad Odometry is rejected in one line and its frame runs unfiltered."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from bagtools import MessageFactory, matrix_to_quaternion, write_bag

from semantic_depth_ros import cli
from semantic_depth_ros.data.bag_reader import BagReader
from semantic_depth_ros.data.synthetic.sequence import render_sequence
from semantic_depth_ros.data.tf_chain import invert_rigid, make_transform
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.messages import MessageHeader, camera_info_fields, image_array, image_fields, to_cdr
from semantic_depth_ros.pipeline.stages import FrameContext
from semantic_depth_ros.temporal import TemporalSettings, TemporalStage, world_from_camera
from semantic_depth_ros.ros.client import DepthClient
from semantic_depth_ros.ros.messages import camera_info_msg, image_msg
from semantic_depth_ros.ros.node_process import NodeProcess, random_domain_id
from std_msgs.msg import Header

pytestmark = pytest.mark.ros  # a node process and a DDS client

HEIGHT, WIDTH = 96, 320
FRAMES = 6
BAD = 3  # the frame whose odometry carries a NaN
T0 = 1_700_000_000 * 10**9
SEQUENCE = render_sequence(FRAMES, seed=3, height=HEIGHT, width=WIDTH)
STAMPS = [T0 + frame.stamp_ns for frame in SEQUENCE.frames]
# the camera optical frame (z forward) 1.6 m above and 0.2 m ahead of base_link (x forward), as camera_extrinsic
EXTRINSIC = (0.2, -0.1, 1.6, -0.5, 0.5, -0.5, 0.5)
CHILD_FROM_CAMERA = make_transform(EXTRINSIC[:3], EXTRINSIC[3:])
# odometry: base_link in the world at each frame, from the sequence's true camera poses
ODOMETRY = [frame.world_from_camera @ invert_rigid(CHILD_FROM_CAMERA) for frame in SEQUENCE.frames]
OUTPUTS = ("depth", "confidence")


def _pose_values(world_from_child: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(v) for v in world_from_child[:3, 3]), matrix_to_quaternion(world_from_child[:3, :3])


def _expected(checkpoint: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """(filtered depth, filtered confidence, raw depth) per frame from the core stage, fed the poses the node
    gets from the odometry (none for the bad frame), at the network's resolution and upsampled after it, as the
    node runs it on a camera larger than the network."""
    torch.set_num_threads(1)
    estimator = DepthEstimator(checkpoint, device="cpu", precision="fp32", backend="eager")
    stage = TemporalStage(TemporalSettings(temporal_filter="auto"))
    depths, confidences, raws = [], [], []
    for i, frame in enumerate(SEQUENCE.frames):
        outputs = estimator.estimate(frame.rgb, camera=SEQUENCE.intrinsics, outputs=("depth", "confidence", "semantic"),
                                     defer=True)
        assert outputs.upsampling is not None and outputs.depth.shape[1] < WIDTH  # the filter runs on fewer pixels
        raws.append(outputs.at_output_size(OUTPUTS).depth.numpy())
        position, orientation = _pose_values(ODOMETRY[i])
        pose = None if i == BAD else world_from_camera(make_transform(position, orientation), CHILD_FROM_CAMERA)
        filtered = stage.process(outputs, FrameContext(stamp_ns=STAMPS[i], pose=pose)).at_output_size(OUTPUTS)
        depths.append(filtered.depth.numpy())
        confidences.append(filtered.confidence.numpy())
    return depths, confidences, raws


def _float_image(msg: object) -> np.ndarray:
    assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, "32FC1")
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(HEIGHT, WIDTH)


def _diagnostic_values(client: DepthClient, frames: int, timeout: float = 20.0) -> dict[str, str]:
    """The node status's key/values once it reports ``frames`` filtered frames."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = client.diagnostics
        if message is not None:
            values = {kv.key: kv.value for kv in message.status[0].values}
            if values.get("temporal_frames") == str(frames):
                return values
        time.sleep(0.1)
    raise AssertionError(f"no /diagnostics with temporal_frames {frames} within {timeout:.0f} s")


def _prime(client: DepthClient, image: object, info: object, first_stamp: int, timeout: float = 60.0) -> list[int]:
    """Warm-up frames until one is served (a frame that reaches the node before it discovered our subscriptions is
    not served); their stamps, 1 ns apart, lie long before the drive, so the filter restarts at the drive."""
    sent: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sent.append(first_stamp + len(sent))
        client.publish(sent[-1], image, info)
        if client.wait(sent[-1], timeout=2.0) is not None:
            return sent
    raise AssertionError(f"no warm-up frame was served within {timeout:.0f} s")


def _write_drive(path: Path) -> Path:
    """The same drive as a bag: images, camera_info, the odometry (the bad sample too) and /tf_static
    base_link -> camera_optical."""
    f = MessageFactory("mcap")
    intr = SEQUENCE.intrinsics
    k = np.array([[intr.fx, 0.0, intr.cx], [0.0, intr.fy, intr.cy], [0.0, 0.0, 1.0]])
    messages = [("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 1,
                 f.tf_static([("base_link", "camera_optical", CHILD_FROM_CAMERA)], T0))]
    for i, (frame, stamp) in enumerate(zip(SEQUENCE.frames, STAMPS)):
        odometry = f.odometry(ODOMETRY[i], stamp, "odom", "base_link")
        if i == BAD:
            odometry.pose.pose.position.y = float("nan")
        messages += [("/odom", "nav_msgs/msg/Odometry", stamp, odometry),
                     ("/cam/camera_info", "sensor_msgs/msg/CameraInfo", stamp,
                      f.camera_info(k, WIDTH, HEIGHT, stamp, "camera_optical")),
                     ("/cam/image_raw", "sensor_msgs/msg/Image", stamp, f.image(frame.rgb, stamp, "camera_optical"))]
    return write_bag(path, "mcap", f, messages)


def test_node_and_infer_bag_publish_the_core_filter_output_with_odometry(tiny_checkpoint: Path, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture) -> None:
    header_free = Header()
    infos = camera_info_msg(header_free, camera_info_fields(SEQUENCE.intrinsics))
    parameters = {"temporal_filter": "on", "odom_topic": "/odom", "odom_wait_s": "1.0",
                  "camera_extrinsic": "[" + ",".join(repr(float(v)) for v in EXTRINSIC) + "]"}
    domain = random_domain_id()
    published: list[dict[str, np.ndarray]] = []
    with NodeProcess(tiny_checkpoint, domain_id=domain, device="cpu", precision="fp32", num_threads=1,
                     parameters=parameters) as node, \
            DepthClient(domain_id=domain, outputs=OUTPUTS, diagnostics=True, odometry_topic="/odom") as client:
        client.wait_connected()
        client.wait_odometry_connected()
        warmup = _prime(client, image_msg(header_free, image_fields(SEQUENCE.frames[0].rgb, "rgb8")), infos,
                        T0 - 10**10)
        for i, (frame, stamp) in enumerate(zip(SEQUENCE.frames, STAMPS)):
            position, orientation = _pose_values(ODOMETRY[i])
            if i == BAD:
                position = (position[0], float("nan"), position[2])
            client.publish_odometry(stamp, position, orientation)
            client.publish(stamp, image_msg(header_free, image_fields(frame.rgb, "rgb8")), infos)
            assert client.wait(stamp, timeout=60.0) is not None, node.log[-5:]
            received = client.take(stamp)
            for key in OUTPUTS:  # over DDS: exactly the message core's bytes (the very bytes infer-bag writes)
                msg = client.message(key, received[key])
                head = MessageHeader(msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id)
                assert received[key].data == to_cdr(image_fields(_float_image(msg).copy(), "32FC1"), head), key
            published.append({key: _float_image(client.message(key, received[key])) for key in OUTPUTS})
        served = sum(bool(client.take(stamp)) for stamp in warmup)  # all arrived: outputs come in frame order
        values = _diagnostic_values(client, FRAMES + served)
    rejected = [line for line in node.log if "rejected /odom message" in line]
    assert len(rejected) == 1, node.log[-10:]
    assert f"at stamp {STAMPS[BAD] // 10**9}.{STAMPS[BAD] % 10**9:09d}: odometry position = " in rejected[0]
    assert "must be finite; frames near it run without a pose" in rejected[0]
    assert values["temporal_filter"] == "auto"
    assert values["temporal_frames_without_pose"] == str(1 + served)  # the bad frame, and the warm-up before odometry
    assert values["odometry_rejected"] == "1" and values["odometry_received"] == str(FRAMES - 1)
    assert 0.0 < float(values["temporal_fused_fraction"]) <= 1.0
    assert float(values["temporal_ms_p50"]) > 0.0 and "road_scale_ms_p50" not in values  # the stage that is on

    depths, confidences, raws = _expected(tiny_checkpoint)
    for i in range(FRAMES):
        np.testing.assert_allclose(published[i]["depth"], depths[i], rtol=1e-4, equal_nan=True, err_msg=f"frame {i}")
        np.testing.assert_allclose(published[i]["confidence"], confidences[i], rtol=1e-4, atol=1e-6)
    # the frames next to the bad odometry ran unfiltered (restarted); the others were fused with their history
    for i in (0, BAD, BAD + 1):
        np.testing.assert_allclose(published[i]["depth"], raws[i], rtol=1e-4, equal_nan=True)
    for i in (1, 2, BAD + 2):
        assert np.nanmax(np.abs(published[i]["depth"] / raws[i] - 1.0)) > 1e-3, f"frame {i} was not fused"

    bag, out = _write_drive(tmp_path / "drive"), tmp_path / "out"
    code = cli.main(["infer-bag", str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint),
                     "--out", str(out), "--outputs", "depth,confidence", "--device", "cpu", "--precision", "fp32",
                     "--batch", "4", "--no-progress", "--temporal", "--odom-topic", "/odom"])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-3].startswith("temporal filter: temporal_filter auto, temporal_frames 6, ")
    assert "temporal_frames_without_pose 1" in lines[-3]
    assert lines[-2] == "odometry: 5 poses, 1 rejected; frames without a pose 1"
    with BagReader(out) as reader:
        replayed = {topic: [image_array(reader.deserialize(raw, c.msgtype))
                            for c, _, raw in reader.raw_messages(reader.connections(topic, {"sensor_msgs/msg/Image"}))]
                    for topic in ("/cam/depth", "/cam/depth/confidence")}
    for i in range(FRAMES):  # the replay equals the live node
        np.testing.assert_allclose(replayed["/cam/depth"][i], published[i]["depth"], rtol=1e-4, equal_nan=True)
        np.testing.assert_allclose(replayed["/cam/depth/confidence"][i], published[i]["confidence"], rtol=1e-4,
                                   atol=1e-6)

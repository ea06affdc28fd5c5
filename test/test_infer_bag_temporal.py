"""`infer-bag --temporal`: the camera mounting from /tf_static or --camera-extrinsic, frames in stamp order,
option errors in one line. (The node equals the replay frame by frame: test_node_temporal.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bagtools import MessageFactory, write_bag

from semantic_depth_ros import cli
from semantic_depth_ros.data.bag_reader import BagReader
from semantic_depth_ros.data.synthetic.sequence import render_sequence
from semantic_depth_ros.data.tf_chain import invert_rigid, make_transform
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.messages import image_array
from semantic_depth_ros.pipeline.stages import FrameContext
from semantic_depth_ros.temporal import TemporalSettings, TemporalStage

HEIGHT, WIDTH = 48, 160
T0 = 1_700_000_000 * 10**9
SEQUENCE = render_sequence(4, seed=5, height=HEIGHT, width=WIDTH)
MOUNT = make_transform((0.0, 0.0, 1.5), (-0.5, 0.5, -0.5, 0.5))  # optical frame in base_link, looking along +x


def _drive(path: Path, *, child: str = "base_link", swap: bool = False, tf_static: bool = True) -> Path:
    """Images, camera_info, odometry of ``child`` and /tf_static base_link -> camera_optical; ``swap``: the bag
    stores frames 1 and 2 in the other order (arrival order is not stamp order)."""
    f = MessageFactory("mcap")
    intr = SEQUENCE.intrinsics
    k = np.array([[intr.fx, 0.0, intr.cx], [0.0, intr.fy, intr.cy], [0.0, 0.0, 1.0]])
    messages = [("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 1, f.tf_static([("base_link", "camera_optical", MOUNT)]))]
    messages = messages if tf_static else []
    for i, frame in enumerate(SEQUENCE.frames):
        stamp = T0 + frame.stamp_ns
        bag_time = T0 + SEQUENCE.frames[{1: 2, 2: 1}.get(i, i) if swap else i].stamp_ns
        world_from_child = frame.world_from_camera @ invert_rigid(MOUNT)
        messages += [("/odom", "nav_msgs/msg/Odometry", stamp, f.odometry(world_from_child, stamp, "odom", child)),
                     ("/cam/camera_info", "sensor_msgs/msg/CameraInfo", bag_time,
                      f.camera_info(k, WIDTH, HEIGHT, stamp, "camera_optical")),
                     ("/cam/image_raw", "sensor_msgs/msg/Image", bag_time + 1,
                      f.image(frame.rgb, stamp, "camera_optical"))]
    return write_bag(path, "mcap", f, sorted(messages, key=lambda m: m[2]))


def _run(bag: Path, out: Path, checkpoint: Path, *extra: str) -> int:
    return cli.main(["infer-bag", str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(checkpoint),
                     "--out", str(out), "--outputs", "depth", "--device", "cpu", "--precision", "fp32",
                     "--batch", "2", "--no-progress", *extra])


def _written(out: Path) -> list[tuple[int, np.ndarray]]:
    with BagReader(out) as bag:
        return [(msg.msg.header.stamp.sec * 10**9 + msg.msg.header.stamp.nanosec, image_array(msg.msg))
                for msg in bag.messages(bag.connections("/cam/depth", {"sensor_msgs/msg/Image"}))]


def _core(checkpoint: Path, poses: bool) -> list[np.ndarray]:
    estimator = DepthEstimator(checkpoint, device="cpu", precision="fp32", backend="eager")
    stage = TemporalStage(TemporalSettings(temporal_filter="auto" if poses else "static"))
    result = []
    for frame in SEQUENCE.frames:
        outputs = estimator.estimate(frame.rgb, camera=SEQUENCE.intrinsics, outputs=("depth", "confidence", "semantic"))
        context = FrameContext(T0 + frame.stamp_ns, frame.world_from_camera if poses else None)
        result.append(stage.process(outputs, context).depth.numpy())
    return result


def test_the_mounting_comes_from_tf_static_or_the_option_and_a_missing_path_is_one_line(
        tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    want = _core(tiny_checkpoint, poses=True)
    assert _run(_drive(tmp_path / "a"), tmp_path / "a_out", tiny_checkpoint, "--temporal", "--odom-topic", "/odom") == 0
    assert capsys.readouterr().out.splitlines()[-2] == "odometry: 4 poses, 0 rejected; frames without a pose 0"
    for (stamp, depth), expected, frame in zip(_written(tmp_path / "a_out"), want, SEQUENCE.frames):
        assert stamp == T0 + frame.stamp_ns
        np.testing.assert_allclose(depth, expected, rtol=1e-4, equal_nan=True)

    bag = _drive(tmp_path / "b", child="base_footprint")  # odometry of a frame /tf_static does not connect
    assert _run(bag, tmp_path / "b_out", tiny_checkpoint, "--temporal", "--odom-topic", "/odom") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no transform from image frame 'camera_optical' to odometry child frame "
                          "'base_footprint' in /tf_static (") and err.endswith("pass --camera-extrinsic")
    assert "\n" not in err and not (tmp_path / "b_out").exists()
    extrinsic = ["0", "0", "1.5", "-0.5", "0.5", "-0.5", "0.5"]  # what /tf_static said for base_link
    assert _run(bag, tmp_path / "b_out", tiny_checkpoint, "--temporal", "--odom-topic", "/odom",
                "--camera-extrinsic", *extrinsic) == 0
    for (_, depth), expected in zip(_written(tmp_path / "b_out"), want):
        np.testing.assert_allclose(depth, expected, rtol=1e-4, equal_nan=True)


def test_frames_run_in_stamp_order_when_the_bag_stores_them_out_of_order(
        tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    assert _run(_drive(tmp_path / "drive", swap=True), tmp_path / "out", tiny_checkpoint, "--temporal", "static") == 0
    filter_line = capsys.readouterr().out.splitlines()[-2]
    assert "temporal_frames 4" in filter_line and "temporal_resets 0" in filter_line  # no "stamp not after"
    written = _written(tmp_path / "out")  # in bag-time order: each output keeps its input image's bag time
    stamps = [T0 + frame.stamp_ns for frame in SEQUENCE.frames]
    assert [stamp for stamp, _ in written] == [stamps[0], stamps[2], stamps[1], stamps[3]]
    by_stamp = dict(written)
    for stamp, expected in zip(stamps, _core(tiny_checkpoint, poses=False)):  # filtered in stamp order
        np.testing.assert_allclose(by_stamp[stamp], expected, rtol=1e-4, equal_nan=True)


def test_a_drive_without_tf_static_needs_the_extrinsic_in_one_line(
        tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    bag = _drive(tmp_path / "drive", tf_static=False)
    assert _run(bag, tmp_path / "out", tiny_checkpoint, "--temporal", "--odom-topic", "/odom") == 1
    err = capsys.readouterr().err.strip()
    assert err == ("error: no transform from image frame 'camera_optical' to odometry child frame 'base_link' in "
                   "/tf_static (frame 'camera_optical' not in the transform tree (frames: none)); pass "
                   "--camera-extrinsic")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (("--odom-topic", "/odom"), "error: --odom-topic is an option of --temporal, which is not given"),
    (("--temporal-memory", "4"), "error: --temporal-memory is an option of --temporal, which is not given"),
    (("--temporal", "--camera-extrinsic", "0", "0", "0", "0", "0", "0", "1"),
     "error: --camera-extrinsic needs --odom-topic"),
    (("--temporal", "static", "--odom-topic", "/odom"), "error: --odom-topic is unused with --temporal static"),
    (("--temporal", "--odom-topic", "/odom", "--camera-extrinsic", "0", "0", "0", "0", "0", "0", "2"),
     "error: camera_extrinsic quaternion (qx, qy, qz, qw) = [0.0, 0.0, 0.0, 2.0] is not a unit quaternion"),
    (("--temporal", "--temporal-memory", "0.5"), "error: temporal_memory = 0.5 must be in [1, 100] frames"),
    (("--temporal", "--odom-topic", "/cam/camera_info"),
     "error: topic '/cam/camera_info' has type sensor_msgs/msg/CameraInfo, expected nav_msgs/msg/Odometry"),
])
def test_temporal_options_are_checked_in_one_line(tmp_path: Path, tiny_checkpoint: Path,
                                                  capsys: pytest.CaptureFixture, extra: tuple[str, ...],
                                                  message: str) -> None:
    code = _run(_drive(tmp_path / "drive"), tmp_path / "out", tiny_checkpoint, *extra)
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(message) and "\n" not in err, err
    assert not (tmp_path / "out").exists()

"""`semantic-depth infer-bag`: generated drives (ROS 2 sqlite3 / mcap, ROS 1; raw and compressed) replayed offline,
the output bag read back and checked against the estimator, the message core, the node's rclpy messages and the
Eigen metrics; bad input, interrupted runs and --overwrite."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from bagtools import MessageFactory
from drive_bags import (COUNT, FRAME_NS, FRAMES, HEIGHT, SCAN_DELAY_NS, T0, WIDTH, k_matrix, make_drive,
                        read_back)

from semantic_depth_ros import cli
from semantic_depth_ros.data.bag_reader import BagReader
from semantic_depth_ros.data.projection import project_points_to_depth, transform_points
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.evaluation.metrics import DEPTH_METRIC_KEYS, compute_depth_metrics
from semantic_depth_ros.geometry.intrinsics import CameraModel, Intrinsics
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.messages import MessageHeader, cloud_array, image_array, to_cdr
from semantic_depth_ros.pipeline import CameraOutputs, CloudLayout, OutputPlan
from semantic_depth_ros.replay import pipeline
from semantic_depth_ros.replay.bag_writer import TYPESTORE, msgtype_of
from semantic_depth_ros.replay.frames import Selection
from semantic_depth_ros.replay.pipeline import ReplayOptions, replay_bag
from semantic_depth_ros.replay.topics import image_namespace, parse_outputs

@pytest.fixture(scope="module")
def estimator(tiny_checkpoint: Path) -> DepthEstimator:
    return DepthEstimator(tiny_checkpoint, device="cpu", precision="fp32", backend="eager")


def run_cli(*argv: str) -> int:
    return cli.main(["infer-bag", *argv])


def expected_depth(estimator: DepthEstimator, frame) -> np.ndarray:
    return estimator.estimate(frame.rgb, camera=frame.intrinsics, outputs=("depth",)).depth.numpy()


@pytest.mark.parametrize("storage,image,out_storage", [("sqlite3", "raw", "mcap"), ("mcap", "compressed", "sqlite3"),
                                                       ("ros1", "raw", "mcap"), ("ros1", "compressed", "mcap")])
def test_replay_writes_the_node_outputs(tmp_path, tiny_checkpoint, estimator, capsys, storage, image, out_storage):
    bag = make_drive(tmp_path, storage, image=image)
    out = tmp_path / "out"
    topic = "/cam/image_raw" + ("/compressed" if image == "compressed" else "")
    code = run_cli(str(bag), "--image-topic", topic, "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                   "--outputs", "depth,points,semantic", "--device", "cpu", "--precision", "fp32", "--batch", "3",
                   "--storage", out_storage, "--copy-input", "--no-progress")
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"frames read {COUNT}, written {COUNT}, skipped 0;") and str(out) in last
    assert list((tmp_path).glob("out.partial-*")) == []
    assert any(out.glob("*.mcap" if out_storage == "mcap" else "*.db3"))
    got = read_back(out)
    copied_image_type = "sensor_msgs/msg/CompressedImage" if image == "compressed" else "sensor_msgs/msg/Image"
    assert {t: len(m) for t, m in got.items()} == {
        "/cam/depth": COUNT, "/cam/depth/camera_info": COUNT, "/cam/points": COUNT, "/cam/semantic": COUNT,
        topic: COUNT, "/cam/camera_info": COUNT, "/tf_static": 1}
    with BagReader(out) as reader:
        assert reader.topics()[topic] == copied_image_type
    for i, frame in enumerate(FRAMES):
        stamp = T0 + i * FRAME_NS
        depth_time, depth_msg, _ = got["/cam/depth"][i]
        info_msg = got["/cam/depth/camera_info"][i][1]
        cloud_msg = got["/cam/points"][i][1]
        for msg in (depth_msg, info_msg, cloud_msg, got["/cam/semantic"][i][1]):
            assert (msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, msg.header.frame_id) == (
                stamp, "camera_optical")
        assert depth_time == stamp
        depth = image_array(depth_msg)
        want = expected_depth(estimator, frame)
        np.testing.assert_array_equal(np.isnan(depth), np.isnan(want))
        np.testing.assert_allclose(depth, want, rtol=1e-5, equal_nan=True)
        assert (info_msg.width, info_msg.height) == (WIDTH, HEIGHT)
        np.testing.assert_allclose(info_msg.k, k_matrix(frame.intrinsics).reshape(-1))
        np.testing.assert_array_equal(info_msg.d, np.zeros(5))
        # points = back-projection of the published depth with the published depth/camera_info
        fx, fy, cx, cy = info_msg.k[0], info_msg.k[4], info_msg.k[2], info_msg.k[5]
        v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
        xyz = np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], axis=-1)
        points = cloud_array(cloud_msg)
        np.testing.assert_allclose(points[..., :3], xyz, atol=1e-4, equal_nan=True)
        # the copies (ROS 1 input converted to the ROS 2 types) carry the input's header and content
        copied_info = got["/cam/camera_info"][i][1]
        np.testing.assert_array_equal(copied_info.k, k_matrix(frame.intrinsics).reshape(-1))
        copied = got[topic][i][1]
        assert (copied.header.stamp.sec * 10**9 + copied.header.stamp.nanosec, copied.header.frame_id) == (
            stamp, "camera_optical")
        if image == "raw":
            np.testing.assert_array_equal(image_array(copied), frame.rgb)


def test_node_and_replay_messages_are_byte_identical(tmp_path, estimator):
    bag = make_drive(tmp_path, "mcap")
    out = tmp_path / "out"
    wanted = parse_outputs("depth,points,semantic,semantic_color,confidence,depth_color")
    cloud = CloudLayout("xyzrgblc", drop_labels=(10,), stride=2)  # the node's point_fields, ..._drop_labels, _stride
    options = ReplayOptions(image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info", outputs=wanted,
                            cloud=cloud, batch=1, progress=False)
    replay_bag(bag, out, estimator, options)
    got = read_back(out)
    frame = FRAMES[1]
    # the node's path for the same frame: its camera's plan -> estimate -> CameraOutputs.messages -> to_cdr (what
    # CameraChannel.publish hands to rclpy; test_cdr: these bytes are rclpy's and rosbags' serialization)
    stamp = T0 + FRAME_NS
    camera = CameraOutputs(OutputPlan(wanted, cloud))
    outputs = estimator.estimate(frame.rgb, camera=frame.intrinsics, outputs=camera.estimator_outputs(True))
    fields = camera.messages(outputs, stamp, depth_range=estimator.depth_range()).fields
    header = MessageHeader(stamp // 10**9, stamp % 10**9, "camera_optical")
    topics = {"depth": "/cam/depth", "depth_info": "/cam/depth/camera_info", "points": "/cam/points",
              "semantic": "/cam/semantic", "semantic_color": "/cam/semantic/color",
              "confidence": "/cam/depth/confidence", "depth_color": "/cam/depth/color"}
    assert set(fields) == set(topics)
    for key, message_fields in fields.items():
        stored = got[topics[key]][1][2]
        assert to_cdr(message_fields, header) == stored, key
        msgtype = msgtype_of(message_fields)
        assert bytes(TYPESTORE.serialize_cdr(TYPESTORE.deserialize_cdr(stored, msgtype), msgtype)) == stored, key
        if hasattr(message_fields, "data"):
            assert message_fields.data.tobytes() == bytes(got[topics[key]][1][1].data)


def test_scoring_against_lidar(tmp_path, tiny_checkpoint, estimator):
    bag = make_drive(tmp_path, "sqlite3")
    out = tmp_path / "scored"
    code = run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "semantic", "--device", "cpu", "--precision", "fp32",
                   "--lidar-topic", "/points", "--no-progress")
    assert code == 0
    assert set(read_back(out)) == {"/cam/semantic"}
    report = json.loads((out / "metrics.json").read_text())
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert len(rows) == COUNT and report["frames_scored"] == COUNT
    per_cap: dict[str, list[dict[str, float]]] = {"50": [], "80": []}
    for i, frame in enumerate(FRAMES):
        lidar = project_points_to_depth(transform_points(frame.lidar_to_camera, frame.lidar_points),
                                        k_matrix(frame.intrinsics), WIDTH, HEIGHT)
        pred = expected_depth(estimator, frame)
        for cap in per_cap:
            metrics = compute_depth_metrics(pred, lidar, min_depth=1e-3, max_depth=float(cap), crop="none")
            per_cap[cap].append(metrics)
            assert float(rows[i][f"abs_rel@{cap}"]) == pytest.approx(metrics["abs_rel"], rel=1e-4)
    for cap, frames in per_cap.items():
        drive = report["drive"][cap]
        assert drive["count"] == COUNT
        for key in DEPTH_METRIC_KEYS:
            assert drive[key] == pytest.approx(np.mean([m[key] for m in frames]), rel=1e-4), (cap, key)
    text = (out / "report.md").read_text()
    assert "Worst frames" in text and "| drive (4 frames) | 80 m |" in text


def test_corrupt_images_are_skipped_and_counted(tmp_path, tiny_checkpoint, capsys, caplog):
    bag = make_drive(tmp_path, "sqlite3", corrupt=(1, 2))
    out = tmp_path / "out"
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--device", "cpu", "--precision", "fp32", "--no-progress") == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(
        f"frames read {COUNT}, written {COUNT - 2}, skipped 2;")
    warnings = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping /cam/image_raw")]
    assert len(warnings) == 2 and warnings[0].startswith("skipping /cam/image_raw at 0.100 s:")
    assert len(read_back(out)["/cam/depth"]) == COUNT - 2


def test_corrupt_compressed_image_is_skipped(tmp_path, estimator):
    bag = make_drive(tmp_path, "mcap", image="compressed", corrupt=(0,))
    options = ReplayOptions(image_topic="/cam/image_raw/compressed", camera_info_topic="/cam/camera_info",
                            outputs=parse_outputs("depth"), progress=False)
    summary = replay_bag(bag, tmp_path / "out", estimator, options)
    assert (summary.read, summary.written, summary.skipped) == (COUNT, COUNT - 1, 1)


def test_selection_every_start_end(tmp_path, estimator):
    bag = make_drive(tmp_path, "mcap")
    options = ReplayOptions(image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info",
                            outputs=parse_outputs("depth"), progress=False,
                            selection=Selection(every=2, start_s=0.05, end_s=10.0))
    replay_bag(bag, tmp_path / "out", estimator, options)
    stamps = [t for t, _, _ in read_back(tmp_path / "out")["/cam/depth"]]
    assert stamps == [T0 + 1 * FRAME_NS, T0 + 3 * FRAME_NS]


def test_interrupted_run_leaves_no_bag(tmp_path, estimator, monkeypatch):
    bag = make_drive(tmp_path, "mcap")
    out = tmp_path / "out"
    calls = {"n": 0}
    real = pipeline.serialize

    def failing(head, fields):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("disk on fire")
        return real(head, fields)

    monkeypatch.setattr(pipeline, "serialize", failing)
    options = ReplayOptions(image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info",
                            outputs=parse_outputs("depth,points"), batch=1, progress=False)
    with pytest.raises(RuntimeError, match="disk on fire"):
        replay_bag(bag, out, estimator, options)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drive"]


def test_killed_process_leaves_no_bag(tmp_path, tiny_checkpoint):
    import os
    import signal
    import subprocess
    import sys
    import time

    bag = make_drive(tmp_path, "mcap")
    out = tmp_path / "out"
    script = ("import sys, time\n"
              "from semantic_depth_ros.replay import pipeline\n"
              "from semantic_depth_ros import cli\n"
              "real = pipeline.serialize\n"
              "def slow(head, fields):\n"
              "    time.sleep(60)\n"
              "    return real(head, fields)\n"
              "pipeline.serialize = slow\n"
              "sys.exit(cli.main(sys.argv[1:]))\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    process = subprocess.Popen([sys.executable, "-c", script, "infer-bag", str(bag), "--image-topic",
                                "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
                                "--device", "cpu", "--no-progress"], env=env)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("out.partial-*")) and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.2)
        assert list(tmp_path.glob("out.partial-*")), "the run never started writing"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not out.exists()


def test_existing_output_is_refused_unless_overwrite(tmp_path, tiny_checkpoint, capsys):
    bag = make_drive(tmp_path, "sqlite3")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    argv = [str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out", str(out),
            "--device", "cpu", "--no-progress"]
    assert run_cli(*argv) == 1
    assert capsys.readouterr().err.strip() == f"error: --out {out} already exists; pass --overwrite to replace it"
    assert run_cli(*argv, "--overwrite") == 0
    assert not (out / "old.txt").exists()
    assert len(read_back(out)["/cam/depth"]) == COUNT


@pytest.mark.parametrize("argv,message", [
    (["--image-topic", "/nope"], "error: topic '/nope' not found in bag"),
    (["--image-topic", "/cam/image_raw", "--camera-info-topic", "/missing"], "error: topic '/missing' not found"),
    (["--image-topic", "/cam/image_raw", "--lidar-topic", "/cam/camera_info"],
     "error: topic '/cam/camera_info' has type sensor_msgs/msg/CameraInfo, expected sensor_msgs/msg/PointCloud2"),
    (["--image-topic", "/cam/image_raw", "--outputs", "depth,colour"], "error: --outputs: unknown output 'colour'"),
])
def test_user_errors_are_one_line(tmp_path, tiny_checkpoint, capsys, argv, message):
    bag = make_drive(tmp_path, "sqlite3")
    code = run_cli(str(bag), "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "out"), "--device", "cpu",
                   "--no-progress", *argv)
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith(message) and "\n" not in err
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))


def test_points_need_camera_info_but_semantic_does_not(tmp_path, tiny_checkpoint, estimator, capsys):
    bag = make_drive(tmp_path, "sqlite3", camera_info=False)
    argv = [str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--device", "cpu",
            "--no-progress"]
    assert run_cli(*argv, "--out", str(tmp_path / "a"), "--outputs", "points") == 1
    assert capsys.readouterr().err.strip().startswith("error: topic '/cam/camera_info' not found in bag")
    assert run_cli(*argv, "--out", str(tmp_path / "b"), "--outputs", "semantic,semantic_color") == 0
    assert {t: len(m) for t, m in read_back(tmp_path / "b").items()} == {"/cam/semantic": COUNT,
                                                                         "/cam/semantic/color": COUNT}


def test_topic_names_and_outputs():
    assert image_namespace("/cam/image_raw") == "/cam"
    assert image_namespace("/cam/image_raw/compressed") == "/cam"
    assert image_namespace("/vehicle/front/image") == "/vehicle/front"
    assert image_namespace("/image") == ""
    assert parse_outputs("points") == ("depth_info", "points")
    assert parse_outputs("semantic,depth") == ("depth", "depth_info", "semantic")
    with pytest.raises(ConfigError, match="names no output"):
        parse_outputs(" , ")


def test_truncated_message_is_skipped(tmp_path, estimator):
    from rosbags.rosbag2 import StoragePlugin, Writer

    f = MessageFactory("mcap")
    path = tmp_path / "truncated"
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        image = writer.add_connection("/cam/image_raw", "sensor_msgs/msg/Image", typestore=f.typestore)
        info = writer.add_connection("/cam/camera_info", "sensor_msgs/msg/CameraInfo", typestore=f.typestore)
        for i, frame in enumerate(FRAMES):
            stamp = T0 + i * FRAME_NS
            writer.write(info, stamp, f.typestore.serialize_cdr(
                f.camera_info(k_matrix(frame.intrinsics), WIDTH, HEIGHT, stamp, "cam"), "sensor_msgs/msg/CameraInfo"))
            raw = bytes(f.typestore.serialize_cdr(f.image(frame.rgb, stamp, "cam"), "sensor_msgs/msg/Image"))
            writer.write(image, stamp, raw[:40] if i == 2 else raw)
    options = ReplayOptions(image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info",
                            outputs=parse_outputs("depth"), progress=False)
    summary = replay_bag(path, tmp_path / "out", estimator, options)
    assert (summary.read, summary.written, summary.skipped) == (COUNT, COUNT - 1, 1)
    assert summary.skipped_lines == ["skipping /cam/image_raw at 0.200 s: cannot deserialize sensor_msgs/msg/Image: "
                                     + summary.skipped_lines[0].rsplit(": ", 1)[1]]
    stamps = [t for t, _, _ in read_back(tmp_path / "out")["/cam/depth"]]
    assert stamps == [T0 + i * FRAME_NS for i in (0, 1, 3)]


LENS = (-0.25, 0.06, 0.001, -0.001, 0.0)  # plumb_bob barrel distortion


def test_replay_removes_lens_distortion_like_the_node(tmp_path, tiny_checkpoint, estimator, capsys):
    """A camera_info with a non-zero D: depth is the estimator's on the undistorted image (the camera model
    passed whole), and depth/camera_info describes the pinhole result (same K, D all zeros)."""
    bag = make_drive(tmp_path, "mcap", distortion=LENS)
    out = tmp_path / "out"
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "depth", "--device", "cpu", "--precision", "fp32", "--no-progress") == 0
    got = read_back(out)
    for i, frame in enumerate(FRAMES):
        camera = CameraModel(frame.intrinsics, "plumb_bob", LENS)
        want = estimator.estimate(frame.rgb, camera=camera, outputs=("depth",)).depth.numpy()
        plain = expected_depth(estimator, frame)
        depth = image_array(got["/cam/depth"][i][1])
        np.testing.assert_allclose(depth, want, rtol=1e-5, equal_nan=True)
        assert not np.allclose(depth, plain, rtol=1e-3, equal_nan=True)  # the undistortion really happened
        info = got["/cam/depth/camera_info"][i][1]
        assert list(info.d) == [0.0] * 5 and info.distortion_model == "plumb_bob"
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), k_matrix(frame.intrinsics))


def test_replay_of_a_rectified_topic_takes_p_and_does_not_undistort(tmp_path, tiny_checkpoint, estimator, capsys):
    """image_rect beside the raw camera_info (D non-zero, P != K): --input-rectified auto takes P as the camera and
    undistorts nothing, as the node; --input-rectified false undistorts with K and D as before."""
    intr = FRAMES[0].intrinsics
    p_intr = Intrinsics(intr.fx * 0.9, intr.fy * 0.9, intr.cx + 1.5, intr.cy - 1.0, WIDTH, HEIGHT)
    projection = np.hstack([k_matrix(p_intr), np.zeros((3, 1))])
    bag = make_drive(tmp_path, "mcap", distortion=LENS, image_topic="/cam/image_rect", projection=projection)
    common = ["--image-topic", "/cam/image_rect", "--camera-info-topic", "/cam/camera_info", "--checkpoint",
              str(tiny_checkpoint), "--outputs", "depth", "--device", "cpu", "--precision", "fp32", "--no-progress"]
    assert run_cli(str(bag), *common, "--out", str(tmp_path / "rect")) == 0
    assert "input /cam/image_rect taken as rectified (--input-rectified auto)" in capsys.readouterr().out
    assert run_cli(str(bag), *common, "--out", str(tmp_path / "raw"), "--input-rectified", "false") == 0
    rect, raw = read_back(tmp_path / "rect"), read_back(tmp_path / "raw")
    for i, frame in enumerate(FRAMES):
        p_camera = Intrinsics(p_intr.fx, p_intr.fy, p_intr.cx, p_intr.cy, WIDTH, HEIGHT)
        want = estimator.estimate(frame.rgb, camera=p_camera, outputs=("depth",)).depth.numpy()
        np.testing.assert_allclose(image_array(rect["/cam/depth"][i][1]), want, rtol=1e-5, equal_nan=True)
        np.testing.assert_allclose(np.asarray(rect["/cam/depth/camera_info"][i][1].k).reshape(3, 3),
                                   k_matrix(p_intr))
        undistorted = estimator.estimate(frame.rgb, camera=CameraModel(frame.intrinsics, "plumb_bob", LENS),
                                         outputs=("depth",)).depth.numpy()
        np.testing.assert_allclose(image_array(raw["/cam/depth"][i][1]), undistorted, rtol=1e-5, equal_nan=True)


def test_replay_skips_images_of_an_unusable_lens_model(tmp_path, tiny_checkpoint, capsys, caplog):
    bag = make_drive(tmp_path, "sqlite3", distortion=(0.1, 0.0, 0.0))  # plumb_bob needs 5 coefficients
    out = tmp_path / "out"
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "depth", "--device", "cpu", "--precision", "fp32", "--no-progress") == 0
    captured = capsys.readouterr()
    assert f"skipped {COUNT}" in captured.out.strip().splitlines()[-1]
    assert "distortion model 'plumb_bob' needs 5 coefficients in D, got 3" in caplog.text
    scored = tmp_path / "scored"  # scoring too skips those images instead of stopping the run
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(scored), "--outputs", "depth", "--device", "cpu", "--lidar-topic", "/points",
                   "--no-progress") == 0
    assert f"skipped {COUNT}" in capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads((scored / "metrics.json").read_text())["frames_scored"] == 0


def test_replay_writes_labelled_points_like_the_node(tmp_path, tiny_checkpoint, estimator):
    """--point-fields xyzrgbl --drop-labels: the node's semantic cloud layout (label uint32 at offset 16), labels
    equal to the semantic image written beside it, dropped classes NaN."""
    bag = make_drive(tmp_path, "mcap")
    out = tmp_path / "out"
    semantic = estimator.estimate(FRAMES[0].rgb, camera=FRAMES[0].intrinsics, outputs=("semantic",)).semantic
    dropped = int(np.bincount(semantic.numpy().ravel()).argmax())  # the most frequent class of the first frame
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "points,semantic", "--point-fields", "xyzrgbl", "--drop-labels",
                   str(dropped), "--device", "cpu", "--precision", "fp32", "--no-progress") == 0
    got = read_back(out)
    cloud = got["/cam/points"][0][1]
    assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
        ("x", 0, 7), ("y", 4, 7), ("z", 8, 7), ("rgb", 12, 7), ("label", 16, 6)]
    assert cloud.point_step == 20
    labels = np.frombuffer(bytes(cloud.data), dtype=np.uint32).reshape(cloud.height, cloud.width, 5)[..., 4]
    np.testing.assert_array_equal(labels, image_array(got["/cam/semantic"][0][1]))
    xyz = np.frombuffer(bytes(cloud.data), dtype=np.float32).reshape(cloud.height, cloud.width, 5)[..., :3]
    assert np.isnan(xyz[labels == dropped]).all()
    assert np.isfinite(xyz[labels != dropped]).any()


def test_drop_labels_option_names_the_bad_value(tmp_path, tiny_checkpoint, capsys):
    bag = make_drive(tmp_path, "mcap")
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(tmp_path / "out"), "--drop-labels", "10,sky", "--no-progress") == 1
    assert "--drop-labels '10,sky' must be comma-separated Cityscapes train ids" in capsys.readouterr().err


def test_scoring_a_distorted_camera_uses_extracts_ground_truth(tmp_path, tiny_checkpoint):
    """With lens distortion, pixels whose ray leaves the distorted image have no prediction (NaN): the LiDAR truth
    leaves them out there too, as ``semantic-depth extract`` does, so both give the same LiDAR pixels per frame."""
    from semantic_depth_ros.data.rosbag_extract import extract_bag

    bag = make_drive(tmp_path, "sqlite3", distortion=(0.5, 0.0, 0.0, 0.0, 0.0))
    out = tmp_path / "scored"
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "semantic", "--device", "cpu", "--precision", "fp32",
                   "--lidar-topic", "/points", "--no-progress") == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    extract_bag(bag, image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info", lidar_topic="/points",
                out_dir=tmp_path / "extracted", progress=False)
    manifest = [json.loads(line) for line in (tmp_path / "extracted" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len(manifest) == COUNT
    full = [int(np.count_nonzero(project_points_to_depth(transform_points(f.lidar_to_camera, f.lidar_points),
                                                         k_matrix(f.intrinsics), WIDTH, HEIGHT))) for f in FRAMES]
    assert [int(row["lidar_pixels"]) for row in rows] == [entry["depth_pixels"] for entry in manifest]
    assert all(entry["depth_pixels"] < n for entry, n in zip(manifest, full))  # the lens really hid some points


def write_truncated_drive(path: Path, topic: str) -> Path:
    """COUNT frames (image, camera_info, a LiDAR scan 10 ms later) with the 3rd message of ``topic`` cut to 40 bytes."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    f = MessageFactory("mcap")
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {name: writer.add_connection(name, msgtype, typestore=f.typestore) for name, msgtype in (
            ("/cam/camera_info", "sensor_msgs/msg/CameraInfo"), ("/cam/image_raw", "sensor_msgs/msg/Image"),
            ("/points", "sensor_msgs/msg/PointCloud2"))}
        for i, frame in enumerate(FRAMES):
            stamp = T0 + i * FRAME_NS
            for name, msg, time in (
                    ("/cam/camera_info", f.camera_info(k_matrix(frame.intrinsics), WIDTH, HEIGHT, stamp, "cam"), stamp),
                    ("/cam/image_raw", f.image(frame.rgb, stamp, "cam"), stamp),
                    ("/points", f.pointcloud(frame.lidar_points, stamp + SCAN_DELAY_NS, "cam"), stamp + SCAN_DELAY_NS)):
                raw = bytes(f.typestore.serialize_cdr(msg, conns[name].msgtype))
                writer.write(conns[name], time, raw[:40] if (name == topic and i == 2) else raw)
    return path


@pytest.mark.parametrize("topic,scored", [("/cam/image_raw", COUNT - 1), ("/points", COUNT - 1),
                                          ("/cam/camera_info", COUNT)])
def test_a_corrupt_message_does_not_stop_scoring_or_extract(tmp_path, tiny_checkpoint, topic, scored):
    """One truncated image, scan or camera_info in a drive: infer-bag --lidar-topic and extract skip it and go on
    (they used to stop with 'cannot read bag' in their index pass)."""
    from semantic_depth_ros.data.rosbag_extract import extract_bag

    bag = write_truncated_drive(tmp_path / "drive", topic)
    identity = ["--extrinsic", *"0 0 0 0 0 0 1".split()]
    out = tmp_path / "scored"
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "depth", "--device", "cpu", "--lidar-topic", "/points", *identity,
                   "--no-progress") == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["frames_scored"] == scored
    kept = [i for i in range(COUNT) if not (topic != "/cam/camera_info" and i == 2)]
    assert [row["stamp_ns"] for row in report["frames"]] == [T0 + i * FRAME_NS for i in kept]
    summary = extract_bag(bag, image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info",
                          lidar_topic="/points", out_dir=tmp_path / "extracted", extrinsic=np.eye(4), progress=False)
    assert summary.written == scored
    assert (summary.invalid_image, summary.no_scan_within_tolerance) == (
        int(topic == "/cam/image_raw"), int(topic == "/points"))


def test_benchmark_times_the_bare_estimator_on_the_replayed_camera_model(tmp_path, estimator, monkeypatch):
    """--benchmark: the bare rounds get each frame's whole camera model (lens distortion removed, as the replay
    does), and the last round writes the output bag."""
    from semantic_depth_ros.replay.benchmark import ROUNDS, benchmark

    bag = make_drive(tmp_path, "mcap", distortion=LENS)
    cameras = []
    bare = estimator.estimate
    monkeypatch.setattr(estimator, "estimate", lambda rgb, **kw: cameras.append(kw["camera"]) or bare(rgb, **kw))
    options = ReplayOptions(image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info",
                            outputs=parse_outputs("depth"), progress=False)
    result = benchmark(bag, tmp_path / "out", estimator, options)
    assert result.frames == COUNT and len(cameras) == ROUNDS * COUNT
    assert all(isinstance(c, CameraModel) and c.has_distortion for c in cameras)
    assert len(read_back(tmp_path / "out")["/cam/depth"]) == COUNT and not list(tmp_path.glob("out.benchmark-*"))


def test_selection_bounds_are_inclusive_to_the_nanosecond(tmp_path, estimator):
    """Images at exactly --start and --end seconds from the bag start are both replayed (0.3 s is 300_000_000 ns,
    whose float product with 1e-9 exceeds 0.3)."""
    bag = write_truncated_drive(tmp_path / "drive", topic="")  # first message at T0: images at 0.0 .. 0.3 s
    options = ReplayOptions(image_topic="/cam/image_raw", camera_info_topic="/cam/camera_info",
                            outputs=parse_outputs("depth"), progress=False,
                            selection=Selection(start_s=0.1, end_s=0.3))
    replay_bag(bag, tmp_path / "out", estimator, options)
    stamps = [t for t, _, _ in read_back(tmp_path / "out")["/cam/depth"]]
    assert stamps == [T0 + i * FRAME_NS for i in (1, 2, 3)]
    assert Selection(start_s=1e308).contains(10**18) is False and Selection(end_s=1e308).contains(10**18) is True


def test_an_unwritable_output_folder_is_refused_before_the_model_loads(tmp_path, tiny_checkpoint, capsys,
                                                                       monkeypatch):
    """(Simulated with os.access: the tests may run as root, who can write anywhere.)"""
    import os

    bag = make_drive(tmp_path, "sqlite3")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    assert run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(locked / "out"), "--device", "cpu", "--no-progress") == 1
    err = capsys.readouterr().err
    assert err == f"error: --out {locked / 'out'}: folder {locked} is not writable\n"


# every label counts as road and any plane near the tiny untrained model's own (its depth is noise: the fitted
# "road" is steep, its fitted pitch ~1.6 rad) is accepted, so that its depth gets a scale != 1
ACCEPT_ANY_ROAD = ("--road-labels", *map(str, range(19)), "--camera-pitch", "1.5", "--road-max-tilt", "1.0",
                   "--road-min-inlier-ratio", "0.01", "--road-min-fraction", "0.001")


def test_scale_from_road_writes_the_core_stage_output_in_stamp_order(tmp_path, tiny_checkpoint, estimator, capsys):
    from semantic_depth_ros.pipeline.stages import FrameContext
    from semantic_depth_ros.roadscale import RoadScaleSettings, RoadScaleStage

    bag, out = make_drive(tmp_path, "mcap"), tmp_path / "out"
    code = run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "depth", "--device", "cpu", "--precision", "fp32", "--batch", "3",
                   "--no-progress", "--scale-from-road", "--camera-height", "1.65", "--scale-window", "3",
                   *ACCEPT_ANY_ROAD)
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-2].startswith("scale from the road: road_scale ") and "road_frames_accepted 4" in lines[-2]
    stage = RoadScaleStage(RoadScaleSettings(camera_height=1.65, scale_window=3, road_labels=tuple(range(19)),
                                             camera_pitch=1.5, road_max_tilt=1.0, road_min_inlier_ratio=0.01,
                                             road_min_fraction=0.001))
    written = [image_array(msg) for _, msg, _ in read_back(out)["/cam/depth"]]
    scales = []
    for i, frame in enumerate(FRAMES):
        outputs = estimator.estimate(frame.rgb, camera=frame.intrinsics, outputs=("depth", "semantic"))
        unscaled = outputs.depth.numpy().copy()
        want = stage.process(outputs, FrameContext(stamp_ns=T0 + i * FRAME_NS)).depth.numpy()
        np.testing.assert_allclose(written[i], want, rtol=1e-5, equal_nan=True)
        scales.append(float(np.nanmedian(written[i] / unscaled)))
    assert all(abs(scale - 1.0) > 1e-3 for scale in scales)  # the correction was applied, not skipped


@pytest.mark.parametrize(("extra", "message"), [
    (("--scale-from-road",), "--camera-height is needed with --scale-from-road"),
    (("--scale-from-road", "--camera-height", "-1"), "camera_height = -1.0 must be > 0 metres"),
    (("--camera-height", "1.5"), "--camera-height is an option of --scale-from-road, which is not given"),
])
def test_scale_from_road_options_are_checked_in_one_line(tmp_path, tiny_checkpoint, capsys, extra, message):
    bag = make_drive(tmp_path, "mcap")
    code = run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(tmp_path / "out"), "--device", "cpu", "--no-progress", *extra)
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists()


def test_scoring_with_the_temporal_filter_scores_the_filtered_depth(tmp_path, tiny_checkpoint, estimator):
    """A drive replays and scores with and without the filter: the scored depth is the stage's output."""
    from semantic_depth_ros.pipeline.stages import FrameContext
    from semantic_depth_ros.temporal import TemporalSettings, TemporalStage

    bag, out = make_drive(tmp_path, "mcap"), tmp_path / "scored"
    code = run_cli(str(bag), "--image-topic", "/cam/image_raw", "--checkpoint", str(tiny_checkpoint), "--out",
                   str(out), "--outputs", "depth", "--device", "cpu", "--precision", "fp32", "--lidar-topic",
                   "/points", "--no-progress", "--temporal", "static")
    assert code == 0
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    stage = TemporalStage(TemporalSettings(temporal_filter="static"))
    for i, frame in enumerate(FRAMES):
        outputs = estimator.estimate(frame.rgb, camera=frame.intrinsics, outputs=("depth", "confidence", "semantic"))
        raw = outputs.depth.numpy().copy()
        pred = stage.process(outputs, FrameContext(stamp_ns=T0 + i * FRAME_NS)).depth.numpy()
        lidar = project_points_to_depth(transform_points(frame.lidar_to_camera, frame.lidar_points),
                                        k_matrix(frame.intrinsics), WIDTH, HEIGHT)
        metrics = compute_depth_metrics(pred, lidar, min_depth=1e-3, max_depth=80.0, crop="none")
        assert float(rows[i]["abs_rel@80"]) == pytest.approx(metrics["abs_rel"], rel=1e-4)
        if i > 0:
            assert not np.allclose(pred, raw, rtol=1e-4, equal_nan=True), i  # the filter changed the depth

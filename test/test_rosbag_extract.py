"""Rosbag extraction: PointCloud2 layouts, tf chains, and end to end through real ROS 1 / ROS 2 bags."""

import argparse
import dataclasses
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from bagtools import MessageFactory, matrix_to_quaternion, write_bag
from helpers import distort_image

from semantic_depth_ros import cli
from semantic_depth_ros.commands import extract as extract_command
from semantic_depth_ros.data.bag_reader import cloud_msg_to_xyz, pointcloud2_to_xyz
from semantic_depth_ros.data.extracted import ExtractedDepthDataset
from semantic_depth_ros.data.fileio import read_depth_png
from semantic_depth_ros.data.rosbag_extract import extract_bag
from semantic_depth_ros.data.synthetic import render_frame
from semantic_depth_ros.data.tf_chain import TransformTree, make_transform, parse_extrinsic
from semantic_depth_ros.errors import ExtractionError, InvalidInputError
from semantic_depth_ros.geometry.undistort import undistortion_map, valid_mask

HEIGHT, WIDTH = 96, 320
T0 = 1_700_000_000 * 10**9
FRAME_NS = 100_000_000
SCAN_DELAY_NS = 10_000_000
OPTICAL_IN_LINK = np.array([[0.0, 0.0, 1.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
TOPICS = {"image_topic": "/cam/image", "camera_info_topic": "/cam/camera_info", "lidar_topic": "/points"}


def camera_view(frame, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera z, row and column of LiDAR points (own projection of the test: u = fx x / z + cx, rounded)."""
    cam = points.astype(np.float64) @ frame.lidar_to_camera[:3, :3].T + frame.lidar_to_camera[:3, 3]
    intr = frame.intrinsics
    with np.errstate(divide="ignore", invalid="ignore"):
        col = np.floor(intr.fx * cam[:, 0] / cam[:, 2] + intr.cx + 0.5)
        row = np.floor(intr.fy * cam[:, 1] / cam[:, 2] + intr.cy + 0.5)
    return cam[:, 2], row, col


def scene_frame(index: int) -> SimpleNamespace:
    """A generated street frame and its LiDAR scan, split into what the camera sees and what it cannot.

    The generator puts every LiDAR return the camera also sees on a pixel-centre ray, so those project exactly
    onto the rendered depth. Returns hidden from the camera (seen past an object's edge from the LiDAR's
    position, or beyond the rendered range) are the parallax every real LiDAR-camera pair has; ``clean_points``
    drops them (those in the image whose z differs from the rendered depth) and keeps all others.
    """
    frame = render_frame("kitti_like", index, height=HEIGHT, width=WIDTH, with_lidar=True)
    z, row, col = camera_view(frame, frame.lidar_points)
    inside = (z > 0) & (col >= 0) & (col < WIDTH) & (row >= 0) & (row < HEIGHT)
    r, c = row[inside].astype(int), col[inside].astype(int)
    known = frame.depth[r, c]
    seen = np.zeros(len(z), dtype=bool)
    seen[np.flatnonzero(inside)] = (known > 0) & (np.abs(z[inside] - known) <= 1e-5 * known)
    hits = np.zeros((HEIGHT, WIDTH), dtype=bool)
    hits[row[seen].astype(int), col[seen].astype(int)] = True
    intr = frame.intrinsics
    K = np.array([[intr.fx, 0.0, intr.cx], [0.0, intr.fy, intr.cy], [0.0, 0.0, 1.0]])
    return SimpleNamespace(rgb=frame.rgb, depth=frame.depth, K=K, intrinsics=intr, all_points=frame.lidar_points,
                           lidar_points=frame.lidar_points[seen | ~inside], hits=hits,
                           base_to_camera=frame.base_to_camera, base_to_lidar=frame.base_to_lidar,
                           lidar_to_camera=frame.lidar_to_camera, hidden=int(np.count_nonzero(inside & ~seen)),
                           in_image=int(np.count_nonzero(inside)))


FRAMES = [scene_frame(i) for i in range(3)]


def make_bag(tmp_path: Path, storage: str, *, image: str = "rgb8", tf: str | None = "chain",
             cloud_frame: str = "lidar", distortion=(0.0,) * 5, name: str = "bag", full_scan: bool = False,
             bad_encoding_frame: int | None = None, distort_images: bool = False,
             image_topic: str = "/cam/image", projection: np.ndarray | None = None) -> Path:
    """A bag with three paired frames and one image with no scan within 50 ms.

    tf "chain": base_link -> lidar and base_link -> camera_link -> camera_optical; None: no /tf_static.
    The first image is written before its CameraInfo (the extractor falls back to the first CameraInfo).
    ``distort_images``: the images are seen through the camera_info's ``distortion`` (plumb_bob).
    ``projection``: the camera_info's P (default [K | 0]).
    """
    f = MessageFactory(storage)
    messages = []
    if tf == "chain":
        base_from_camera = np.linalg.inv(FRAMES[0].base_to_camera)
        link_from_optical = OPTICAL_IN_LINK
        base_from_link = base_from_camera @ np.linalg.inv(link_from_optical)
        transforms = [("base_link", "lidar", np.linalg.inv(FRAMES[0].base_to_lidar)),
                      ("base_link", "camera_link", base_from_link),
                      ("camera_link", "camera_optical", link_from_optical)]
        messages.append(("/tf_static", "tf2_msgs/msg/TFMessage", T0 - 1, f.tf_static(transforms, T0)))
    for i, frame in enumerate([*FRAMES, FRAMES[0]]):
        stamp = T0 + i * FRAME_NS
        rgb = distort_image(frame.rgb, frame.K, distortion) if distort_images else frame.rgb
        if image == "compressed":
            image_msg = (image_topic, "sensor_msgs/msg/CompressedImage", stamp,
                         f.compressed_image(rgb, stamp, "camera_optical"))
        else:
            msg = f.image(rgb, stamp, "camera_optical", image)
            if i == bad_encoding_frame:
                msg = dataclasses.replace(msg, encoding="8UC1")
            image_msg = (image_topic, "sensor_msgs/msg/Image", stamp, msg)
        info = ("/cam/camera_info", "sensor_msgs/msg/CameraInfo", stamp,
                f.camera_info(frame.K, WIDTH, HEIGHT, stamp, "camera_optical", distortion, projection))
        messages += [image_msg, info] if i == 0 else [info, image_msg]
        if i < len(FRAMES):
            points = frame.all_points if full_scan else frame.lidar_points
            cloud = f.pointcloud(points, stamp + SCAN_DELAY_NS, cloud_frame, float64=i == 1,
                                 bigendian=i == 2, field_order="zxy" if i == 2 else "xyz")
            messages.append(("/points", "sensor_msgs/msg/PointCloud2", stamp + SCAN_DELAY_NS, cloud))
    path = tmp_path / (f"{name}.bag" if storage == "ros1" else name)
    return write_bag(path, storage, f, messages)


def check_output(out: Path, frames=FRAMES) -> None:
    """Every extracted frame: the image unchanged, depth within 2 cm of the known depth where LiDAR hit."""
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [entry["stamp_ns"] for entry in manifest] == [T0 + i * FRAME_NS for i in range(len(frames))]
    intrinsics = json.loads((out / "intrinsics.json").read_text())
    assert {k: intrinsics[k] for k in ("fx", "fy", "cx", "cy", "width", "height")} == pytest.approx(
        {"fx": frames[0].K[0, 0], "fy": frames[0].K[1, 1], "cx": frames[0].K[0, 2], "cy": frames[0].K[1, 2],
         "width": WIDTH, "height": HEIGHT})
    for entry, frame in zip(manifest, frames):
        assert entry["scan_stamp_ns"] == entry["stamp_ns"] + SCAN_DELAY_NS
        assert entry["dt_s"] == pytest.approx(0.01)
        assert (entry["camera_frame"], entry["lidar_frame"]) == ("camera_optical", "lidar")
        assert entry["lidar_points"] == len(frame.lidar_points)
        rgb = cv2.imread(str(out / entry["rgb"]))[..., ::-1]
        np.testing.assert_array_equal(rgb, frame.rgb)
        depth = read_depth_png(out / entry["depth"])
        hit = depth > 0
        assert entry["depth_pixels"] == int(hit.sum())
        np.testing.assert_array_equal(hit, frame.hits)  # exactly the pixels the test's own projection predicts
        assert hit.sum() > 0.3 * (frame.depth > 0).sum()
        assert np.abs(depth[hit] - frame.depth[hit]).max() < 0.02


# --- PointCloud2 decoding -------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", [
    {}, {"float64": True}, {"bigendian": True}, {"field_order": "zyx", "extra_bytes": 0},
    {"organised_rows": 4, "row_padding": 12}, {"float64": True, "bigendian": True, "organised_rows": 2},
])
def test_pointcloud_layouts_decode_to_the_same_points(layout):
    points = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    points[7] = np.nan
    msg = MessageFactory("sqlite3").pointcloud(points, T0, "lidar", **layout)
    xyz = cloud_msg_to_xyz(msg)
    assert xyz.dtype == np.float64
    np.testing.assert_array_equal(xyz, np.delete(points, 7, axis=0).astype(np.float64))


def test_pointcloud_sizes_and_fields_are_validated():
    field = SimpleNamespace
    xyz = [field(name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    good = {"height": 1, "width": 2, "point_step": 12, "row_step": 24, "is_bigendian": False, "data": bytes(24)}
    assert pointcloud2_to_xyz(xyz, **good).shape == (2, 3)
    with pytest.raises(InvalidInputError, match=r"PointCloud2 has no field 'z' \(fields: x, y\)"):
        pointcloud2_to_xyz(xyz[:2], **good)
    with pytest.raises(InvalidInputError, match="field 'y' has datatype 6, expected 7 \\(FLOAT32\\) or 8"):
        pointcloud2_to_xyz([xyz[0], field(name="y", offset=4, datatype=6, count=1), xyz[2]], **good)
    with pytest.raises(InvalidInputError, match="field 'z' at offset 10 does not fit in point_step 12"):
        pointcloud2_to_xyz([*xyz[:2], field(name="z", offset=10, datatype=7, count=1)], **good)
    with pytest.raises(InvalidInputError, match="row_step 24 x height 2 exceeds the 24 data bytes"):
        pointcloud2_to_xyz(xyz, **{**good, "height": 2})
    with pytest.raises(InvalidInputError, match="row_step 20 is smaller than width 2 x point_step 12"):
        pointcloud2_to_xyz(xyz, **{**good, "row_step": 20})


# --- transforms -----------------------------------------------------------------------------------------


def test_transform_tree_composes_a_chain_through_intermediate_frames():
    base_lidar = make_transform([0.8, 0.0, 1.7], [0.0, 0.0, 0.0998, 0.995])
    base_link = make_transform([1.5, 0.1, 1.6], [0.0, 0.05, 0.0, 0.9987])
    link_optical = OPTICAL_IN_LINK
    tree = TransformTree()
    tree.add("base_link", "lidar", base_lidar)
    tree.add("/base_link", "camera_link", base_link)
    tree.add("camera_link", "camera_optical", link_optical)
    expected = np.linalg.inv(base_link @ link_optical) @ base_lidar
    np.testing.assert_allclose(tree.lookup("camera_optical", "/lidar"), expected, atol=1e-12)
    np.testing.assert_allclose(tree.lookup("lidar", "camera_optical"), np.linalg.inv(expected), atol=1e-12)
    np.testing.assert_array_equal(tree.lookup("lidar", "lidar"), np.eye(4))
    with pytest.raises(ExtractionError, match=r"frame 'velodyne' not in the transform tree \(frames: base_link, "):
        tree.lookup("camera_optical", "velodyne")
    tree.add("map", "odom", np.eye(4))
    with pytest.raises(ExtractionError, match="no transform path from frame 'odom' to 'lidar'"):
        tree.lookup("lidar", "odom")


def test_extrinsic_from_16_or_7_numbers():
    matrix = make_transform([0.1, -0.2, 0.3], [0.5, -0.5, 0.5, -0.5])
    np.testing.assert_allclose(parse_extrinsic(matrix.reshape(-1)), matrix)
    np.testing.assert_allclose(parse_extrinsic([0.1, -0.2, 0.3, 0.5, -0.5, 0.5, -0.5]), matrix, atol=1e-12)
    with pytest.raises(ExtractionError, match="extrinsic needs 16 numbers .* or 7 .*, got 6"):
        parse_extrinsic([0.0] * 6)
    with pytest.raises(ExtractionError, match="extrinsic last row must be 0 0 0 1"):
        parse_extrinsic([1.0] * 16)
    with pytest.raises(ExtractionError, match=r"invalid quaternion \(x, y, z, w\)"):
        parse_extrinsic([0.0] * 7)


# --- end to end -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("storage", ["sqlite3", "mcap", "ros1"])
@pytest.mark.parametrize("image", ["rgb8", "compressed"])
def test_extracted_depth_matches_the_known_depth(tmp_path: Path, storage: str, image: str):
    bag = make_bag(tmp_path, storage, image=image)
    summary = extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", progress=False)
    assert (summary.images, summary.scans, summary.written) == (4, 3, 3)
    assert summary.no_scan_within_tolerance == 1 and summary.skipped_existing == 0
    check_output(tmp_path / "out")
    dataset = ExtractedDepthDataset(tmp_path / "out")
    assert len(dataset) == 3 and dataset[1]["fx"] == pytest.approx(FRAMES[0].intrinsics.fx)
    hit = dataset[1]["depth"][0].numpy() > 0
    assert np.abs(dataset[1]["depth"][0].numpy()[hit] - FRAMES[1].depth[hit]).max() < 0.02
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_full_scan_differs_from_the_rendered_depth_only_where_the_camera_cannot_see(tmp_path: Path):
    assert all(frame.hidden < 0.05 * frame.in_image for frame in FRAMES)  # parallax is rare
    bag = make_bag(tmp_path, "mcap", full_scan=True)
    assert extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", progress=False).written == 3
    for i, frame in enumerate(FRAMES):
        depth = read_depth_png(tmp_path / "out" / "depth" / f"{T0 + i * FRAME_NS}.png")
        hit = depth > 0
        close = np.abs(depth - frame.depth) < 0.02
        assert np.all(hit[frame.hits])  # every camera-visible return still lands
        assert np.count_nonzero(hit & ~close) <= frame.hidden  # each wrong pixel is owed to a hidden return
        assert np.count_nonzero(hit & close) >= 0.95 * np.count_nonzero(hit)


def test_rerun_skips_finished_frames_and_redoes_unlisted_ones(tmp_path: Path):
    bag = make_bag(tmp_path, "sqlite3", image="bgr8")
    out = tmp_path / "out"
    assert extract_bag(bag, **TOPICS, out_dir=out, progress=False).written == 3
    again = extract_bag(bag, **TOPICS, out_dir=out, progress=False)
    assert (again.written, again.skipped_existing, again.frames_in_manifest) == (0, 3, 3)
    # An interrupted run: files of the last frame exist but the manifest never listed it; one depth file lost.
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:2]) + "\n")
    (out / "depth" / f"{T0}.png").unlink()
    third = extract_bag(bag, **TOPICS, out_dir=out, progress=False)
    assert (third.written, third.skipped_existing, third.frames_in_manifest) == (2, 1, 3)
    check_output(out)


def test_unusable_frames_are_counted_and_skipped(tmp_path: Path):
    bag = make_bag(tmp_path, "ros1", image="mono8", bad_encoding_frame=2)
    out = tmp_path / "out"
    summary = extract_bag(bag, **TOPICS, out_dir=out, progress=True)
    assert (summary.written, summary.invalid_image, summary.no_scan_within_tolerance) == (2, 1, 1)
    assert "written 2, no scan within tolerance 1, invalid image 1" in summary.line()
    grey = cv2.imread(str(out / "rgb" / f"{T0}.png"))
    np.testing.assert_array_equal(grey, np.repeat(FRAMES[0].rgb[..., :1], 3, axis=2))
    # One camera per folder: frames whose CameraInfo differs from intrinsics.json are not mixed in.
    intrinsics = json.loads((out / "intrinsics.json").read_text())
    (out / "intrinsics.json").write_text(json.dumps({**intrinsics, "fx": intrinsics["fx"] * 2}))
    (out / "manifest.jsonl").unlink()
    again = extract_bag(bag, **TOPICS, out_dir=out, progress=False)
    assert (again.written, again.intrinsics_mismatch, again.invalid_image) == (0, 2, 1)


def parse_cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    extract_command.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize("form", ["matrix", "quaternion"])
def test_extrinsic_on_the_command_line_replaces_tf_static(tmp_path: Path, form: str, capsys):
    bag = make_bag(tmp_path, "mcap", tf=None, cloud_frame="velodyne")
    lidar_to_camera = FRAMES[0].lidar_to_camera
    if form == "matrix":
        numbers = [f"{v:.17g}" for v in lidar_to_camera.reshape(-1)]
    else:
        numbers = [f"{v:.17g}" for v in [*lidar_to_camera[:3, 3], *matrix_to_quaternion(lidar_to_camera[:3, :3])]]
    args = parse_cli([str(bag), "--image-topic", "/cam/image", "--camera-info-topic", "/cam/camera_info",
                      "--lidar-topic", "/points", "--out", str(tmp_path / "out"), "--lidar-frame", "lidar",
                      "--extrinsic", *numbers, "--no-progress"])
    assert extract_command.main(args) == 0
    assert "written 3" in capsys.readouterr().out
    check_output(tmp_path / "out")


def test_lidar_frame_override_uses_tf_static(tmp_path: Path):
    bag = make_bag(tmp_path, "sqlite3", cloud_frame="")
    with pytest.raises(ExtractionError, match="empty frame_id"):
        extract_bag(bag, **TOPICS, out_dir=tmp_path / "bad", progress=False)
    summary = extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", lidar_frame="/lidar", progress=False)
    assert summary.written == 3
    check_output(tmp_path / "out")


def test_missing_topic_and_transform_errors_are_one_line(tmp_path: Path, capsys):
    bag = make_bag(tmp_path, "sqlite3")
    code = cli.main(["extract", str(bag), "--image-topic", "/cam/image_rect", "--camera-info-topic",
                     "/cam/camera_info", "--lidar-topic", "/points", "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"error: topic '/cam/image_rect' not found in bag {bag} "
                   "(topics: /cam/camera_info, /cam/image, /points, /tf_static)")
    with pytest.raises(ExtractionError, match="topic '/cam/camera_info' has type sensor_msgs/msg/CameraInfo, "
                                              "expected sensor_msgs/msg/PointCloud2"):
        extract_bag(bag, **{**TOPICS, "lidar_topic": "/cam/camera_info"}, out_dir=tmp_path / "out", progress=False)
    no_tf = make_bag(tmp_path, "sqlite3", tf=None, name="no_tf")
    with pytest.raises(ExtractionError, match="no transform from LiDAR frame 'lidar' to camera frame 'camera_optical': "
                                              "the bag has no /tf_static messages; pass --extrinsic"):
        extract_bag(no_tf, **TOPICS, out_dir=tmp_path / "out", progress=False)
    with pytest.raises(ExtractionError, match=r"no LiDAR-to-camera transform in /tf_static: frame 'velodyne' not in "
                                              r"the transform tree \(frames: base_link, camera_link, camera_optical, "
                                              r"lidar\); pass --extrinsic"):
        extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", lidar_frame="velodyne", progress=False)
    with pytest.raises(ExtractionError, match="bag not found: .*missing.bag"):
        extract_bag(tmp_path / "missing.bag", **TOPICS, out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_scans_outside_the_tolerance_are_not_paired(tmp_path: Path):
    bag = make_bag(tmp_path, "mcap")
    summary = extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", max_dt=0.005, progress=False)
    assert (summary.written, summary.no_scan_within_tolerance) == (0, 4)
    assert not (tmp_path / "out" / "intrinsics.json").exists()


def test_a_rectified_topic_keeps_the_images_and_takes_p_as_its_camera(tmp_path: Path, caplog):
    """image_rect beside the raw camera_info (non-zero D): images kept, P is the camera (the node's rule)."""
    bag = make_bag(tmp_path, "sqlite3", distortion=(0.1, -0.02, 0.0, 0.0, 0.0), image_topic="/cam/image_rect")
    topics = {**TOPICS, "image_topic": "/cam/image_rect"}
    with caplog.at_level(logging.WARNING, logger="semantic_depth_ros.data.rosbag_extract"):
        extract_bag(bag, **topics, out_dir=tmp_path / "out", progress=False)
    warnings = [r.getMessage() for r in caplog.records if "rectified" in r.getMessage()]
    assert warnings == ["/cam/image_rect taken as rectified (input_rectified auto): images kept as they are, camera "
                        "from camera_info P"]
    check_output(tmp_path / "out")  # images unchanged, depth projected with P (= [K | 0] here)
    K = FRAMES[0].K
    P = np.hstack([K * np.array([[0.9], [0.9], [1.0]]) + [[0, 0, 2.0], [0, 0, -1.0], [0, 0, 0]], np.zeros((3, 1))])
    moved = make_bag(tmp_path, "sqlite3", distortion=(0.1, -0.02, 0.0, 0.0, 0.0), image_topic="/cam/image_rect",
                     projection=P, name="moved")
    extract_bag(moved, **topics, out_dir=tmp_path / "p", progress=False)
    intrinsics = json.loads((tmp_path / "p" / "intrinsics.json").read_text())
    assert {k: intrinsics[k] for k in ("fx", "fy", "cx", "cy")} == pytest.approx(
        {"fx": P[0, 0], "fy": P[1, 1], "cx": P[0, 2], "cy": P[1, 2]})
    extract_bag(moved, **topics, out_dir=tmp_path / "raw", progress=False, input_rectified="false")
    intrinsics = json.loads((tmp_path / "raw" / "intrinsics.json").read_text())
    assert {k: intrinsics[k] for k in ("fx", "fy", "cx", "cy")} == pytest.approx(
        {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]})  # false: K and D, as a raw image


def _blurred_difference(image: np.ndarray, reference: np.ndarray, valid: np.ndarray) -> float:
    """Mean |image - reference| (grey levels) where ``valid``, both blurred (Gaussian, sigma 1.5 px) first so that
    the aliasing of the render, which any resampling turns into pixel noise, does not hide an offset."""
    blur = [cv2.GaussianBlur(x.astype(np.float32), (0, 0), 1.5) for x in (image, reference)]
    inner = cv2.erode(valid.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    return float(np.abs(blur[0] - blur[1])[inner].mean())


@pytest.mark.parametrize(("lens", "distortion"), [("barrel", (-0.25, 0.06, 0.001, -0.0005, 0.0)),
                                                  ("pincushion", (0.2, 0.05, 0.0, 0.0, 0.0))])
def test_distorted_images_are_undistorted_to_agree_with_the_projected_depth(tmp_path: Path, lens: str,
                                                                            distortion: tuple) -> None:
    """Measured mean |extracted - pinhole render| where the image has data, both blurred (grey levels): barrel
    0.48-0.73 against 9.3-10.9 for the distorted image; pincushion 0.41-0.54 against 6.1-7.0."""
    bag = make_bag(tmp_path, "sqlite3", distortion=distortion, distort_images=True)
    summary = extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", progress=False)
    assert summary.written == 3
    out = tmp_path / "out"
    intrinsics = json.loads((out / "intrinsics.json").read_text())
    K = FRAMES[0].K
    assert {k: intrinsics[k] for k in ("fx", "fy", "cx", "cy")} == pytest.approx(
        {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2]})  # the pinhole K, no D
    map_x, map_y = undistortion_map(FRAMES[0].intrinsics, "plumb_bob", distortion)
    valid = valid_mask(map_x, map_y, HEIGHT, WIDTH)
    assert valid.all() if lens == "barrel" else 0.005 < (~valid).mean() < 0.2
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for entry, frame in zip(manifest, FRAMES):
        rgb = cv2.imread(str(out / entry["rgb"]))[..., ::-1]
        assert (rgb[~valid] == 0).all()
        error = _blurred_difference(rgb, frame.rgb, valid)
        raw = _blurred_difference(distort_image(frame.rgb, K, distortion), frame.rgb, valid)
        print(f"{lens}: undistorted {error:.2f}, distorted {raw:.2f} grey levels")
        assert error < 1.5 and raw > 5 * error
        depth = read_depth_png(out / entry["depth"])
        hit = depth > 0
        np.testing.assert_array_equal(hit, frame.hits & valid)  # the pinhole projection, where the image has data
        assert np.abs(depth[hit] - frame.depth[hit]).max() < 0.02


def test_an_unsupported_distortion_model_stops_the_extraction(tmp_path: Path, capsys):
    bag = make_bag(tmp_path, "sqlite3", distortion=(0.1, 0.0, 0.0, 0.0))  # plumb_bob needs 5 coefficients
    with pytest.raises(ExtractionError, match="^/cam/camera_info: distortion model 'plumb_bob' needs 5 coefficients "
                                              "in D, got 4$"):
        extract_bag(bag, **TOPICS, out_dir=tmp_path / "out", progress=False)

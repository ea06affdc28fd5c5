"""Bag reading and decoding, on small bags of every storage written with rosbags."""

from __future__ import annotations

import numpy as np
import pytest
from bagtools import STORAGES, MessageFactory, write_bag

from semantic_depth_ros.data.bag_reader import (
    CAMERA_INFO_TYPE,
    IMAGE_TYPES,
    POINTCLOUD2_TYPE,
    BagReader,
    cloud_msg_to_xyz,
    header_stamp_ns,
    decode_bag_image,
    tf_message_transforms,
)
from semantic_depth_ros.data.tf_chain import make_transform
from semantic_depth_ros.errors import ExtractionError
from semantic_depth_ros.geometry.intrinsics import Intrinsics, camera_from_info

T0 = 1_700_000_000_000_000_000
K = np.array([[500.0, 0.0, 31.5], [0.0, 400.0, 23.5], [0.0, 0.0, 1.0]])


@pytest.mark.parametrize("storage", STORAGES)
def test_bag_reader_decodes_images_camera_info_clouds_and_tf(tmp_path, storage: str) -> None:
    f = MessageFactory(storage)
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    points = np.array([[1.0, 2.0, 3.0], [4.0, -5.0, 6.5]])
    transform = make_transform((1.0, 2.0, 3.0), (0.0, 0.0, np.sin(0.25), np.cos(0.25)))
    path = write_bag(tmp_path / ("b.bag" if storage == "ros1" else "b"), storage, f, [
        ("/tf_static", "tf2_msgs/msg/TFMessage", T0, f.tf_static([("base_link", "cam", transform)], T0)),
        ("/cam/info", CAMERA_INFO_TYPE, T0 + 1, f.camera_info(K, 64, 48, 0, "cam", (0.1, 0.0, 0.0, 0.0, 0.0))),
        ("/cam/image", "sensor_msgs/msg/Image", T0 + 2, f.image(rgb, T0 + 5, "cam", "bgr8")),
        ("/cam/jpeg", "sensor_msgs/msg/CompressedImage", T0 + 3, f.compressed_image(rgb, T0 + 6, "cam")),
        ("/points", POINTCLOUD2_TYPE, T0 + 4, f.pointcloud(points, T0 + 7, "lidar", bigendian=True)),
    ])
    with BagReader(path) as bag:
        assert bag.topics()["/points"] == POINTCLOUD2_TYPE
        messages = list(bag.messages([*bag.connections("/tf_static", {"tf2_msgs/msg/TFMessage"}),
                                      *bag.connections("/cam/info", {CAMERA_INFO_TYPE}),
                                      *bag.connections("/cam/image", IMAGE_TYPES),
                                      *bag.connections("/cam/jpeg", IMAGE_TYPES),
                                      *bag.connections("/points", {POINTCLOUD2_TYPE})]))
    assert [m.bag_time_ns - T0 for m in messages] == [0, 1, 2, 3, 4]
    tf, info, image, jpeg, cloud = messages
    ((parent, child, matrix),) = tf_message_transforms(tf.msg)
    assert (parent, child) == ("base_link", "cam")
    np.testing.assert_allclose(matrix, transform, atol=1e-12)
    camera = camera_from_info(info.msg)
    assert camera.intrinsics == Intrinsics(500.0, 400.0, 31.5, 23.5, 64, 48)
    assert (camera.distortion_model, camera.d, camera.has_distortion) == ("plumb_bob", (0.1, 0, 0, 0, 0), True)
    assert header_stamp_ns(info.msg, info.bag_time_ns) == T0 + 1  # zero header stamp: the bag time
    assert header_stamp_ns(image.msg, image.bag_time_ns) == T0 + 5
    np.testing.assert_array_equal(decode_bag_image(image.msg, image.msgtype), rgb)
    np.testing.assert_array_equal(decode_bag_image(jpeg.msg, jpeg.msgtype), rgb)  # PNG inside: lossless
    np.testing.assert_array_equal(cloud_msg_to_xyz(cloud.msg), points)


def test_bag_reader_errors_are_one_line(tmp_path) -> None:
    with pytest.raises(ExtractionError, match="bag not found: .*missing"):
        BagReader(tmp_path / "missing")
    (tmp_path / "junk.bag").write_bytes(b"not a bag")
    with pytest.raises(ExtractionError, match="cannot read bag .*junk.bag"):
        BagReader(tmp_path / "junk.bag")
    f = MessageFactory("sqlite3")
    path = write_bag(tmp_path / "b", "sqlite3", f, [("/info", CAMERA_INFO_TYPE, T0, f.camera_info(K, 64, 48, T0, "c"))])
    with BagReader(path) as bag:
        with pytest.raises(ExtractionError, match=r"topic '/img' not found in bag .* \(topics: /info\)"):
            bag.connections("/img", IMAGE_TYPES)
        assert bag.connections("/img", IMAGE_TYPES, required=False) == []
        with pytest.raises(ExtractionError, match="topic '/info' has type sensor_msgs/msg/CameraInfo, expected"):
            bag.connections("/info", IMAGE_TYPES)


def test_matrix_to_quaternion_inverts_quaternion_to_matrix() -> None:
    from semantic_depth_ros.data.tf_chain import matrix_to_quaternion, quaternion_to_matrix

    rng = np.random.default_rng(0)
    for q in rng.normal(size=(50, 4)):
        q = q / np.linalg.norm(q) * np.sign(q[3])  # w >= 0: the one of the two equivalent quaternions returned
        np.testing.assert_allclose(matrix_to_quaternion(quaternion_to_matrix(*q)), q, atol=1e-9)
    np.testing.assert_allclose(matrix_to_quaternion(np.diag([1.0, -1.0, -1.0])), (1.0, 0.0, 0.0, 0.0), atol=1e-12)

"""Intrinsics scaling, ray grid cache, rgb packing and back-projection to the PointCloud2 layout."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import (
    CameraModel,
    Intrinsics,
    camera_from_info,
    scale_intrinsics,
    transform_intrinsics,
)
from semantic_depth_ros.geometry.pointcloud import (
    POINT_FIELD_DATATYPE,
    POINT_FIELDS,
    POINT_STEP,
    backproject_organised,
    build_rays,
    cached_rays,
    pack_rgb,
    ray_grids,
    unpack_rgb,
)

NAN = float("nan")

# An 8x6 camera whose rays at integer pixels are exact in float32.
SMALL = Intrinsics(fx=4.0, fy=2.0, cx=3.5, cy=2.5, width=8, height=6)


# --- intrinsics ---------------------------------------------------------------------------------------------


def test_from_k_and_matrix() -> None:
    intr = Intrinsics.from_k([500.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0], 640, 480)
    assert intr == Intrinsics(500.0, 400.0, 320.0, 240.0, 640, 480)
    matrix = intr.matrix()
    assert matrix.dtype == np.float64
    np.testing.assert_array_equal(matrix, [[500.0, 0.0, 320.0], [0.0, 400.0, 240.0], [0.0, 0.0, 1.0]])
    assert intr.k() == (500.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0)
    assert intr.p() == (500.0, 0.0, 320.0, 0.0, 0.0, 400.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def test_intrinsics_are_frozen_and_hashable() -> None:
    intr = Intrinsics(np.float32(500.0), 400, 320, 240, np.int64(640), 480)
    assert isinstance(intr.fx, float) and isinstance(intr.width, int)
    assert hash(intr) == hash(Intrinsics(500.0, 400.0, 320.0, 240.0, 640, 480))
    with pytest.raises(AttributeError):
        intr.fx = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fx": 0.0}, "intrinsics.fx = 0.0 must be positive and finite"),
        ({"fy": -3.0}, "intrinsics.fy = -3.0 must be positive and finite"),
        ({"fx": math.inf}, "intrinsics.fx = inf must be finite"),
        ({"fy": math.nan}, "intrinsics.fy = nan must be finite"),
        ({"cx": math.nan}, "intrinsics.cx = nan must be finite"),
        ({"width": 0}, "intrinsics.width = 0 must be at least 1"),
        ({"height": -2}, "intrinsics.height = -2 must be at least 1"),
        ({"width": 6.5}, "intrinsics.width = 6.5 is not an integer"),
    ],
)
def test_intrinsics_validation_names_the_field(kwargs: dict, message: str) -> None:
    fields = {"fx": 4.0, "fy": 2.0, "cx": 3.5, "cy": 2.5, "width": 8, "height": 6} | kwargs
    with pytest.raises(InvalidInputError) as error:
        Intrinsics(**fields)
    assert str(error.value) == message


def test_from_k_rejects_wrong_length() -> None:
    with pytest.raises(InvalidInputError, match=r"intrinsics.k has 8 values, expected 9"):
        Intrinsics.from_k([1.0] * 8, 640, 480)


def test_scale_intrinsics_uses_pixel_centre_convention() -> None:
    intr = Intrinsics(fx=500.0, fy=400.0, cx=100.0, cy=50.0, width=640, height=480)
    half = scale_intrinsics(intr, 320, 240)
    assert half == Intrinsics(250.0, 200.0, (100.0 + 0.5) * 0.5 - 0.5, (50.0 + 0.5) * 0.5 - 0.5, 320, 240)
    assert (half.cx, half.cy) == (49.75, 24.75)
    # Non-uniform: width doubles, height shrinks by 3/4.
    odd = scale_intrinsics(intr, 1280, 360)
    assert (odd.fx, odd.fy, odd.cx, odd.cy) == (1000.0, 300.0, 200.5, 37.375)  # 100.5 * 2 - 0.5, 50.5 * 0.75 - 0.5
    # The image centre stays the image centre.
    centred = scale_intrinsics(Intrinsics(500.0, 500.0, 319.5, 239.5, 640, 480), 1242, 375)
    assert centred.cx == pytest.approx((1242 - 1) / 2) and centred.cy == pytest.approx((375 - 1) / 2)


def test_scaled_intrinsics_project_points_where_resize_moves_them() -> None:
    intr = Intrinsics(fx=718.9, fy=718.9, cx=607.2, cy=185.2, width=1242, height=375)
    small = scale_intrinsics(intr, 620, 188)
    point = np.array([2.0, -0.5, 10.0])
    u, v, _ = intr.matrix() @ point / point[2]
    u_small, v_small, _ = small.matrix() @ point / point[2]
    assert u_small == pytest.approx((u + 0.5) * 620 / 1242 - 0.5)
    assert v_small == pytest.approx((v + 0.5) * 188 / 375 - 0.5)


def test_transform_intrinsics() -> None:
    intr = Intrinsics(fx=500.0, fy=400.0, cx=100.0, cy=50.0, width=640, height=480)
    # Letterbox: halve, then pad 7 rows on top of a 320x254 canvas.
    padded = transform_intrinsics(intr, 0.5, 0.0, 7.0, 320, 254)
    assert padded == Intrinsics(250.0, 200.0, 49.75, 24.75 + 7.0, 320, 254)
    # scale_intrinsics is transform_intrinsics without offsets.
    assert transform_intrinsics(intr, (2.0, 0.75), 0.0, 0.0, 1280, 360) == scale_intrinsics(intr, 1280, 360)


def test_scale_intrinsics_rejects_bad_sizes() -> None:
    with pytest.raises(InvalidInputError, match=r"intrinsics.width = 0 must be at least 1"):
        scale_intrinsics(SMALL, 0, 10)
    with pytest.raises(InvalidInputError, match=r"intrinsics.scale_x = -1.0 must be positive and finite"):
        transform_intrinsics(SMALL, -1.0, 0.0, 0.0, 8, 6)


# --- ray grid -----------------------------------------------------------------------------------------------


def test_build_rays_values_and_stride_shapes() -> None:
    rays = build_rays(SMALL, 1, "cpu")
    assert rays.shape == (6, 8, 3) and rays.dtype == torch.float32 and rays.is_contiguous()
    assert rays[0, 7].tolist() == [(7 - 3.5) / 4.0, (0 - 2.5) / 2.0, 1.0]
    assert rays[5, 0].tolist() == [(0 - 3.5) / 4.0, (5 - 2.5) / 2.0, 1.0]
    strided = build_rays(SMALL, 3, "cpu")
    assert strided.shape == (2, 3, 3)  # u = 0, 3, 6; v = 0, 3
    torch.testing.assert_close(strided, rays[::3, ::3], rtol=0, atol=0)
    assert build_rays(SMALL, 8, "cpu").shape == (1, 1, 3)


def test_ray_grid_cache_returns_same_tensor_and_stays_bounded() -> None:
    cache = ray_grids(max_entries=2)
    first = cached_rays(cache, SMALL, 1, "cpu")
    assert cached_rays(cache, SMALL, 1, torch.device("cpu")) is first
    assert cached_rays(cache, Intrinsics(4.0, 2.0, 3.5, 2.5, 8, 6), 1, "cpu") is first  # equal intrinsics: one key
    strided = cached_rays(cache, SMALL, 2, "cpu")
    assert strided is not first and strided.shape == (3, 4, 3)
    assert cached_rays(cache, SMALL, 1, "cpu") is first  # refreshes 'first' as most recently used
    other = cached_rays(cache, scale_intrinsics(SMALL, 4, 3), 1, "cpu")  # evicts the stride-2 grid
    assert len(cache) == 2 and other.shape == (3, 4, 3)
    assert cached_rays(cache, SMALL, 1, "cpu") is first
    assert cached_rays(cache, SMALL, 2, "cpu") is not strided  # rebuilt after eviction
    cache.clear()
    assert len(cache) == 0


@pytest.mark.parametrize("stride", [0, -1, 1.5, True])
def test_ray_grid_cache_rejects_bad_stride(stride: object) -> None:
    with pytest.raises(InvalidInputError, match=r"point stride = .* must be an integer >= 1"):
        cached_rays(ray_grids(), SMALL, stride, "cpu")  # type: ignore[arg-type]


# --- rgb packing --------------------------------------------------------------------------------------------


def test_pack_rgb_exact_bits() -> None:
    rgb = torch.tensor([[[255, 128, 1], [0, 0, 0], [1, 2, 3], [255, 255, 255]]], dtype=torch.uint8)
    packed = pack_rgb(rgb)
    assert packed.shape == (1, 4) and packed.dtype == torch.float32
    bits = packed.view(torch.int32)[0].tolist()
    assert bits == [0x00FF8001, 0x00000000, 0x00010203, 0x00FFFFFF]
    np.testing.assert_array_equal(unpack_rgb(packed.numpy()), rgb.numpy().reshape(-1, 3))


def test_pack_rgb_rejects_wrong_dtype() -> None:
    with pytest.raises(InvalidInputError, match=r"rgb must be a uint8 HxWx3 tensor, got torch.float32"):
        pack_rgb(torch.zeros(2, 2, 3))


def test_unpack_rgb_round_trip_random() -> None:
    rgb = torch.randint(0, 256, (5, 7, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(unpack_rgb(pack_rgb(rgb).numpy()), rgb.numpy().reshape(-1, 3))


# --- back-projection ----------------------------------------------------------------------------------------


def _cloud_dtype() -> np.dtype:
    """Structured dtype built from POINT_FIELDS, the way a PointCloud2 reader would interpret the bytes."""
    formats = ["<f4", "<f4", "<f4", "<u4"]
    return np.dtype(
        {
            "names": [name for name, _ in POINT_FIELDS],
            "formats": formats,
            "offsets": [offset for _, offset in POINT_FIELDS],
            "itemsize": POINT_STEP,
        }
    )


def test_layout_constants_match_design() -> None:
    assert POINT_STEP == 16
    assert POINT_FIELDS == (("x", 0), ("y", 4), ("z", 8), ("rgb", 12))
    assert POINT_FIELD_DATATYPE == 7  # sensor_msgs/PointField.FLOAT32


def test_backproject_hand_computed_pinhole_point() -> None:
    depth = torch.full((6, 8), 2.0)
    depth[0, 7] = 2.0
    depth[5, 0] = 4.0
    cloud = backproject_organised(depth, build_rays(SMALL, 1, "cpu"))
    assert cloud.shape == (6, 8, 4) and cloud.dtype == torch.float32 and cloud.is_contiguous()
    # u=7, v=0, z=2: x = (7 - 3.5) / 4 * 2 = 1.75, y = (0 - 2.5) / 2 * 2 = -2.5.
    assert cloud[0, 7, :3].tolist() == [1.75, -2.5, 2.0]
    # u=0, v=5, z=4: x = (0 - 3.5) / 4 * 4 = -3.5, y = (5 - 2.5) / 2 * 4 = 5.0.
    assert cloud[5, 0, :3].tolist() == [-3.5, 5.0, 4.0]
    assert cloud.view(torch.int32)[..., 3].eq(0).all()  # no colour -> rgb bits 0


def test_backproject_bytes_are_pointcloud2_data() -> None:
    depth = torch.full((6, 8), 3.0)
    depth[2, 3] = NAN
    rgb = torch.zeros((6, 8, 3), dtype=torch.uint8)
    rgb[1, 6] = torch.tensor([255, 128, 1], dtype=torch.uint8)
    cloud = backproject_organised(depth, build_rays(SMALL, 1, "cpu"), rgb)
    data = cloud.cpu().numpy().tobytes()
    assert len(data) == 6 * 8 * POINT_STEP  # row_step = width * 16
    points = np.frombuffer(data, dtype=_cloud_dtype()).reshape(6, 8)
    assert points["rgb"][1, 6] == 0x00FF8001 and points["rgb"][0, 0] == 0
    assert (points["x"][1, 6], points["y"][1, 6], points["z"][1, 6]) == ((6 - 3.5) / 4 * 3, (1 - 2.5) / 2 * 3, 3.0)
    assert np.isnan(points["x"][2, 3]) and np.isnan(points["y"][2, 3]) and np.isnan(points["z"][2, 3])


def test_backproject_invalid_depth_is_nan_and_keeps_colour() -> None:
    depth = torch.tensor([[NAN, 0.0, -1.0, math.inf, 2.0, 2.0, 2.0, 2.0]]).repeat(6, 1)
    rgb = torch.full((6, 8, 3), 7, dtype=torch.uint8)
    cloud = backproject_organised(depth, build_rays(SMALL, 1, "cpu"), rgb)
    assert torch.isnan(cloud[:, :4, :3]).all()
    assert torch.isfinite(cloud[:, 4:, :3]).all()
    assert cloud.view(torch.int32)[..., 3].eq(0x070707).all()


def test_backproject_range_limits_on_z() -> None:
    depth = torch.tensor([[1.0, 1.5, 2.0, 3.0, 3.5, 4.0, 1.49, 3.01]]).repeat(6, 1)
    cloud = backproject_organised(depth, build_rays(SMALL, 1, "cpu"), min_range=1.5, max_range=3.0)
    valid = torch.isfinite(cloud[0, :, 2])
    assert valid.tolist() == [False, True, True, True, False, False, False, False]
    only_max = backproject_organised(depth, build_rays(SMALL, 1, "cpu"), max_range=3.0)
    assert torch.isfinite(only_max[0, :, 2]).tolist() == [True, True, True, True, False, False, True, False]


def test_backproject_stride_decimates_depth_and_colour() -> None:
    depth = torch.arange(1, 49, dtype=torch.float32).reshape(6, 8)
    rgb = torch.zeros((6, 8, 3), dtype=torch.uint8)
    rgb[..., 2] = torch.arange(48, dtype=torch.uint8).reshape(6, 8)
    rays = build_rays(SMALL, 3, "cpu")
    cloud = backproject_organised(depth, rays, rgb, stride=3)
    assert cloud.shape == (2, 3, 4) and cloud.is_contiguous()
    torch.testing.assert_close(cloud[..., 2], depth[::3, ::3], rtol=0, atol=0)
    # Output (1, 2) is pixel u=6, v=3: z = depth[3, 6] = 31.
    assert cloud[1, 2, :3].tolist() == [(6 - 3.5) / 4 * 31, (3 - 2.5) / 2 * 31, 31.0]
    assert cloud.view(torch.int32)[..., 3].tolist() == [[0, 3, 6], [24, 27, 30]]


def test_backproject_rejects_mismatched_inputs() -> None:
    depth = torch.ones(6, 8)
    with pytest.raises(InvalidInputError, match=r"rays of shape \(6, 8, 3\) .* at stride 2 \(expected \(3, 4, 3\)\)"):
        backproject_organised(depth, build_rays(SMALL, 1, "cpu"), stride=2)
    with pytest.raises(InvalidInputError, match=r"rgb of shape \(3, 4, 3\) does not match depth \(6, 8\)"):
        backproject_organised(depth, build_rays(SMALL, 1, "cpu"), torch.zeros(3, 4, 3, dtype=torch.uint8))
    with pytest.raises(InvalidInputError, match=r"depth must be a float HxW tensor"):
        backproject_organised(torch.ones(6, 8, dtype=torch.int32), build_rays(SMALL, 1, "cpu"))


def test_backproject_accepts_half_depth() -> None:
    cloud = backproject_organised(torch.full((6, 8), 2.0, dtype=torch.float16), build_rays(SMALL, 1, "cpu"))
    assert cloud.dtype == torch.float32 and cloud[0, 7, :3].tolist() == [1.75, -2.5, 2.0]


def test_camera_from_info_reads_ros2_and_ros1_field_spellings() -> None:
    k = (500.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0)
    ros2 = SimpleNamespace(k=k, d=[0.0] * 5, width=640, height=480, distortion_model="plumb_bob")
    ros1 = SimpleNamespace(K=k, D=[-0.2, 0.05, 0.0, 0.0, 0.0], width=640, height=480, distortion_model="plumb_bob")
    expected = Intrinsics(500.0, 400.0, 320.0, 240.0, 640, 480)
    assert camera_from_info(ros2) == CameraModel(expected, "plumb_bob", (0.0,) * 5)
    assert not camera_from_info(ros2).has_distortion
    assert camera_from_info(ros1) == CameraModel(expected, "plumb_bob", (-0.2, 0.05, 0.0, 0.0, 0.0))
    assert camera_from_info(ros1).has_distortion
    unset = SimpleNamespace(k=k, d=[], width=0, height=0, distortion_model="")
    assert camera_from_info(unset, 1242, 375).intrinsics == Intrinsics(500.0, 400.0, 320.0, 240.0, 1242, 375)


@pytest.mark.parametrize(
    ("fields", "image_size", "message"),
    [
        ({"k": (1.0, 0.0, 0.0, 1.0)}, None, r"^camera_info.k has 4 values, expected 9"),
        ({"k": (0.0, 0, 1, 0, 1, 1, 0, 0, 1)}, None, r"^camera_info.k\[0\] \(fx\) = 0.0 must be positive and finite$"),
        ({"d": [0.1, float("nan")]}, None, r"^camera_info.d = \[0.1, nan\] must be finite$"),
        ({"width": 0, "height": 0}, None, r"^camera_info size 0x0 must be at least 1x1$"),
        ({}, (320, 240), r"^camera_info size 640x480 does not match image size 320x240$"),
        ({"distortion_model": None}, None, r"^camera_info.distortion_model = None is not a string$"),
    ],
)
def test_camera_from_info_rejects_unusable_fields_in_one_line(fields, image_size, message) -> None:
    base = {"k": (500.0, 0.0, 320.0, 0.0, 400.0, 240.0, 0.0, 0.0, 1.0), "d": [0.0] * 5, "width": 640, "height": 480,
            "distortion_model": "plumb_bob"}
    with pytest.raises(InvalidInputError, match=message):
        camera_from_info(SimpleNamespace(**{**base, **fields}), *(image_size or ()))

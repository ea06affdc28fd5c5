"""Semantic point clouds: the xyzrgbl / xyzrgblc layouts, labels from the semantic image, dropped labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from semantic_depth_ros.errors import InvalidInputError
from semantic_depth_ros.geometry.intrinsics import Intrinsics
from semantic_depth_ros.geometry.pointcloud import (
    POINT_LAYOUTS,
    backproject_organised,
    build_rays,
    layout_needs,
    point_step,
)
from semantic_depth_ros.inference.estimator import EstimatorOutputs
from semantic_depth_ros.labels import ROAD, SIDEWALK, SKY
from semantic_depth_ros.messages import CLOUD_LAYOUT_FIELDS, PointFieldSpec, cloud_array, cloud_fields, image_array
from semantic_depth_ros.pipeline import CameraOutputs, CloudLayout, OutputPlan

FLOAT32, UINT32 = 7, 6  # sensor_msgs/PointField datatypes
CAMERA = Intrinsics(fx=5.0, fy=4.0, cx=3.5, cy=2.5, width=8, height=6)


def _outputs(seed: int = 0) -> EstimatorOutputs:
    generator = torch.Generator().manual_seed(seed)
    depth = torch.rand(6, 8, generator=generator) * 40 + 2
    depth[0, 0] = float("nan")
    semantic = torch.randint(0, 19, (6, 8), dtype=torch.uint8, generator=generator)
    semantic[1, :4] = SKY
    semantic[2, :3] = ROAD
    return EstimatorOutputs(depth=depth, semantic=semantic, confidence=torch.rand(6, 8, generator=generator),
                            intrinsics=CAMERA,
                            image=torch.randint(0, 256, (6, 8, 3), dtype=torch.uint8, generator=generator))


def _reader_dtype(fields: tuple[PointFieldSpec, ...], step: int) -> np.dtype:
    """How a PointCloud2 reader (pcl_conversions, rviz2) sees the bytes: fields by name, offset and datatype."""
    formats = {FLOAT32: "<f4", UINT32: "<u4"}
    return np.dtype({"names": [f.name for f in fields], "formats": [formats[f.datatype] for f in fields],
                     "offsets": [f.offset for f in fields], "itemsize": step})


def _published(point_fields: str, drop_labels: tuple[int, ...] = (), stride: int = 1) -> tuple[dict, EstimatorOutputs]:
    outputs = _outputs()
    plan = OutputPlan(("points", "semantic", "confidence", "depth"), CloudLayout(point_fields, drop_labels, stride))
    return CameraOutputs(plan).messages(outputs, 0, depth_range=(1.0, 80.0)).fields, outputs


def test_field_names_offsets_and_types_of_each_layout() -> None:
    xyzrgb = (PointFieldSpec("x", 0, FLOAT32, 1), PointFieldSpec("y", 4, FLOAT32, 1),
              PointFieldSpec("z", 8, FLOAT32, 1), PointFieldSpec("rgb", 12, FLOAT32, 1))
    label = PointFieldSpec("label", 16, UINT32, 1)
    expected = {"xyzrgb": (xyzrgb, 16), "xyzrgbl": ((*xyzrgb, label), 20),
                "xyzrgblc": ((*xyzrgb, label, PointFieldSpec("confidence", 20, FLOAT32, 1)), 24)}
    assert set(POINT_LAYOUTS) == set(expected) == set(CLOUD_LAYOUT_FIELDS)
    for layout, (specs, step) in expected.items():
        fields, _ = _published(layout)
        cloud = fields["points"]
        assert cloud.fields == specs == CLOUD_LAYOUT_FIELDS[layout], layout
        assert (cloud.point_step, cloud.row_step, point_step(layout)) == (step, 8 * step, step)
        assert (cloud.height, cloud.width, cloud.is_dense) == (6, 8, False)
        assert len(cloud.data) == cloud.height * cloud.row_step


def test_xyzrgb_is_unchanged_byte_for_byte() -> None:
    fields, outputs = _published("xyzrgb")
    depth = outputs.depth.numpy().astype(np.float64)
    v, u = np.mgrid[0:6, 0:8]
    x = ((u - CAMERA.cx) / CAMERA.fx * depth).astype(np.float32)
    y = ((v - CAMERA.cy) / CAMERA.fy * depth).astype(np.float32)
    rgb = outputs.image.numpy().astype(np.uint32)
    bits = ((rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]).view(np.float32)
    expected = np.stack((x, y, depth.astype(np.float32), bits), axis=-1)
    got = np.frombuffer(bytes(fields["points"].data), dtype=np.float32).reshape(6, 8, 4)
    np.testing.assert_allclose(got[..., :3], expected[..., :3], rtol=1e-6, equal_nan=True)
    assert got[..., 3].tobytes() == expected[..., 3].tobytes()
    # the labels given to an xyzrgb cloud change nothing, and xyzrgbl's first 16 bytes are this cloud
    plain = backproject_organised(outputs.depth, build_rays(CAMERA, 1, "cpu"), outputs.image)
    assert plain.numpy().tobytes() == bytes(fields["points"].data)
    labelled, _ = _published("xyzrgbl")
    assert cloud_array(labelled["points"])[..., :4].tobytes() == plain.numpy().tobytes()


@pytest.mark.parametrize("layout", ["xyzrgbl", "xyzrgblc"])
@pytest.mark.parametrize("stride", [1, 2])
def test_labels_at_valid_points_equal_the_semantic_image(layout: str, stride: int) -> None:
    fields, outputs = _published(layout, stride=stride)
    cloud = fields["points"]
    points = np.frombuffer(bytes(cloud.data), dtype=_reader_dtype(cloud.fields, cloud.point_step))
    points = points.reshape(cloud.height, cloud.width)
    semantic = image_array(fields["semantic"])[::stride, ::stride]
    valid = np.isfinite(points["z"])
    assert valid.sum() == np.isfinite(outputs.depth.numpy()[::stride, ::stride]).sum() > 0
    np.testing.assert_array_equal(points["label"][valid], semantic[valid])
    np.testing.assert_array_equal(points["label"], semantic)  # NaN points keep their pixel's label
    if layout == "xyzrgblc":
        np.testing.assert_array_equal(points["confidence"], image_array(fields["confidence"])[::stride, ::stride])


@pytest.mark.parametrize("layout", ["xyzrgb", "xyzrgbl"])
def test_dropped_labels_give_nan_points(layout: str) -> None:
    kept, outputs = _published(layout)
    dropped, _ = _published(layout, drop_labels=(SKY, ROAD, SIDEWALK))
    semantic = outputs.semantic.numpy()
    gone = np.isin(semantic, (SKY, ROAD, SIDEWALK))
    assert gone.sum() >= 7
    before, after = cloud_array(kept["points"]), cloud_array(dropped["points"])
    assert np.isnan(after[gone][:, :3]).all()
    np.testing.assert_array_equal(after[~gone], before[~gone])  # every other point, byte for byte
    assert after[..., 3:].tobytes() == before[..., 3:].tobytes()  # colours and labels stay


def test_what_points_need_from_the_estimator() -> None:
    def needs(outputs: tuple[str, ...], fields: str = "xyzrgb", drop: tuple[int, ...] = ()) -> tuple[str, ...]:
        return OutputPlan(outputs, CloudLayout(fields, drop)).estimator_outputs()

    assert needs(("points",)) == ("depth", "image")
    assert needs(("points",), "xyzrgbl") == ("depth", "semantic", "image")
    assert needs(("points",), "xyzrgblc") == ("depth", "semantic", "confidence", "image")
    assert needs(("points",), "xyzrgb", (SKY,)) == ("depth", "semantic", "image")
    assert needs(("depth",), "xyzrgblc", (SKY,)) == ("depth",)  # the layout matters only with points
    assert CloudLayout("xyzrgbl").needs() == ("semantic",)
    assert layout_needs("xyzrgb") == ()


def test_bad_layouts_and_labels_are_refused() -> None:
    outputs = _outputs()
    rays = build_rays(CAMERA, 1, "cpu")
    with pytest.raises(InvalidInputError, match="point_fields = 'xyzi' is not one of xyzrgb, xyzrgbl, xyzrgblc"):
        backproject_organised(outputs.depth, rays, point_fields="xyzi")
    with pytest.raises(InvalidInputError, match=r"this point layout needs labels \(HxW, like depth\)"):
        backproject_organised(outputs.depth, rays, point_fields="xyzrgbl")
    with pytest.raises(InvalidInputError, match="this point layout needs labels"):
        backproject_organised(outputs.depth, rays, drop_labels=(SKY,))
    with pytest.raises(InvalidInputError, match="this point layout needs confidence"):
        backproject_organised(outputs.depth, rays, point_fields="xyzrgblc", labels=outputs.semantic)
    with pytest.raises(InvalidInputError, match=r"drop label 19 is not a Cityscapes train id \(an integer in 0..18\)"):
        backproject_organised(outputs.depth, rays, labels=outputs.semantic, drop_labels=(19,))
    with pytest.raises(InvalidInputError, match=r"labels of shape \(3, 4\) does not match depth \(6, 8\)"):
        backproject_organised(outputs.depth, rays, point_fields="xyzrgbl", labels=outputs.semantic[:3, :4])
    with pytest.raises(InvalidInputError, match=r"are not an \(h, w, 5\) float32 cloud"):
        cloud_fields(np.zeros((2, 3, 4), np.float32), "xyzrgbl")

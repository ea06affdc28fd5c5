"""Pictures and point-cloud files written for people: exact values, not just existence."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from plyread import read_ply_vertices

from semantic_depth_ros.evaluation.visualize import confidence_image, error_map, summary_sheet, write_ply, write_rgb_png
from semantic_depth_ros.geometry.pointcloud import pack_rgb


def test_write_ply_keeps_finite_points_and_unpacks_rgb(tmp_path):
    cloud = np.zeros((2, 2, 4), dtype=np.float32)
    cloud[..., 0] = [[1.0, 2.0], [3.0, 4.0]]
    cloud[..., 1] = -0.5
    cloud[..., 2] = [[10.0, np.nan], [30.0, 40.0]]
    rgb = torch.tensor([[[255, 128, 1], [0, 0, 0]], [[1, 2, 3], [9, 8, 7]]], dtype=torch.uint8)
    cloud[..., 3] = pack_rgb(rgb).numpy()
    count = write_ply(tmp_path / "c.ply", cloud)
    vertices = read_ply_vertices(tmp_path / "c.ply")
    assert count == 3 and len(vertices) == 3
    assert vertices["x"].tolist() == [1.0, 3.0, 4.0]
    assert vertices["z"].tolist() == [10.0, 30.0, 40.0]
    assert vertices["y"].tolist() == [-0.5] * 3
    assert [tuple(v) for v in zip(vertices["red"], vertices["green"], vertices["blue"])] == [
        (255, 128, 1), (1, 2, 3), (9, 8, 7)]
    assert (tmp_path / "c.ply").read_bytes().startswith(b"ply\nformat binary_little_endian 1.0\nelement vertex 3\n")


def test_error_map_colours_follow_relative_error():
    gt = np.array([[10.0, 10.0, 0.0, 10.0]], dtype=np.float32)
    pred = np.array([[10.0, 13.0, 5.0, np.nan]], dtype=np.float32)
    rgb = error_map(pred, gt, max_rel=0.3)
    hot = cv2.applyColorMap(np.array([[0, 255]], dtype=np.uint8), cv2.COLORMAP_HOT)[0, :, ::-1]
    assert rgb[0, 0].tolist() == hot[0].tolist()  # exact prediction: coldest
    assert rgb[0, 1].tolist() == hot[1].tolist()  # 30 % error: hottest
    assert rgb[0, 2].tolist() == [40, 40, 40]  # no ground truth
    assert rgb[0, 3].tolist() == hot[1].tolist()  # missing prediction counts as the worst


def test_confidence_image_is_grey_scale():
    image = confidence_image(np.array([[0.0, 1.0, 0.5, np.nan]], dtype=np.float32))
    assert image.shape == (1, 4, 3) and image.dtype == np.uint8
    assert image[0, :, 0].tolist() == [0, 255, 128, 0]
    assert (image[..., 0] == image[..., 2]).all()


def test_summary_sheet_lays_out_text_and_tiles(tmp_path):
    tile = np.full((50, 100, 3), 200, dtype=np.uint8)
    sheet = summary_sheet([[("a", tile), ("b", tile)], [("c", tile)]], ["line one", "line two"], tile_width=100)
    text_height = 18 * 2 + 10
    row_height = 22 + 50 + 4
    wide_row_height = 22 + 102 + 4  # a row of one tile fills the page: 204 px wide, so 102 px tall
    assert sheet.shape == (text_height + row_height + wide_row_height, 2 * 104, 3)
    wide = sheet[text_height + row_height + 22:text_height + row_height + 22 + 102]
    assert (wide[:, :204] == 200).all() and (wide[:, 204:] == 255).all()
    write_rgb_png(tmp_path / "s.png", sheet)
    back = cv2.imread(str(tmp_path / "s.png"))
    assert back.shape == sheet.shape

"""The published Eigen-split ground truth (devkit pixel rule, Velodyne-x depth) on hand-made scans, the split
lists (both formats, shipped by name), and `semantic-depth export-gt` / `evaluate --gt-file`."""

from __future__ import annotations

import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from semantic_depth_ros import cli
from semantic_depth_ros.data.depth_archive import DepthArchive, write_depth_archive
from semantic_depth_ros.data.kitti import KittiDepthDataset, load_kitti_calibration
from semantic_depth_ros.data.kitti_reference_gt import reference_velodyne_depth
from semantic_depth_ros.data.kitti_split import read_split_file, resolve_split_file
from semantic_depth_ros.errors import DatasetError

DATE, DRIVE = "2011_09_26", "2011_09_26_drive_0002_sync"
WIDTH, HEIGHT = 24, 12
# P_rect_02 = [[64, 0, 10, 20], [0, 64, 5, 0], [0, 0, 1, 0]], R_rect_00 = I, Velodyne (x fwd, y left, z up) ->
# camera (x right, y down, z fwd) with T = (0, 0, -0.5): camera z = x - 0.5. Powers of two keep every
# projection exact, so the boundary cases are exact halves. u = (64 X + 10 Z + 20) / Z, v = (64 Y + 5 Z) / Z.
P_RECT = np.array([[64.0, 0.0, 10.0, 20.0], [0.0, 64.0, 5.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
R_VELO = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
SCAN = np.array([
    [4.5, -0.25, -0.125],    # Z 4, u 19.0, v 7.0 -> pixel (row 6, col 18), depth 4.5 (the Velodyne x, not z = 4)
    [8.5, 0.5, 0.0],         # u 8.5 exactly: np.round -> 8 (half to even; MATLAB would give 9) -> col 7; v 5 -> row 4
    [8.5, 0.375, -0.0625],   # u 9.5, v 5.5 exactly: np.round -> 10 and 6 -> (row 5, col 9)
    [12.5, -0.2875, 0.0],    # Z 12, u 13.2 -> (row 4, col 12), depth 12.5: farther, must lose to the next point
    [6.5, 0.0, 0.0],         # Z 6, u 13.33 -> (row 4, col 12), depth 6.5: the smallest wins
    [-3.0, 0.0, 0.0],        # behind the sensor: would project to (row 4, col 3) if it were kept
])
EXPECTED = {(6, 18): 4.5, (4, 7): 8.5, (5, 9): 8.5, (4, 12): 6.5}


def numbers(values: np.ndarray) -> str:
    return " ".join(f"{v:.10e}" for v in np.asarray(values, dtype=float).ravel())


def write_kitti(root: Path, frames: int = 2) -> Path:
    """A KITTI raw tree of ``frames`` frames sharing SCAN; returns a monodepth2-format split file."""
    date_dir = root / DATE
    drive = date_dir / DRIVE
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    (date_dir / "calib_cam_to_cam.txt").write_text(
        f"calib_time: 09-Jan-2012 13:57:47\nR_rect_00: {numbers(np.eye(3))}\n"
        f"S_rect_02: {WIDTH:.6e} {HEIGHT:.6e}\nP_rect_02: {numbers(P_RECT)}\n")
    (date_dir / "calib_velo_to_cam.txt").write_text(f"R: {numbers(R_VELO)}\nT: 0 0 -0.5\n")
    for frame in range(frames):
        np.column_stack([SCAN, np.ones(len(SCAN))]).astype("<f4").tofile(
            drive / "velodyne_points" / "data" / f"{frame:010d}.bin")
        cv2.imwrite(str(drive / "image_02" / "data" / f"{frame:010d}.png"), np.full((HEIGHT, WIDTH, 3), 90, np.uint8))
    split = root.parent / "split.txt"
    split.write_text("".join(f"{DATE}/{DRIVE} {frame} l\n" for frame in range(frames)))
    return split


def expected_map() -> np.ndarray:
    depth = np.zeros((HEIGHT, WIDTH), dtype=np.float32)
    for (row, col), value in EXPECTED.items():
        depth[row, col] = value
    return depth


def test_reference_projection_follows_the_two_rules(tmp_path: Path) -> None:
    write_kitti(tmp_path / "kitti", frames=1)
    calibration = load_kitti_calibration(tmp_path / "kitti" / DATE)
    np.testing.assert_array_equal(calibration.velo_to_image, P_RECT @ np.vstack(
        [np.column_stack([R_VELO, [0, 0, -0.5]]), [0, 0, 0, 1]]))
    depth = reference_velodyne_depth(SCAN, calibration.velo_to_image, WIDTH, HEIGHT)
    assert depth.dtype == np.float32 and depth.shape == (HEIGHT, WIDTH)
    np.testing.assert_array_equal(depth, expected_map())
    assert depth[4, 3] == 0.0  # the point behind the sensor is dropped, not drawn
    order_swapped = reference_velodyne_depth(SCAN[[0, 1, 2, 4, 3, 5]], calibration.velo_to_image, WIDTH, HEIGHT)
    np.testing.assert_array_equal(order_swapped, expected_map())  # smallest wins whatever the order


def test_dataset_reference_and_geometric_projections_differ_as_documented(tmp_path: Path) -> None:
    split = write_kitti(tmp_path / "kitti", frames=1)
    reference = KittiDepthDataset(tmp_path / "kitti", split, projection="reference")[0]["depth"][0].numpy()
    np.testing.assert_array_equal(reference, expected_map())
    geometric = KittiDepthDataset(tmp_path / "kitti", split)[0]["depth"][0].numpy()
    assert geometric[7, 19] == pytest.approx(4.0)  # floor(u + 0.5) = 19, floor(v + 0.5) = 7, camera z = 4
    assert geometric[6, 18] == 0.0
    with pytest.raises(DatasetError, match="projection must be one of"):
        KittiDepthDataset(tmp_path / "kitti", split, projection="matlab")


def test_split_reader_accepts_both_formats_and_names_the_bad_line(tmp_path: Path) -> None:
    monodepth = tmp_path / "monodepth.txt"
    monodepth.write_text(f"{DATE}/{DRIVE}/image_02/data/0000000069.jpg {DATE}/{DRIVE}/image_03/data/0000000069.jpg\n"
                         f"\n{DATE}/{DRIVE}/image_03/data/0000000007.png {DATE}/{DRIVE}/image_02/data/0000000007.png\n")
    frames = read_split_file(monodepth)
    assert [(f.drive, f.frame, f.camera) for f in frames] == [(f"{DATE}/{DRIVE}", 69, 2), (f"{DATE}/{DRIVE}", 7, 3)]
    monodepth2 = tmp_path / "monodepth2.txt"
    monodepth2.write_text(f"{DATE}/{DRIVE} 0000000069 l\n{DATE}/{DRIVE} 7 r\n")
    assert [(f.frame, f.camera) for f in read_split_file(monodepth2)] == [(69, 2), (7, 3)]
    bad = tmp_path / "bad.txt"
    bad.write_text(f"{DATE}/{DRIVE} 1 l\n{DATE}/{DRIVE}/image_02/data/0000000069.tif x\n")
    with pytest.raises(DatasetError) as info:
        read_split_file(bad)
    assert str(info.value).startswith(f"{bad}:2: expected '<date>/<drive> <frame> <l|r>' or")
    assert "\n" not in str(info.value)
    binary = tmp_path / "weights.pt"
    binary.write_bytes(b"PK\x03\x04\x80\xff")
    with pytest.raises(DatasetError, match=f"^split file {binary} is not a text file$"):
        read_split_file(binary)


def test_a_jpg_split_line_reads_the_png_of_the_raw_download(tmp_path: Path) -> None:
    write_kitti(tmp_path / "kitti", frames=1)
    split = tmp_path / "jpg.txt"
    split.write_text(f"{DATE}/{DRIVE}/image_02/data/0000000000.jpg {DATE}/{DRIVE}/image_03/data/0000000000.jpg\n")
    dataset = KittiDepthDataset(tmp_path / "kitti", split, projection="reference")
    assert dataset.image_path(0).suffix == ".png" and dataset[0]["image"].shape == (3, HEIGHT, WIDTH)


def test_the_eigen_split_is_shipped_and_found_by_name(tmp_path: Path) -> None:
    counts = {"eigen_test": 697, "eigen_val": 888, "eigen_train": 22600}
    for name, count in counts.items():
        frames = read_split_file(name)
        assert len(frames) == count and resolve_split_file(name).name == f"{name}_files.txt"
        assert {f.camera for f in frames} == {2}
    first = read_split_file("eigen_test")[0]
    assert (first.drive, first.frame) == ("2011_09_26/2011_09_26_drive_0002_sync", 69)
    with pytest.raises(DatasetError, match=r"KITTI split 'eigen_tset' is neither a file nor an installed name "
                                           r"\(installed: eigen_test, eigen_train, eigen_val\)"):
        read_split_file("eigen_tset")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_export_gt_writes_one_float32_map_per_frame_without_pickle(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    split = write_kitti(tmp_path / "kitti", frames=3)
    out = tmp_path / "gt_depths.npz"
    code, stdout, err = run(capsys, "export-gt", "--root", str(tmp_path / "kitti"), "--split-file", str(split),
                            "--out", str(out), "--no-progress")
    assert code == 0, err
    assert "wrote 3 frames (reference projection)" in stdout
    with np.load(out, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["00000", "00001", "00002"]
        for key in archive.files:
            assert archive[key].dtype == np.float32 and archive[key].shape == (HEIGHT, WIDTH)
            np.testing.assert_array_equal(archive[key], expected_map())
    code, _, err = run(capsys, "export-gt", "--root", str(tmp_path / "kitti"), "--split-file", str(split),
                       "--out", str(out))
    assert code == 1 and err == f"error: {out} exists; pass --overwrite to replace it\n"


@pytest.mark.parametrize("where,message", [
    ("folder.npz", "error: --out {out} is a folder; give a file name such as gt_depths.npz\n"),
    ("file.txt/gt.npz", "error: --out {out}: folder {parent}: cannot be created"),
])
def test_export_gt_refuses_an_unusable_output_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                           where: str, message: str) -> None:
    """A folder as --out, or a parent folder that cannot be made: one line, not a traceback after the projection."""
    split = write_kitti(tmp_path / "kitti", frames=1)
    (tmp_path / "folder.npz").mkdir()
    (tmp_path / "file.txt").write_text("a file, not a folder")
    out = tmp_path / where
    code, _, err = run(capsys, "export-gt", "--root", str(tmp_path / "kitti"), "--split-file", str(split),
                       "--out", str(out), "--overwrite", "--no-progress")
    assert code == 1 and err.startswith(message.format(out=out, parent=out.parent)) and err.count("\n") == 1


def test_gt_file_is_checked_and_replaces_the_projection(tmp_path: Path) -> None:
    split = write_kitti(tmp_path / "kitti", frames=2)
    good = tmp_path / "good.npz"
    write_depth_archive(good, [expected_map() * 2, expected_map() * 3])
    dataset = KittiDepthDataset(tmp_path / "kitti", split, gt_file=good)
    np.testing.assert_array_equal(dataset[1]["depth"][0].numpy(), expected_map() * 3)
    copied = pickle.loads(pickle.dumps(dataset.gt_archive))  # as DataLoader workers get it: no shared handle
    np.testing.assert_array_equal(copied[0], expected_map() * 2)
    short = tmp_path / "short.npz"
    write_depth_archive(short, [expected_map()])
    with pytest.raises(DatasetError, match=f"^gt file {short} holds 1 frames, the split lists 2$"):
        KittiDepthDataset(tmp_path / "kitti", split, gt_file=short)
    small = tmp_path / "small.npz"
    write_depth_archive(small, [expected_map(), np.zeros((5, 7), np.float32)])
    with pytest.raises(DatasetError, match=f"^gt file {small} frame 00001 is 7x5, the image is 24x12$"):
        KittiDepthDataset(tmp_path / "kitti", split, gt_file=small)[1]
    ragged = tmp_path / "monodepth2.npz"
    data = np.empty(2, dtype=object)
    data[0], data[1] = expected_map(), np.zeros((3, 3), np.float32)
    np.savez_compressed(ragged, data=data)
    with pytest.raises(DatasetError, match="single 'data' array \\(needs pickle\\)"):
        DepthArchive(ragged, 2)
    objects = tmp_path / "objects.npz"
    np.savez_compressed(objects, **{"00000": data, "00001": data})
    with pytest.raises(DatasetError, match="frame 00000 has dtype object, expected float32 metres"):
        DepthArchive(objects, 2)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="is not an npz archive"):
        DepthArchive(tmp_path / "junk.npz", 2)


def test_a_corrupt_frame_of_the_gt_file_is_one_line(tmp_path: Path) -> None:
    """Damaged compressed data inside a frame (a bad copy, a full disk): DatasetError naming the frame, not zlib's."""
    path = tmp_path / "gt.npz"
    write_depth_archive(path, [np.random.default_rng(0).random((120, 200), dtype=np.float32) * 80])
    damaged = bytearray(path.read_bytes())
    for offset in range(300, 2000, 50):
        damaged[offset] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(DatasetError, match=f"^gt file {path}.* 00000(.npy)? (cannot be read|is not a numpy array) "):
        DepthArchive(path, 1)[0]

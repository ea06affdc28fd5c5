"""KITTI raw reader on a tiny fake drive, and the LiDAR densification."""

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from semantic_depth_ros.data.densify import densify_depth
from semantic_depth_ros.data.kitti import KittiDepthDataset, load_kitti_calibration, read_split_file
from semantic_depth_ros.errors import DatasetError, InvalidInputError

DATE = "2011_09_26"
DRIVE = "2011_09_26_drive_0002_sync"
WIDTH, HEIGHT = 64, 24
K2 = np.array([[60.0, 0.0, 31.5], [0.0, 58.0, 11.25], [0.0, 0.0, 1.0]])
K3 = np.array([[61.0, 0.0, 30.5], [0.0, 58.0, 11.25], [0.0, 0.0, 1.0]])
T2 = np.array([0.06, -0.0003, 0.0027])  # camera 2 offset in the rectified camera-0 frame
T3 = np.array([-0.47, 0.002, 0.003])
# Real KITTI 2011_09_26 rectification and a Velodyne->camera 0 extrinsic of the same form as KITTI's.
R_RECT = np.array([9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01, -4.278459e-03,
                   7.402527e-03, 4.351614e-03, 9.999631e-01]).reshape(3, 3)
R_VELO = np.array([7.533745e-03, -9.999714e-01, -6.166020e-04, 1.480249e-02, 7.280733e-04, -9.998902e-01,
                   9.998621e-01, 7.523790e-03, 1.480755e-02]).reshape(3, 3)
T_VELO = np.array([-4.069766e-03, -7.631618e-02, -2.717806e-01])
# (row, col, depth in camera 2): the LiDAR points are built to land 0.2 px right / 0.3 px above these pixels.
TARGETS = [(3, 5, 7.5), (12, 40, 15.25), (20, 60, 4.0), (8, 20, 30.0)]


def fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:.12e}" for v in np.asarray(values).reshape(-1))


def write_calibration(date_dir: Path) -> None:
    p2 = K2 @ np.hstack([np.eye(3), T2[:, None]])
    p3 = K3 @ np.hstack([np.eye(3), T3[:, None]])
    date_dir.mkdir(parents=True, exist_ok=True)
    (date_dir / "calib_cam_to_cam.txt").write_text(
        "calib_time: 09-Jan-2012 13:57:47\n"
        "corner_dist: 9.950000e-02\n"
        "S_00: 1.392000e+03 5.120000e+02\n"
        f"R_rect_00: {fmt(R_RECT)}\n"
        f"S_rect_02: {WIDTH:.6e} {HEIGHT:.6e}\n"
        f"P_rect_02: {fmt(p2)}\n"
        f"S_rect_03: {WIDTH:.6e} {HEIGHT:.6e}\n"
        f"P_rect_03: {fmt(p3)}\n"
    )
    (date_dir / "calib_velo_to_cam.txt").write_text(
        "calib_time: 15-Mar-2012 11:37:16\n"
        f"R: {fmt(R_VELO)}\n"
        f"T: {fmt(T_VELO)}\n"
        "delta_f: 0.000000e+00 0.000000e+00\n"
        "delta_c: 0.000000e+00 0.000000e+00\n"
    )


def camera_to_velo(points_cam: np.ndarray, offset: np.ndarray = T2) -> np.ndarray:
    """Invert the calibration chain by hand: camera 2 (or 3) -> rectified camera 0 -> camera 0 -> Velodyne."""
    rect0 = points_cam - offset
    cam0 = rect0 @ R_RECT  # R_RECT^T applied to row vectors
    return (cam0 - T_VELO) @ R_VELO


def target_points(K: np.ndarray) -> np.ndarray:
    rows = np.array([t[0] for t in TARGETS], dtype=np.float64) - 0.3
    cols = np.array([t[1] for t in TARGETS], dtype=np.float64) + 0.2
    depth = np.array([t[2] for t in TARGETS])
    rays = np.linalg.solve(K, np.stack([cols, rows, np.ones_like(cols)]))
    return (rays * depth).T


def write_scan(path: Path, velo: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.column_stack([velo, np.full(len(velo), 0.5)]).astype("<f4").tofile(path)


@pytest.fixture()
def kitti(tmp_path: Path) -> Path:
    root = tmp_path / "kitti"
    write_calibration(root / DATE)
    drive = root / DATE / DRIVE
    rng = np.random.default_rng(0)
    for frame in (69, 70):
        for camera in ("image_02", "image_03"):
            image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
            (drive / camera / "data").mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(drive / camera / "data" / f"{frame:010d}.png"), image)
    velo = camera_to_velo(target_points(K2))
    # A farther point on the ray of the first target (must lose) and a point behind the car (x < 0).
    occluded = camera_to_velo(target_points(K2)[:1] * 2.0)
    behind = np.array([[-5.0, 0.0, 0.0]])
    write_scan(drive / "velodyne_points" / "data" / "0000000069.bin", np.vstack([occluded, velo, behind]))
    write_scan(drive / "velodyne_points" / "data" / "0000000070.bin", camera_to_velo(target_points(K3), T3))
    (tmp_path / "split.txt").write_text(f"{DATE}/{DRIVE} 0000000069 l\n\n{DATE}/{DRIVE} 70 r\n")
    return root


def test_calibration_composes_rectification_and_baseline(kitti: Path):
    calibration = load_kitti_calibration(kitti / DATE)
    np.testing.assert_allclose(calibration.K, K2, atol=1e-9)
    assert calibration.image_size == (WIDTH, HEIGHT)
    points = target_points(K2)
    homogeneous = np.column_stack([camera_to_velo(points), np.ones(len(points))])
    # KITTI rotations are printed to 7 digits, so inverting them by transposing is exact to ~1e-6 only.
    np.testing.assert_allclose((calibration.velo_to_cam @ homogeneous.T).T[:, :3], points, atol=1e-5)
    right = load_kitti_calibration(kitti / DATE, camera=3)
    np.testing.assert_allclose(right.velo_to_cam[:3, 3] - calibration.velo_to_cam[:3, 3], T3 - T2, atol=1e-9)


def test_velodyne_depth_lands_on_known_pixels_nearest_wins(kitti: Path, tmp_path: Path):
    dataset = KittiDepthDataset(kitti, tmp_path / "split.txt")
    assert len(dataset) == 2
    sample = dataset[0]
    assert set(sample) == {"image", "depth", "fx"}
    assert sample["image"].shape == (3, HEIGHT, WIDTH) and sample["image"].dtype == torch.float32
    assert sample["depth"].shape == (1, HEIGHT, WIDTH) and sample["depth"].dtype == torch.float32
    assert sample["fx"] == pytest.approx(60.0)
    depth = sample["depth"][0].numpy()
    for row, col, value in TARGETS:
        assert depth[row, col] == pytest.approx(value, abs=1e-5)
    assert np.count_nonzero(depth) == len(TARGETS)
    bgr = cv2.imread(str(kitti / DATE / DRIVE / "image_02" / "data" / "0000000069.png"))
    np.testing.assert_allclose(sample["image"].numpy(), bgr[..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)


def test_right_camera_uses_image_03_and_its_calibration(kitti: Path, tmp_path: Path):
    sample = KittiDepthDataset(kitti, tmp_path / "split.txt")[1]
    assert sample["fx"] == pytest.approx(61.0)
    depth = sample["depth"][0].numpy()
    for row, col, value in TARGETS:
        assert depth[row, col] == pytest.approx(value, abs=1e-5)
    assert np.count_nonzero(depth) == len(TARGETS)
    bgr = cv2.imread(str(kitti / DATE / DRIVE / "image_03" / "data" / "0000000070.png"))
    np.testing.assert_allclose(sample["image"].numpy(), bgr[..., ::-1].transpose(2, 0, 1) / 255.0, atol=1e-7)


def test_densified_ground_truth_fills_between_points(kitti: Path, tmp_path: Path):
    sparse = KittiDepthDataset(kitti, tmp_path / "split.txt")[0]["depth"]
    dense = KittiDepthDataset(kitti, tmp_path / "split.txt", densify=True, densify_window=5)[0]["depth"]
    assert torch.count_nonzero(dense) > torch.count_nonzero(sparse)
    assert torch.equal(dense[sparse > 0], sparse[sparse > 0])
    assert dense[0, 3, 6].item() == pytest.approx(7.5)  # one pixel right of the 7.5 m point, nothing else near


def test_annotated_ground_truth_is_uint16_over_256(kitti: Path, tmp_path: Path):
    annotated = tmp_path / "data_depth_annotated"
    gt_dir = annotated / "train" / DRIVE / "proj_depth" / "groundtruth" / "image_02"
    gt_dir.mkdir(parents=True)
    raw = np.zeros((HEIGHT, WIDTH), dtype=np.uint16)
    raw[5, 7], raw[10, 30] = 2560, 65535
    cv2.imwrite(str(gt_dir / "0000000069.png"), raw)
    (tmp_path / "one.txt").write_text(f"{DATE}/{DRIVE} 0000000069 l\n")
    depth = KittiDepthDataset(kitti, tmp_path / "one.txt", gt="annotated", annotated_root=annotated)[0]["depth"][0]
    assert depth[5, 7].item() == 10.0
    assert depth[10, 30].item() == pytest.approx(65535 / 256)
    assert torch.count_nonzero(depth).item() == 2


def test_missing_files_name_the_path(kitti: Path, tmp_path: Path):
    (tmp_path / "one.txt").write_text(f"{DATE}/{DRIVE} 0000000069 l\n")
    with pytest.raises(DatasetError, match=r"missing annotated depth: .*train/2011_09_26_drive_0002_sync/proj_depth"):
        KittiDepthDataset(kitti, tmp_path / "one.txt", gt="annotated")[0]
    (kitti / DATE / DRIVE / "image_02" / "data" / "0000000069.png").unlink()
    with pytest.raises(DatasetError, match=r"missing file: .*image_02/data/0000000069\.png"):
        KittiDepthDataset(kitti, tmp_path / "one.txt")[0]
    (kitti / DATE / "calib_velo_to_cam.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing KITTI calibration file: .*2011_09_26/calib_velo_to_cam\.txt"):
        KittiDepthDataset(kitti, tmp_path / "one.txt")


def test_truncated_scan_and_bad_split_lines_are_rejected(kitti: Path, tmp_path: Path):
    scan = kitti / DATE / DRIVE / "velodyne_points" / "data" / "0000000069.bin"
    scan.write_bytes(b"\0" * 20)
    (tmp_path / "one.txt").write_text(f"{DATE}/{DRIVE} 0000000069 l\n")
    with pytest.raises(DatasetError, match=r"size 20 bytes is not a multiple of 16: .*0000000069\.bin"):
        KittiDepthDataset(kitti, tmp_path / "one.txt")[0]
    (tmp_path / "bad.txt").write_text(f"{DATE}/{DRIVE} 0000000069 l\n{DATE}/{DRIVE} sixty l\n")
    with pytest.raises(DatasetError, match=r"bad\.txt:2: expected '<date>/<drive> <frame> <l\|r>'"):
        read_split_file(tmp_path / "bad.txt")
    with pytest.raises(DatasetError, match="gt must be one of"):
        KittiDepthDataset(kitti, tmp_path / "one.txt", gt="lidar")


# --- densification ---------------------------------------------------------------------------------------


def sample_every_other(dense: np.ndarray) -> np.ndarray:
    sparse = np.zeros_like(dense)
    sparse[::2, ::2] = dense[::2, ::2]
    return sparse


def test_densify_reproduces_a_sampled_ramp_exactly():
    rows, cols = np.mgrid[0:21, 0:41].astype(np.float32)
    ramp = (20.0 + 0.05 * cols + 0.02 * rows).astype(np.float32)
    out = densify_depth(sample_every_other(ramp), window=5)
    # Interior pixels see a symmetric set of samples, so the inverse-distance average is the ramp itself.
    np.testing.assert_allclose(out[2:-2, 2:-2], ramp[2:-2, 2:-2], atol=1e-5)
    assert np.all(out > 0)


def test_densify_keeps_a_step_edge_on_the_foreground_side():
    dense = np.where(np.arange(40)[None, :] < 20, 10.0, 30.0).astype(np.float32).repeat(15, axis=0)
    sparse = sample_every_other(dense)
    out = densify_depth(sparse, window=5, band=0.2)
    np.testing.assert_array_equal(out[:, :20], 10.0)
    np.testing.assert_array_equal(out[0::2, 20], 30.0)  # measured background pixels keep their value
    np.testing.assert_array_equal(out[1::2, 20], 10.0)  # foreground grows by at most window // 2 pixels
    np.testing.assert_array_equal(out[:, 21:], 30.0)
    # Without the nearest-cluster gate the edge would be smeared into values of neither surface.
    smeared = densify_depth(sparse, window=5, band=10.0)
    assert 10.0 < smeared[1, 19] < 30.0


def test_densify_leaves_pixels_without_samples_empty_and_validates_arguments():
    sparse = np.zeros((20, 20), dtype=np.float32)
    sparse[0, 0] = 5.0
    out = densify_depth(sparse, window=5)
    assert out[1, 1] == 5.0 and out[10, 10] == 0.0 and np.count_nonzero(out) == 9
    assert np.count_nonzero(densify_depth(np.zeros((4, 4)))) == 0
    with pytest.raises(InvalidInputError, match="window must be an odd integer >= 3, got 4"):
        densify_depth(sparse, window=4)
    with pytest.raises(InvalidInputError, match="band must be a finite number >= 0, got -0.1"):
        densify_depth(sparse, band=-0.1)
    with pytest.raises(InvalidInputError, match=r"sparse depth must be HxW, got shape \(2, 2, 2\)"):
        densify_depth(np.zeros((2, 2, 2)))

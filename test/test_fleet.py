"""`semantic-depth fleet`: generated drives on one local Ray (2 CPUs, shared by the module) against infer-bag on
each drive alone; a worker killed once, a corrupt bag, a re-run, chunked drives (with and without --temporal)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from drive_bags import FRAME_NS, T0, make_drive, read_back

from semantic_depth_ros import cli
from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.fleet.drives import Window, chunk_windows, find_drives
from semantic_depth_ros.fleet.tasks import FAULT_ENV
from semantic_depth_ros.messages import image_array

ray = pytest.importorskip("ray")

DRIVES = ("d0", "d1", "d2", "d3")
# --batch 1: a chunk boundary inside a batch would change which frames share a network batch, and with them the
# last bits of the CPU kernels' float rounding; frame by frame, chunked and unchunked runs are bit-identical
COMMON = ("--image-topic", "/cam/image_raw", "--outputs", "depth,points", "--precision", "fp32", "--batch", "1")
# The temporal filter restarted one frame before a chunk (--chunk-warmup-s 0.1 at 10 Hz) against the unchunked
# run's filter with the whole drive behind it, on an untrained network (whose depth jumps from frame to frame):
# the median relative difference of the later chunks' frames stays below this (measured: 0.0008).
TEMPORAL_CHUNK_TOLERANCE = 0.01


@pytest.fixture(scope="module")
def kill_flags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kill")


@pytest.fixture(scope="module", autouse=True)
def local_ray(kill_flags: Path):
    """One local Ray for the module; its workers inherit the fault-injection variable (no flag file: no fault)."""
    os.environ[FAULT_ENV] = str(kill_flags)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    os.environ.pop(FAULT_ENV, None)


@pytest.fixture(scope="module")
def drives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("drives")
    for name in DRIVES:
        make_drive(folder, "mcap", name=name)
    return folder


def fleet(checkpoint: Path, out: Path, *args: str) -> int:
    return cli.main(["fleet", *args, "--checkpoint", str(checkpoint), "--out", str(out), *COMMON,
                     "--no-progress", "--max-retries", "1"])


def report(out: Path) -> dict:
    return json.loads((out / "fleet_report.json").read_text())


def files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def fleet_out(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoint: Path, drives: Path) -> Path:
    out = tmp_path_factory.mktemp("fleet") / "out"
    assert fleet(tiny_checkpoint, out, str(drives), "--lidar-topic", "/points") == 0
    return out


def test_each_drive_is_what_infer_bag_writes_and_a_rerun_replays_nothing(tmp_path, tiny_checkpoint, drives,
                                                                         fleet_out, capsys):
    first = report(fleet_out)
    assert [d["name"] for d in first["drives"]] == list(DRIVES)
    assert first["tasks_submitted"] == len(DRIVES)
    for drive in first["drives"]:
        assert (drive["status"], drive["read"], drive["written"], drive["skipped"], drive["scored"]) == (
            "done", 4, 4, 0, 4)
        assert drive["fps"] > 0 and drive["wall_s"] > 0 and drive["metrics"]["80"]["count"] == 4
    for name in DRIVES:  # infer-bag on the drive alone, into a folder of the same name (the bag file's name)
        alone = tmp_path / "alone" / name
        alone.parent.mkdir(exist_ok=True)
        assert cli.main(["infer-bag", str(drives / name), "--checkpoint", str(tiny_checkpoint), "--out", str(alone),
                         *COMMON, "--lidar-topic", "/points", "--device", "cpu", "--num-threads", "1",
                         "--no-progress"]) == 0
        fleet_files, alone_files = files(fleet_out / name), files(alone)
        assert set(fleet_files) == {f"{name}.mcap", "metadata.yaml", "metrics.json", "metrics.csv", "report.md"}
        assert fleet_files == alone_files, name
    # the fleet's metrics: weighted by scored frames = mean over every frame of the fleet
    rows = [row for name in DRIVES for row in json.loads((fleet_out / name / "metrics.json").read_text())["frames"]]
    assert first["fleet"]["weighted"]["80"]["abs_rel"] == pytest.approx(np.mean([r["abs_rel@80"] for r in rows]))
    worst = first["worst_frames"]
    assert len(worst) == 10 and worst[0]["abs_rel@80"] == max(r["abs_rel@80"] for r in rows)
    assert worst[0]["bag_time_ns"] == T0 + worst[0]["frame"] * FRAME_NS
    text = (fleet_out / "fleet_report.md").read_text()
    assert "## Worst drives" in text and "fleet (16 frames) | 80 m" in text and "fleet (4 drives) | 80 m" in text
    assert (fleet_out / "fleet_abs_rel.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    stamps = {name: (fleet_out / name / f"{name}.mcap").stat().st_mtime_ns for name in DRIVES}
    capsys.readouterr()
    assert fleet(tiny_checkpoint, fleet_out, str(drives), "--lidar-topic", "/points") == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("drives 4: 0 done, 4 skipped-existing, 0 failed")
    again = report(fleet_out)
    assert again["tasks_submitted"] == 0 and again["frames_written"] == 0  # no replay work at all
    assert [d["status"] for d in again["drives"]] == ["skipped-existing"] * 4
    assert [d["metrics"] for d in again["drives"]] == [d["metrics"] for d in first["drives"]]
    assert {name: (fleet_out / name / f"{name}.mcap").stat().st_mtime_ns for name in DRIVES} == stamps


def test_a_killed_worker_is_retried_and_a_corrupt_bag_fails_alone(tmp_path, tiny_checkpoint, drives, fleet_out,
                                                                   kill_flags, capsys):
    given = tmp_path / "given"
    given.mkdir()
    for name in ("d0", "d1"):
        shutil.copytree(drives / name, given / name)
    corrupt = given / "corrupt"
    shutil.copytree(drives / "d2", corrupt)
    bag_file = corrupt / "d2.mcap"
    bag_file.write_bytes(bag_file.read_bytes()[:5000])
    (kill_flags / "d1").touch()  # d1's first attempt ends its worker process
    out = tmp_path / "out"
    assert fleet(tiny_checkpoint, out, str(given), "--lidar-topic", "/points") == 1
    assert not (kill_flags / "d1").exists()  # the first attempt did die
    lines = capsys.readouterr().out.splitlines()
    assert lines[-2] == f"failed corrupt: cannot read bag {corrupt}: File end magic is invalid."
    got = {d["name"]: d for d in report(out)["drives"]}
    assert got["corrupt"]["status"] == "failed" and "File end magic is invalid" in got["corrupt"]["reason"]
    assert not (out / "corrupt").exists() and not list(out.glob("*.partial-*"))
    for name in ("d0", "d1"):
        assert got[name]["status"] == "done" and got[name]["written"] == 4
        mine, reference = files(out / name), files(fleet_out / name)  # nothing missing, nothing twice
        assert (mine[f"{name}.mcap"], mine["metrics.csv"]) == (reference[f"{name}.mcap"], reference["metrics.csv"])


def test_a_worker_that_dies_more_often_than_retried_fails_its_drive_with_the_reason(tmp_path, tiny_checkpoint,
                                                                                   drives, kill_flags):
    (kill_flags / "d0").touch()
    out = tmp_path / "out"
    assert cli.main(["fleet", str(drives / "d0"), "--checkpoint", str(tiny_checkpoint), "--out", str(out), *COMMON,
                     "--no-progress", "--max-retries", "0"]) == 1
    drive = report(out)["drives"][0]
    assert drive["status"] == "failed" and drive["reason"].startswith("worker lost after 0 retries: ")
    assert "\n" not in drive["reason"] and not (out / "d0").exists() and not (kill_flags / "d0").exists()


def test_chunked_drive_equals_the_unchunked_one(tmp_path, tiny_checkpoint, drives, fleet_out):
    out = tmp_path / "out"
    assert fleet(tiny_checkpoint, out, str(drives / "d0"), "--lidar-topic", "/points", "--chunk-s", "0.15") == 0
    drive = report(out)["drives"][0]
    assert (drive["status"], drive["chunks"], drive["read"], drive["written"]) == ("done", 3, 4, 4)
    assert report(out)["tasks_submitted"] == 4  # three windows and the merge
    whole, chunked = fleet_out / "d0", out / "d0"
    for name in ("metrics.json", "metrics.csv", "report.md"):
        assert (chunked / name).read_bytes() == (whole / name).read_bytes(), name
    assert {topic: [(t, raw) for t, _, raw in messages] for topic, messages in read_back(chunked).items()} == {
        topic: [(t, raw) for t, _, raw in messages] for topic, messages in read_back(whole).items()}
    assert not (out / ".fleet" / "chunks" / "d0").exists()


def _depths(folder: Path) -> list[np.ndarray]:
    return [image_array(msg) for _, msg, _ in read_back(folder)["/cam/depth"]]


def test_chunks_warm_the_temporal_filter_before_their_window(tmp_path, tiny_checkpoint, drives):
    bag = str(drives / "d3")
    assert fleet(tiny_checkpoint, tmp_path / "whole", bag, "--temporal", "static") == 0
    assert fleet(tiny_checkpoint, tmp_path / "warm", bag, "--temporal", "static", "--chunk-s", "0.15") == 0
    assert fleet(tiny_checkpoint, tmp_path / "short", bag, "--temporal", "static", "--chunk-s", "0.15",
                 "--chunk-warmup-s", "0.1") == 0
    whole, warm, short = (_depths(tmp_path / name / "d3") for name in ("whole", "warm", "short"))
    assert len(whole) == len(warm) == len(short) == 4  # the warm-up frames are not written twice
    assert [report(tmp_path / name)["drives"][0]["read"] for name in ("warm", "short")] == [4, 4]  # nor counted
    for a, b in zip(whole, warm):  # a warm-up longer than the drive: the filter state of the unchunked run
        np.testing.assert_allclose(b, a, rtol=1e-5, equal_nan=True)
    for a, b in zip(whole[:2], short[:2]):  # the first window never warms up
        np.testing.assert_allclose(b, a, rtol=1e-5, equal_nan=True)
    for a, b in zip(whole[2:], short[2:]):  # one frame of warm-up instead of two: close, not equal
        valid = np.isfinite(a) & np.isfinite(b)
        difference = float(np.median(np.abs(b[valid] - a[valid]) / a[valid]))
        assert 0 < difference < TEMPORAL_CHUNK_TOLERANCE


def test_chunk_windows_cover_the_selection_once():
    second = 1_000_000_000
    assert chunk_windows(10 * second, 4 * second, None, None, second) == [
        Window(0, None, 4 * second, 0), Window(1, 4 * second, 8 * second, second), Window(2, 8 * second, None, second)]
    assert chunk_windows(10 * second, 4 * second, 2 * second, 5 * second, 0) == [
        Window(0, 2 * second, 5 * second + 1, 0)]  # --end is inclusive
    assert chunk_windows(8 * second, 4 * second, None, None, 0) == [Window(0, None, 4 * second, 0),
                                                                    Window(1, 4 * second, None, 0)]
    with pytest.raises(ConfigError, match="--chunk-s"):
        chunk_windows(second, 0, None, None, 0)


def test_drives_are_found_and_named_without_collisions(tmp_path):
    root = tmp_path / "root"
    for folder in ("day1/a", "day2/a", "day2/b"):
        (root / folder).mkdir(parents=True)
        (root / folder / "metadata.yaml").write_text("x")
    (root / "day1" / "c.bag").write_bytes(b"")
    (root / "out").mkdir()
    (root / "out" / "metadata.yaml").write_text("x")  # the fleet's own output is never a drive
    found = find_drives([root], root / "out")
    assert [(d.name, d.bag.relative_to(root).as_posix()) for d in found] == [
        ("day1__a", "day1/a"), ("day1__c", "day1/c.bag"), ("day2__a", "day2/a"), ("day2__b", "day2/b")]
    with pytest.raises(ConfigError, match="would both write"):
        find_drives([root / "day1" / "a", root / "day2" / "a"], tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="holds no bag"):
        find_drives([tmp_path / "empty"], tmp_path / "o")

#!/usr/bin/env python3
"""Benchmark `semantic-depth fleet` against `infer-bag` run on the same drives one after another.

Generates DRIVES drives of FRAMES frames (the infer-bag tests' generated drive: camera, camera_info, LiDAR,
/tf_static; here at SIZE) and an untrained ``resnet18_fast`` checkpoint, then, every replay LiDAR-scored with
``--outputs depth,points --device cpu --num-threads 1``:

1. ``infer-bag`` on each drive, one after another, in this process (the model loaded once per drive, as a user's
   loop of commands would);
2. ``fleet`` on a local Ray with 1 CPU (one worker), then with 2 CPUs (two workers), each a fresh command
   (Ray's start included in the wall time, and printed alone too).

Prints wall times, frames per second, the speed-up of two workers over one and the fleet's throughput against
infer-bag's sum, with the load average. Numbers, not assertions: run it on a quiet machine for figures to quote.
Usage: ``PYTHONPATH=. python scripts/bench_fleet.py [--drives 6] [--frames 30] [--size 188x620] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "test"))  # the tests' generated drive


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drives", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="188x620", help="HxW of the generated images")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))

    from drive_bags import make_drive

    from semantic_depth_ros import cli
    from semantic_depth_ros.data.synthetic import render_frame

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_fleet_"))
    work.mkdir(parents=True, exist_ok=True)
    frames = [render_frame("kitti_like", i, height=height, width=width, with_lidar=True) for i in range(args.frames)]
    drives = work / "drives"
    shutil.rmtree(drives, ignore_errors=True)
    drives.mkdir()
    for i in range(args.drives):
        make_drive(drives, "mcap", name=f"drive{i:02d}", frames=frames)
    checkpoint = work / "resnet18_fast.pt"
    if not checkpoint.exists():
        cli.main(["init-checkpoint", "--preset", "resnet18_fast", "--out", str(checkpoint)])
    common = ["--image-topic", "/cam/image_raw", "--checkpoint", str(checkpoint), "--outputs", "depth,points",
              "--lidar-topic", "/points", "--device", "cpu", "--num-threads", "1", "--no-progress"]
    total = args.drives * args.frames
    print(f"{args.drives} drives x {args.frames} frames at {height}x{width}; load average {os.getloadavg()}")

    alone = work / "alone"
    shutil.rmtree(alone, ignore_errors=True)
    alone.mkdir()
    started = time.perf_counter()
    for bag in sorted(drives.iterdir()):
        if cli.main(["infer-bag", str(bag), "--out", str(alone / bag.name), *common]) != 0:
            return 1
    sequential = time.perf_counter() - started
    print(f"infer-bag one after another: {sequential:.1f} s, {total / sequential:.2f} frames/s; "
          f"load average {os.getloadavg()}")

    walls = {}
    for workers in (1, 2):
        out = work / f"fleet{workers}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "semantic_depth_ros.cli", "fleet", str(drives), "--out", str(out),
                        "--num-cpus", str(workers), *common], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        walls[workers] = time.perf_counter() - started
        ray_start = json.loads((out / "fleet_report.json").read_text())["ray_start_s"]
        print(f"fleet, {workers} worker(s): {walls[workers]:.1f} s command (Ray's start {ray_start:.1f} s of it), "
              f"{total / walls[workers]:.2f} frames/s; load average {os.getloadavg()}")
    print(f"speed-up 2 workers / 1: {walls[1] / walls[2]:.2f}x; fleet (1 worker) throughput / infer-bag one after "
          f"another: {sequential / walls[1]:.2f}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

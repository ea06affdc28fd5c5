"""Publishing one frame of every output, the node's path against the rclpy-message path, side by side.

    PYTHONPATH=$PWD python scripts/bench_publish.py [--size 375x1242] [--frames 30]

A subscriber process (raw subscriptions to every output, the package's Fast DDS profile) receives; this process
publishes the same frame's outputs alternately as the message core's CDR bytes (``messages.to_cdr``, what the
node publishes) and as rclpy message objects (``ros.messages.to_msg``, the path the node had before), one frame
in flight, and prints p50/p95 of building the messages and of the ``publish`` calls, beside a memcpy of the same
bytes. A developer's measurement, not part of the package.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

SUBSCRIBER = """
import sys, time, rclpy
from rclpy.node import Node
from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES
rclpy.init()
node = Node("bench_publish_sink")
count = [0]
def got(data):
    count[0] += 1
subs = [node.create_subscription(t, topic, got, 10, raw=True) for topic, t in OUTPUT_MESSAGES.values()]
print("ready", flush=True)
try:
    rclpy.spin(node)
except BaseException:
    pass
"""


def frame_fields(height: int, width: int) -> dict:
    """Every output's fields for one frame of random content (14.4 MB at 375x1242)."""
    from semantic_depth_ros.geometry.intrinsics import Intrinsics
    from semantic_depth_ros.messages import camera_info_fields, cloud_fields, image_fields

    rng = np.random.default_rng(0)
    return {
        "depth": image_fields(rng.random((height, width), dtype=np.float32), "32FC1"),
        "depth_info": camera_info_fields(Intrinsics(700.0, 700.0, width / 2, height / 2, width, height)),
        "points": cloud_fields(rng.random((height, width, 4), dtype=np.float32)),
        "semantic": image_fields(rng.integers(0, 19, (height, width), dtype=np.uint8), "mono8"),
        "semantic_color": image_fields(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "rgb8"),
        "confidence": image_fields(rng.random((height, width), dtype=np.float32), "32FC1"),
        "depth_color": image_fields(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "rgb8"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="375x1242")
    parser.add_argument("--frames", type=int, default=30)
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))

    from semantic_depth_ros.ros.distro import dds_profile_environment
    from semantic_depth_ros.ros.node_process import random_domain_id

    env = dict(os.environ, ROS_DOMAIN_ID=str(random_domain_id()), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.update(dds_profile_environment(env))
    os.environ.update(env)
    sink = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout.readline().strip() == "ready"
        return _measure(height, width, args.frames)
    finally:
        sink.terminate()
        sink.wait(10)


def _measure(height: int, width: int, frames: int) -> int:
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import Header

    from semantic_depth_ros.messages import MessageHeader, to_cdr
    from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES
    from semantic_depth_ros.ros.messages import to_msg

    rclpy.init()
    node = Node("bench_publish_source")
    publishers = {key: node.create_publisher(t, topic, 10) for key, (topic, t) in OUTPUT_MESSAGES.items()}
    while any(p.get_subscription_count() == 0 for p in publishers.values()):
        time.sleep(0.05)
    fields = frame_fields(height, width)
    total = sum(getattr(f, "data", np.empty(0)).nbytes for f in fields.values())
    source = np.random.default_rng(1).integers(0, 256, total, dtype=np.uint8)
    target = np.empty_like(source)
    times: dict[str, list[float]] = {name: [] for name in ("cdr build", "cdr publish", "msg build", "msg publish",
                                                           "memcpy")}
    header = Header(frame_id="camera_optical")
    for frame in range(frames):
        header.stamp.sec = frame
        for path in ("cdr", "msg"):
            start = time.perf_counter()
            if path == "cdr":
                messages = {key: to_cdr(f, MessageHeader(frame, 0, "camera_optical")) for key, f in fields.items()}
            else:
                messages = {key: to_msg(header, f) for key, f in fields.items()}
            built = time.perf_counter()
            for key, message in messages.items():
                publishers[key].publish(message)
            done = time.perf_counter()
            times[f"{path} build"].append(built - start)
            times[f"{path} publish"].append(done - built)
            time.sleep(0.15)  # one frame in flight: the subscriber takes it before the next
        start = time.perf_counter()
        np.copyto(target, source)
        times["memcpy"].append(time.perf_counter() - start)
    print(f"one frame of every output at {height}x{width}: {total / 1e6:.1f} MB, {frames} frames, "
          f"load average {os.getloadavg()[0]:.2f}")
    for name, samples in times.items():
        p50, p95 = np.percentile(np.asarray(samples) * 1e3, [50, 95])
        print(f"  {name:<12} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())

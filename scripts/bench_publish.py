"""Publishing one frame of every output: the node's path against the previous ones, side by side.

    PYTHONPATH=$PWD python scripts/bench_publish.py [--size 375x1242] [--frames 30] [--subscribers 0]
        [--transport shm|udp] [--profile FILE] [--env NAME=VALUE ...]

A subscriber process (raw subscriptions to every output, the package's Fast DDS profile unless ``--profile``)
receives (``--subscribers 0``: none is started); this process publishes the same frame's outputs in turn as the
message core's CDR bytes through rcl (``ros.serialized_publish``, the node's path: GIL released, no copy by
rclpy), as the same bytes through rclpy's ``Publisher.publish`` (the node's previous path) and as rclpy message
objects (``ros.messages.to_msg``, the path before that), one frame in flight, and prints p50/p95 of building the
messages and of the ``publish`` calls, beside a memcpy of the same bytes. ``--transport`` keeps only the
profile's shared-memory or UDP transport (a copy of the profile in a temporary file); ``--env`` sets variables
for both processes (e.g. ``RMW_FASTRTPS_PUBLICATION_MODE=SYNCHRONOUS``). ``--gil`` runs a Python thread beside the
publishes, waking every 0.5 ms, and prints the longest gap between its wake-ups during each path's publish calls
(how long the publishing thread kept every other Python thread, e.g. the node's worker, waiting for the GIL). A developer's measurement,
not part of the package.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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
    parser.add_argument("--subscribers", type=int, choices=(0, 1), default=1)
    parser.add_argument("--transport", choices=("shm", "udp"), help="keep only this transport of the profile")
    parser.add_argument("--profile", help="a Fast DDS profile instead of the package's")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--gil", action="store_true", help="measure how long publishing holds the GIL")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))

    from semantic_depth_ros.ros.distro import dds_profile_environment, dds_profile_variable
    from semantic_depth_ros.ros.node_process import random_domain_id

    env = dict(os.environ, ROS_DOMAIN_ID=str(random_domain_id()), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    if args.profile:
        env[dds_profile_variable(env)] = args.profile
    env.update(dds_profile_environment(env))
    env.update(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        if args.transport:
            variable = dds_profile_variable(env)
            dropped = {"shm": "semantic_depth_udp", "udp": "semantic_depth_shm"}[args.transport]
            text = Path(env[variable]).read_text()
            text = text.replace(f"<transport_id>{dropped}</transport_id>\n        </userTransports>",
                                "</userTransports>").replace(
                f"<userTransports>\n          <transport_id>{dropped}</transport_id>", "<userTransports>")
            assert text.count(dropped) == 1, "the profile's userTransports are not as expected"
            env[variable] = str(Path(tmp) / "profile.xml")
            Path(env[variable]).write_text(text)
        os.environ.update(env)
        print(f"profile {env.get(dds_profile_variable(env))}, transport {args.transport or 'shm+udp'}, "
              f"subscribers {args.subscribers}, env {args.env}")
        if not args.subscribers:
            return _measure(height, width, args.frames, subscribed=False, gil=args.gil)
        sink = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], env=env, stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout.readline().strip() == "ready"
            return _measure(height, width, args.frames, subscribed=True, gil=args.gil)
        finally:
            sink.terminate()
            sink.wait(10)


class _Ticker(threading.Thread):
    """A Python thread that notes the longest gap between its iterations (time spent waiting for the GIL)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.reset()

    def reset(self) -> None:
        self.longest, self._last = 0.0, time.perf_counter()

    def run(self) -> None:
        while True:
            time.sleep(0.0005)  # mostly asleep: it hardly competes for the cores or the GIL
            now = time.perf_counter()
            self.longest, self._last = max(self.longest, now - self._last), now


def _measure(height: int, width: int, frames: int, subscribed: bool, gil: bool) -> int:
    import rclpy
    from rclpy.node import Node
    from std_msgs.msg import Header

    from semantic_depth_ros.messages import MessageHeader, to_cdr
    from semantic_depth_ros.ros.camera_channel import OUTPUT_MESSAGES, qos_profile
    from semantic_depth_ros.ros.messages import to_msg
    from semantic_depth_ros.ros.serialized_publish import native_publish_available, publish_serialized

    rclpy.init()
    node = Node("bench_publish_source")
    qos = qos_profile("reliable", 1)  # the node's default output QoS
    publishers = {key: node.create_publisher(t, topic, qos) for key, (topic, t) in OUTPUT_MESSAGES.items()}
    while subscribed and any(p.get_subscription_count() == 0 for p in publishers.values()):
        time.sleep(0.05)
    assert all(native_publish_available(p) for p in publishers.values())
    fields = frame_fields(height, width)
    total = sum(getattr(f, "data", np.empty(0)).nbytes for f in fields.values())
    source = np.random.default_rng(1).integers(0, 256, total, dtype=np.uint8)
    target = np.empty_like(source)
    paths = ("rcl", "rclpy", "msg")  # the node's path; the same bytes through rclpy; rclpy message objects
    times: dict[str, list[float]] = {f"{path} {part}": [] for path in paths for part in ("build", "publish")}
    times["memcpy"] = []
    ticker = _Ticker() if gil else None
    if ticker is not None:
        ticker.start()
        times.update({f"{path} GIL wait": [] for path in paths})
    header = Header(frame_id="camera_optical")
    for frame in range(frames):
        header.stamp.sec = frame
        for path in paths:
            start = time.perf_counter()
            if path == "msg":
                messages = {key: to_msg(header, f) for key, f in fields.items()}
            else:
                messages = {key: to_cdr(f, MessageHeader(frame, 0, "camera_optical")) for key, f in fields.items()}
            built = time.perf_counter()
            if ticker is not None:
                ticker.reset()
            for key, message in messages.items():
                if path == "rcl":
                    publish_serialized(publishers[key], message)
                else:
                    publishers[key].publish(message)
            done = time.perf_counter()
            times[f"{path} build"].append(built - start)
            times[f"{path} publish"].append(done - built)
            if ticker is not None:
                times[f"{path} GIL wait"].append(ticker.longest)
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

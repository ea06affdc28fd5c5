"""What real cameras send, through the node over DDS: every encoding, REP 104 binning/ROI, rectified input.

One node process serves two cameras (shared network): ``raw`` on ``/raw/image`` and ``rect`` remapped to
``/rect/image_rect`` (image_proc's name: ``input_rectified: auto`` takes it as rectified). Frames are sent one at
a time (a batch of one, so that both cameras' depth is computed alike). A second node with ``input_rectified:
false`` checks that the old behaviour (undistorting) is what one gets when asking for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from helpers import distort_image
from image_encodings import encode, grey, message_bytes
from sensor_msgs.msg import CameraInfo, Image, RegionOfInterest
from std_msgs.msg import Header
from waiting import wait_until

from semantic_depth_ros.messages.decode import SUPPORTED_ENCODINGS
from semantic_depth_ros.ros.client import DepthClient
from semantic_depth_ros.ros.node_process import NodeProcess, random_domain_id

pytestmark = pytest.mark.ros  # node processes and a DDS client

HEIGHT, WIDTH = 48, 64
K = (60.0, 0.0, 31.5, 0.0, 60.0, 23.5, 0.0, 0.0, 1.0)
D = (-0.2, 0.05, 0.001, -0.001, 0.0)
P = (52.0, 0.0, 32.0, 0.0, 0.0, 52.0, 24.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # rectified (alpha = 0): another camera
CAMERAS = ("/raw", "/rect")
NODE_ARGS = {"cameras": "[raw, rect]"}
REMAP = ["-r", "rect/image:=rect/image_rect"]
OUTPUTS = ("depth", "points", "depth_info")
# Depth of a frame whose pixels differ from the rgb8 frame's by demosaicing or 4:2:2 chroma (a few grey levels
# at edges): median relative difference to the rgb8 frame's, measured 0.10-0.12 % (Bayer) and 0.008 % (YUV) with
# the tiny untrained network; lossless packings give the same depth (measured: identical).
LOSSY_MEDIAN_REL = 0.01


def scene() -> np.ndarray:
    """HEIGHTxWIDTH RGB: smooth colour ramps with a few flat colour blocks (even-aligned)."""
    v, u = np.mgrid[0:HEIGHT, 0:WIDTH]
    rgb = np.stack((40 + u * 3, 50 + v * 3, 200 - u - v), axis=-1).astype(np.uint8)
    rgb[8:24, 8:24] = (210, 40, 40)
    rgb[24:40, 32:48] = (40, 200, 60)
    rgb[10:20, 44:60] = (50, 60, 220)
    return rgb


def image(samples: np.ndarray, encoding: str, width: int = WIDTH, pad: int = 0, short: int = 0) -> Image:
    """An Image of ``samples`` in ``encoding`` (``pad`` bytes per row, ``short`` bytes cut off the data)."""
    step, data = message_bytes(samples, pad)
    msg = Image(height=samples.shape[0], width=width, encoding=encoding, step=step, is_bigendian=0)
    msg.header = Header(frame_id="camera_optical")
    msg.data = data[: len(data) - short]
    return msg


def info(k=K, d=(0.0,) * 5, p=None, width=WIDTH, height=HEIGHT, binning=(0, 0), roi=(0, 0, 0, 0)) -> CameraInfo:
    projection = p if p is not None else (k[0], 0.0, k[2], 0.0, 0.0, k[4], k[5], 0.0, 0.0, 0.0, 1.0, 0.0)
    msg = CameraInfo(width=width, height=height, k=list(k), d=list(d), p=list(projection),
                     distortion_model="plumb_bob", binning_x=binning[0], binning_y=binning[1],
                     roi=RegionOfInterest(x_offset=roi[0], y_offset=roi[1], width=roi[2], height=roi[3]))
    msg.header.frame_id = "camera_optical"
    return msg


class Sender:
    """Sends one frame at a time and returns its outputs as rclpy messages."""

    def __init__(self, client: DepthClient, node: NodeProcess) -> None:
        self.client, self.node, self.stamp = client, node, 10**9

    def next_stamp(self) -> int:
        self.stamp += 10**8
        return self.stamp

    def send(self, msg: Image, camera_info: CameraInfo, camera: str = "/raw") -> dict[str, Any]:
        stamp = self.next_stamp()
        for _ in range(3):  # the node's input is best effort: resend a frame that got lost
            self.client.publish(stamp, msg, camera_info, camera=camera)
            if self.client.wait(stamp, camera=camera, timeout=20.0) is not None:
                received = self.client.take(stamp, camera=camera)
                return {key: self.client.message(key, value) for key, value in received.items()}
        raise AssertionError(f"frame {stamp} on {camera} was not served: {self.node.log[-5:]}")

    def send_bad(self, msg: Image, camera_info: CameraInfo, camera: str = "/raw") -> int:
        stamp = self.next_stamp()
        self.client.publish(stamp, msg, camera_info, camera=camera)
        return stamp


def depth_of(out: dict[str, Any]) -> np.ndarray:
    msg = out["depth"]
    return np.frombuffer(bytes(msg.data), "<f4").reshape(msg.height, msg.width)


def points_of(out: dict[str, Any]) -> np.ndarray:
    msg = out["points"]
    return np.frombuffer(bytes(msg.data), "<f4").reshape(msg.height, msg.width, -1)[..., :3]


def assert_points_are_the_back_projection(out: dict[str, Any], fx: float, fy: float, cx: float, cy: float) -> None:
    depth = depth_of(out).astype(np.float64)
    v, u = np.mgrid[0:depth.shape[0], 0:depth.shape[1]].astype(np.float64)
    expected = np.stack(((u - cx) / fx * depth, (v - cy) / fy * depth, depth), axis=-1)
    points = points_of(out).astype(np.float64)
    valid = ~np.isnan(expected[..., 2])
    assert valid.any() and np.array_equal(np.isnan(points[..., 2]), ~valid)
    assert np.abs(points[valid] - expected[valid]).max() <= 1e-4


def camera_values(client: DepthClient, camera: str) -> dict[str, str]:
    """The latest /diagnostics key/values of ``camera`` (status ``"<node>: semantic depth <camera>"``)."""
    diagnostics = client.diagnostics
    if diagnostics is None:
        return {}
    for status in diagnostics.status:
        if status.name.endswith(f" {camera}"):
            return {value.key: value.value for value in status.values}
    return {}


def rejected_count(client: DepthClient) -> int:
    """The raw camera's ``messages_rejected`` in the latest /diagnostics (-1 before any)."""
    return int(camera_values(client, "raw").get("messages_rejected", -1))


@pytest.fixture(scope="module")
def graph(tiny_checkpoint: Path) -> Iterator[Sender]:
    domain = random_domain_id()
    with NodeProcess(tiny_checkpoint, domain_id=domain, device="cpu", precision="fp32", num_threads=1,
                     parameters=NODE_ARGS, ros_args=REMAP) as node, \
            DepthClient(domain_id=domain, cameras=CAMERAS, outputs=OUTPUTS, diagnostics=True,
                        image_topics={"/rect": "image_rect"}) as client:
        client.wait_connected()
        yield Sender(client, node)


def test_every_encoding_is_served_with_the_depth_of_rgb8(graph: Sender) -> None:
    rgb = scene()
    pinhole = info()
    reference = {"colour": depth_of(graph.send(image(rgb, "rgb8"), pinhole)),
                 "grey": depth_of(graph.send(image(np.repeat(grey(rgb)[..., None], 3, axis=2), "rgb8"), pinhole))}
    wait_until(lambda: camera_values(graph.client, "raw").get("input_encoding") == "rgb8", "diagnostics of rgb8")
    for encoding in SUPPORTED_ENCODINGS:
        out = graph.send(image(encode(rgb, encoding), encoding, pad=4), pinhole)
        depth = depth_of(out)
        want = reference["grey" if encoding.startswith("mono") else "colour"]
        assert np.array_equal(np.isnan(depth), np.isnan(want)), encoding
        relative = np.abs(depth - want)[~np.isnan(want)] / want[~np.isnan(want)]
        if encoding.startswith(("bayer", "yuv")):
            assert np.median(relative) < LOSSY_MEDIAN_REL, (encoding, float(np.median(relative)))
        else:  # the same pixels as the rgb8 frame: the same depth
            assert relative.max() < 1e-5, (encoding, float(relative.max()))
    values = {}
    wait_until(lambda: values.update(camera_values(graph.client, "raw")) or
               values.get("input_encoding") == SUPPORTED_ENCODINGS[-1], "diagnostics naming the last encoding")
    assert values["input_rectified"] == "false"


BAD_FRAMES = [  # (encoding, what is wrong, error text in the node's log): one per family and fault; every
    # encoding's short data is a unit test (test_decode_encodings), the node's path is the same for all
    ("bayer_rggb8", "short", "len(image.data) = 3071 is smaller than height*step = 3072"),
    ("bayer_grbg16", "short", "len(image.data) ="),
    ("rgba16", "short", "len(image.data) ="),
    ("yuv422_yuy2", "short", "len(image.data) ="),
    ("yuv422", "odd width", "image.width = 63 is odd; yuv422 packs pixels in pairs"),
    ("mono16", "odd step", "image.step = 129 is not a multiple of 2 bytes (mono16)"),
    ("bayer_gbrg8", "short step", "image.step = 63 is smaller than width*1 bytes = 64 for bayer_gbrg8"),
]


def test_bad_frames_of_each_encoding_are_rejected_in_one_line_and_the_next_is_served(graph: Sender) -> None:
    rgb = scene()
    pinhole = info()
    logged: set[str] = set()
    for encoding, fault, error in BAD_FRAMES:
        samples = encode(rgb, encoding)
        if fault == "short":
            bad = image(samples, encoding, short=1)
        elif fault == "odd width":
            bad = image(samples[:, :63], encoding, width=63)
        elif fault == "odd step":
            bad = image(samples, encoding)
            bad.step += 1
            bad.data = bytes(bad.step * HEIGHT)
        else:
            bad = image(samples, encoding)
            bad.step = WIDTH - 1
        rejected = rejected_count(graph.client)
        stamp = graph.send_bad(bad, pinhole)
        # counted before the good frame goes (the hand-off would let a newer frame replace it unseen)
        wait_until(lambda: rejected_count(graph.client) > rejected, f"the rejection of {encoding} ({fault})")
        graph.send(image(samples, encoding), pinhole)  # the next good frame is served
        assert graph.client.wait(stamp, timeout=0.0) is None, (encoding, fault)
        field = error.split(" ", 1)[0]
        if field not in logged:  # the log is throttled per field (5 s): the first rejection naming it is logged
            wait_until(lambda: any(error in line for line in graph.node.log), f"the log line of {encoding} ({fault})")
            logged.add(field)
    lines = [line for line in graph.node.log if "rejected /raw/image message: " in line]
    assert len(lines) >= len(logged) == 3  # one line each: the field, its value and the rule


# (binning, roi, calibrated width x height, full K) -> the K of the 64x48 image, computed by hand with
# image_geometry's rule: fx / binning_x, (cx - x_offset) / binning_x (likewise y)
WINDOWS = [
    ((2, 2), (0, 0, 0, 0), (128, 96), (120.0, 0, 64.5, 0, 110.0, 47.5, 0, 0, 1), (60.0, 55.0, 32.25, 23.75)),
    ((1, 2), (0, 0, 0, 0), (64, 96), (60.0, 0, 31.0, 0, 110.0, 47.5, 0, 0, 1), (60.0, 55.0, 31.0, 23.75)),
    ((0, 0), (20, 16, 64, 48), (100, 80), (62.0, 0, 50.0, 0, 61.0, 40.0, 0, 0, 1), (62.0, 61.0, 30.0, 24.0)),
    ((2, 2), (40, 32, 128, 96), (200, 160), (120.0, 0, 100.0, 0, 118.0, 80.0, 0, 0, 1), (60.0, 59.0, 30.0, 24.0)),
]


@pytest.mark.parametrize(("binning", "roi", "size", "k", "expected"), WINDOWS,
                         ids=["binning 2x2", "binning 1x2", "roi", "binning 2x2 + roi"])
def test_binning_and_roi_give_the_camera_of_the_image_received(graph: Sender, binning, roi, size, k,
                                                              expected) -> None:
    out = graph.send(image(scene(), "rgb8"), info(k=k, width=size[0], height=size[1], binning=binning, roi=roi))
    depth_info = out["depth_info"]
    fx, fy, cx, cy = expected
    assert (depth_info.width, depth_info.height) == (WIDTH, HEIGHT)
    np.testing.assert_allclose(depth_info.k, (fx, 0, cx, 0, fy, cy, 0, 0, 1), rtol=1e-12)
    np.testing.assert_allclose(depth_info.p, (fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0), rtol=1e-12)
    assert (depth_info.binning_x, depth_info.binning_y) in ((0, 0), (1, 1)) and not any(depth_info.d)
    assert_points_are_the_back_projection(out, fx, fy, cx, cy)


def rectified_frame() -> np.ndarray:
    """``scene()`` seen through the lens (K, D), then rectified with OpenCV to P: what image_proc publishes."""
    k, p = np.array(K).reshape(3, 3), np.array(P).reshape(3, 4)
    distorted = distort_image(scene(), k, D)
    map_x, map_y = cv2.initUndistortRectifyMap(k, np.array(D), np.eye(3), p[:, :3], (WIDTH, HEIGHT), cv2.CV_32FC1)
    return cv2.remap(distorted, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def test_a_rectified_topic_takes_p_and_is_not_undistorted_again(graph: Sender) -> None:
    rect = rectified_frame()
    raw_info = info(k=K, d=D, p=P)
    out = graph.send(image(rect, "rgb8"), raw_info, camera="/rect")
    fx, cx, fy, cy = P[0], P[2], P[5], P[6]
    pinhole_p = info(k=(fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0))
    reference = graph.send(image(rect, "rgb8"), pinhole_p, camera="/raw")
    np.testing.assert_allclose(depth_of(out), depth_of(reference), rtol=1e-4, equal_nan=True)
    np.testing.assert_allclose(out["depth_info"].k, (fx, 0, cx, 0, fy, cy, 0, 0, 1), rtol=1e-12)
    assert_points_are_the_back_projection(out, fx, fy, cx, cy)
    undistorted = graph.send(image(rect, "rgb8"), raw_info, camera="/raw")  # a raw topic: K and D, undistorted
    assert np.nanmedian(np.abs(depth_of(undistorted) / depth_of(out) - 1.0)) > 1e-3
    values: dict[str, str] = {}
    wait_until(lambda: values.update(camera_values(graph.client, "rect")) or values.get("input_rectified") == "true",
               "diagnostics of the rectified camera")
    assert any("input /rect/image_rect taken as rectified" in line and "(input_rectified: auto)" in line
               for line in graph.node.log)
    graph.undistorted = (rect, raw_info, depth_of(undistorted))  # the next test's reference


def test_input_rectified_false_undistorts_as_before(graph: Sender, tiny_checkpoint: Path) -> None:
    rect, raw_info, want = getattr(graph, "undistorted", (None, None, None))
    if rect is None:
        rect, raw_info = rectified_frame(), info(k=K, d=D, p=P)
        want = depth_of(graph.send(image(rect, "rgb8"), raw_info, camera="/raw"))
    domain = random_domain_id()
    with NodeProcess(tiny_checkpoint, domain_id=domain, device="cpu", precision="fp32", num_threads=1,
                     parameters={**NODE_ARGS, "input_rectified": "false"}, ros_args=REMAP) as node, \
            DepthClient(domain_id=domain, cameras=CAMERAS, outputs=OUTPUTS,
                        image_topics={"/rect": "image_rect"}) as client:
        client.wait_connected()
        out = Sender(client, node).send(image(rect, "rgb8"), raw_info, camera="/rect")
    np.testing.assert_allclose(depth_of(out), want, rtol=1e-4, equal_nan=True)
    np.testing.assert_allclose(out["depth_info"].k, K, rtol=1e-12)
    assert any("input /rect/image_rect taken as raw" in line for line in node.log)

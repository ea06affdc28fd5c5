"""Stream frames through the depth node in its own process over DDS and collect every output, decoded to numpy.

Used by ``semantic-depth demo``: the node runs in a child process exactly as on a vehicle (``node_process``); the
client (``client``) publishes Image + CameraInfo, subscribes to all outputs (so the node computes all of them) and
waits for each frame's complete set before sending the next (closed loop, no frame is dropped).
``stream_drive_through_node`` streams a drive with its odometry twice through a node with ``scale_from_road`` on:
``temporal_filter`` off, then on (set while the node runs, as ``ros2 param set`` would).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from std_msgs.msg import Header

from ..data.tf_chain import invert_rigid, matrix_to_quaternion
from ..errors import SemanticDepthError
from ..geometry.intrinsics import Intrinsics
from ..messages import camera_info_fields, cloud_array, image_array, image_fields
from .client import NANOSECONDS, DepthClient, Received
from .messages import camera_info_msg, image_msg
from .node_core import NODE_NAME
from .node_process import NodeProcess, random_domain_id

NAMESPACE = "/semantic_depth_demo"
FRAME_ID = "camera_optical"
FRAME_TIMEOUT_S = 60.0
ODOMETRY_TOPIC = "odom"  # relative: the node's namespace
DRIVE_PASS_GAP_NS = 100 * NANOSECONDS  # between the two passes of a drive: the filter starts afresh


@dataclass
class NodeFrame:
    """Everything the node published for one input frame, decoded; latency from publish to last output."""

    depth: np.ndarray  # HxW float32 metres, NaN invalid
    depth_intrinsics: Intrinsics
    points: np.ndarray  # h x w x 4 float32 (x, y, z, packed rgb)
    semantic: np.ndarray  # HxW uint8 train ids
    semantic_color: np.ndarray  # HxWx3 uint8
    confidence: np.ndarray  # HxW float32
    depth_color: np.ndarray  # HxWx3 uint8
    frame_id: str
    latency_ms: float


def decode_frame(outputs: dict[str, Received], sent: float) -> NodeFrame:
    """All outputs of one frame (``DepthClient.take``) -> arrays; ``sent``: when the image was published."""
    msgs = {key: DepthClient.message(key, received) for key, received in outputs.items()}
    info = msgs["depth_info"]
    return NodeFrame(
        depth=image_array(msgs["depth"]),
        depth_intrinsics=Intrinsics.from_k(list(info.k), info.width, info.height),
        points=cloud_array(msgs["points"]),
        semantic=image_array(msgs["semantic"]),
        semantic_color=image_array(msgs["semantic_color"]),
        confidence=image_array(msgs["confidence"]),
        depth_color=image_array(msgs["depth_color"]),
        frame_id=msgs["depth"].header.frame_id,
        latency_ms=(max(r.arrived for r in outputs.values()) - sent) * 1000.0,
    )


def send_frame(client: DepthClient, stamp: int, rgb: np.ndarray, intrinsics: Intrinsics,
               timeout: float = FRAME_TIMEOUT_S) -> NodeFrame:
    """Publish one RGB frame with its camera_info at full stamp ``stamp`` (ns); wait for and decode all outputs."""
    header = Header(frame_id=FRAME_ID)
    image = image_msg(header, image_fields(np.ascontiguousarray(rgb), "rgb8"))
    info = camera_info_msg(header, camera_info_fields(intrinsics))
    sent = client.publish(stamp, image, info)
    if client.wait(stamp, timeout=timeout) is None:
        missing = sorted(set(client.outputs) - set(client.take(stamp)))
        raise SemanticDepthError(f"frame stamped {stamp} ns: no {', '.join(missing)} from the node within "
                                 f"{timeout:.0f} s")
    return decode_frame(client.take(stamp), sent)


def stream_through_node(checkpoint: Path, frames: Iterable[tuple[np.ndarray, Intrinsics]], *,
                        device: str = "auto") -> Iterator[NodeFrame]:
    """Start the depth node on ``checkpoint`` in a child process, stream ``frames`` (RGB, intrinsics), yield outputs."""
    domain = random_domain_id()
    with NodeProcess(checkpoint, domain_id=domain, namespace=NAMESPACE, device=device,
                     parameters={"input_qos_reliability": "reliable"}) as _, \
            DepthClient(domain_id=domain, cameras=(NAMESPACE,), name="semantic_depth_demo_client") as client:
        client.wait_connected(timeout=30.0)
        for index, (rgb, intrinsics) in enumerate(frames):
            # distinct nanoseconds too: frames are matched by the full stamp
            yield send_frame(client, (index + 1) * NANOSECONDS + index + 1, rgb, intrinsics)


@dataclass
class DriveFrame:
    """One frame of a drive: RGB, true pose of the vehicle base (4x4, world frame) and its capture time (ns)."""

    rgb: np.ndarray
    world_from_base: np.ndarray
    stamp_ns: int


@dataclass
class DrivePasses:
    """The node's depth per frame with ``temporal_filter`` off and on (HxW float32 metres, NaN invalid), and the
    node's ``/diagnostics`` key/values after the second pass (road scale, filter statistics)."""

    depth_off: list[np.ndarray]
    depth_on: list[np.ndarray]
    diagnostics: dict[str, str]


def _pose_values(transform: np.ndarray) -> list[float]:
    """x y z qx qy qz qw of a 4x4 rigid transform."""
    return [float(v) for v in transform[:3, 3]] + list(matrix_to_quaternion(transform[:3, :3]))


def _drive_pass(client: DepthClient, frames: list[DriveFrame], intrinsics: Intrinsics, start_ns: int
                ) -> list[np.ndarray]:
    depths = []
    for frame in frames:
        stamp = start_ns + frame.stamp_ns
        pose = _pose_values(frame.world_from_base)
        client.publish_odometry(stamp, pose[:3], pose[3:])
        depths.append(send_frame(client, stamp, frame.rgb, intrinsics).depth)
    return depths


def _diagnostics_after(client: DepthClient, frames: int, timeout: float = 15.0) -> dict[str, str]:
    """The node status's key/values once its road scale counted ``frames`` frames (the latest after ``timeout``)."""
    deadline = time.monotonic() + timeout
    values: dict[str, str] = {}
    while time.monotonic() < deadline:
        message = client.diagnostics
        if message is not None and message.status:
            values = {kv.key: kv.value for kv in message.status[0].values}
            counted = int(values.get("road_frames_accepted", 0)) + int(values.get("road_frames_rejected", 0))
            if counted >= frames:
                break
        time.sleep(0.1)
    return values


def stream_drive_through_node(checkpoint: Path, frames: list[DriveFrame], intrinsics: Intrinsics,
                              base_from_camera: np.ndarray, camera_height: float, *,
                              device: str = "auto") -> DrivePasses:
    """Stream a drive (RGB + odometry of the base) through one node with ``scale_from_road`` on (told
    ``camera_height`` metres) and the camera mounted at ``base_from_camera``: once with ``temporal_filter`` off,
    then once more with it on."""
    domain = random_domain_id()
    camera_extrinsic = "[" + ",".join(repr(v) for v in _pose_values(base_from_camera)) + "]"
    parameters = {"input_qos_reliability": "reliable", "scale_from_road": "true", "camera_height": repr(camera_height),
                  "temporal_filter": "off", "odom_topic": ODOMETRY_TOPIC, "camera_extrinsic": camera_extrinsic}
    with NodeProcess(checkpoint, domain_id=domain, namespace=NAMESPACE, device=device, parameters=parameters) as _, \
            DepthClient(domain_id=domain, cameras=(NAMESPACE,), name="semantic_depth_demo_drive", diagnostics=True,
                        odometry_topic=f"{NAMESPACE}/{ODOMETRY_TOPIC}") as client:
        client.wait_connected(timeout=30.0)
        client.wait_odometry_connected()
        off = _drive_pass(client, frames, intrinsics, NANOSECONDS)
        client.set_parameters(f"{NAMESPACE}/{NODE_NAME}", {"temporal_filter": "on"})
        on = _drive_pass(client, frames, intrinsics, NANOSECONDS + frames[-1].stamp_ns + DRIVE_PASS_GAP_NS)
        return DrivePasses(off, on, _diagnostics_after(client, 2 * len(frames)))


def drive_frames(world_from_camera: list[np.ndarray], rgbs: list[np.ndarray], stamps_ns: list[int],
                 base_from_camera: np.ndarray) -> list[DriveFrame]:
    """Drive frames from camera poses: the odometry is the base's pose, ``world_from_camera @ camera_from_base``."""
    camera_from_base = invert_rigid(base_from_camera)
    return [DriveFrame(rgb, pose @ camera_from_base, stamp) for pose, rgb, stamp in zip(world_from_camera, rgbs, stamps_ns)]

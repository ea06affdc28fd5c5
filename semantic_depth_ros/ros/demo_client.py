"""Stream frames through the depth node in its own process over DDS and collect every output, decoded to numpy.

Used by ``semantic-depth demo``: the node runs in a child process exactly as on a vehicle (``node_process``); the
client (``client``) publishes Image + CameraInfo, subscribes to all outputs (so the node computes all of them) and
waits for each frame's complete set before sending the next (closed loop, no frame is dropped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from std_msgs.msg import Header

from ..errors import SemanticDepthError
from ..geometry.intrinsics import Intrinsics
from ..messages import camera_info_fields, cloud_array, image_array, image_fields
from .client import NANOSECONDS, DepthClient, Received
from .messages import camera_info_msg, image_msg
from .node_process import NodeProcess, random_domain_id

NAMESPACE = "/semantic_depth_demo"
FRAME_ID = "camera_optical"
FRAME_TIMEOUT_S = 60.0


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

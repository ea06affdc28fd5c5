"""Scale from the road in the node over DDS: the published depth is the core stage's output, frame after frame."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from semantic_depth_ros.geometry.intrinsics import camera_from_info
from semantic_depth_ros.inference.estimator import DepthEstimator
from semantic_depth_ros.pipeline.stages import FrameContext
from semantic_depth_ros.roadscale import RoadScaleSettings, RoadScaleStage
from semantic_depth_ros.ros.bench_node import bench_frame
from semantic_depth_ros.ros.client import DepthClient
from semantic_depth_ros.ros.node_process import NodeProcess, random_domain_id

pytestmark = pytest.mark.ros  # a node process and a DDS client

HEIGHT, WIDTH = 96, 320
# every label counts as road and any plane near the tiny untrained model's own (steep: pitch ~1.6 rad) is accepted,
# so that its depth gets a scale != 1 and the test sees the stage at work
ROAD = {"camera_height": 1.65, "camera_pitch": 1.5, "road_max_tilt": 1.0, "road_min_inlier_ratio": 0.01,
        "road_min_fraction": 0.001, "scale_window": 3, "road_labels": tuple(range(19))}


def _depth(msg: object) -> np.ndarray:
    assert (msg.height, msg.width, msg.encoding) == (HEIGHT, WIDTH, "32FC1")
    return np.frombuffer(bytes(msg.data), dtype="<f4").reshape(HEIGHT, WIDTH)


def test_node_depth_equals_the_road_scale_stage_output(tiny_checkpoint: Path) -> None:
    image, info = bench_frame(HEIGHT, WIDTH)
    parameters = {"scale_from_road": "on", **{k: v for k, v in ROAD.items() if k != "road_labels"},
                  "road_labels": "[" + ",".join(map(str, ROAD["road_labels"])) + "]"}
    domain = random_domain_id()
    stamps = [(1 + i) * 10**8 for i in range(3)]
    published = []
    with NodeProcess(tiny_checkpoint, domain_id=domain, device="cpu", precision="fp32", num_threads=1,
                     parameters=parameters) as node, DepthClient(domain_id=domain, outputs=("depth",),
                                                                diagnostics=True) as client:
        client.wait_connected()
        for stamp in stamps:
            client.publish(stamp, image, info)
            assert client.wait(stamp, timeout=60.0) is not None, node.log[-5:]
            published.append(_depth(client.message("depth", client.take(stamp)["depth"])))
        values = client.node_diagnostics(lambda v: "road_scale_ms_p50" in v)
    # the road fit is timed while it is on, the temporal filter (off) is not
    assert float(values["road_scale_ms_p50"]) > 0.0 and np.isfinite(float(values["road_scale_ms_p95"]))
    assert "temporal_ms_p50" not in values
    torch.set_num_threads(1)
    estimator = DepthEstimator(tiny_checkpoint, device="cpu", precision="fp32", backend="eager")
    stage = RoadScaleStage(RoadScaleSettings(**ROAD))
    rgb = np.frombuffer(bytes(image.data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    camera = camera_from_info(info, WIDTH, HEIGHT)
    for stamp, depth in zip(stamps, published):
        # the node fits the road at the network's resolution and upsamples the scaled depth after it
        outputs = estimator.estimate(rgb, camera=camera, outputs=("depth", "semantic"), defer=True)
        assert outputs.upsampling is not None and outputs.depth.shape[1] < WIDTH
        unscaled = outputs.at_output_size(("depth",)).depth.numpy()
        want = stage.process(outputs, FrameContext(stamp_ns=stamp)).at_output_size(("depth",)).depth.numpy()
        np.testing.assert_allclose(depth, want, rtol=1e-4, equal_nan=True)
        assert abs(float(np.nanmedian(depth / unscaled)) - 1.0) > 1e-3  # the scale was applied
    assert stage.road.accepted == 3


@pytest.mark.parametrize(("height", "message"), [
    (None, "error: parameter camera_height is not set: it must be > 0 metres when scale_from_road is on"),
    ("-1.0", "error: invalid parameter camera_height: "),
])
def test_node_refuses_scale_from_road_without_a_positive_camera_height(tiny_checkpoint: Path, height: str | None,
                                                                       message: str) -> None:
    args = ["-p", f"model_path:={tiny_checkpoint}", "-p", "device:=cpu", "-p", "scale_from_road:=on"]
    if height is not None:
        args += ["-p", f"camera_height:={height}"]
    result = subprocess.run([sys.executable, "-c", "import sys; from semantic_depth_ros.ros.node import main_ros; "
                             "sys.exit(main_ros())", "--ros-args", *args], capture_output=True, text=True, timeout=120)
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith(message), lines
    assert "camera_height" in lines[0]


def test_each_camera_gets_its_own_height_and_pitch(tiny_checkpoint: Path) -> None:
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    from semantic_depth_ros.roadscale import RoadScaleStage
    from semantic_depth_ros.ros.node import DepthNode

    context = Context()
    rclpy.init(context=context)
    try:
        node = DepthNode("per_camera_road_node", context=context, parameter_overrides=[
            Parameter("model_path", value=str(tiny_checkpoint)), Parameter("device", value="cpu"),
            Parameter("cameras", value=["front", "left"]), Parameter("scale_from_road", value=True),
            Parameter("camera_heights", value=[1.6, 1.4]), Parameter("camera_pitches", value=[0.05, 0.0])])
        try:
            got = {}
            for camera, channel in node.channels.items():
                (stage,) = [s for s in channel.outputs.stages if isinstance(s, RoadScaleStage)]
                got[camera] = (stage.road.settings.camera_height, stage.road.settings.camera_pitch)
            assert got == {"front": (1.6, 0.05), "left": (1.4, 0.0)}
        finally:
            node.close()
    finally:
        rclpy.shutdown(context=context)

"""Training runs the network channels-last, the layout the inference runners use: the same step as a contiguous one."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from semantic_depth_ros.devices import autocast_factory
from semantic_depth_ros.model.bins import DepthBins
from semantic_depth_ros.model.config import ModelConfig
from semantic_depth_ros.model.network import SemanticDepthNet
from semantic_depth_ros.training.config import LossConfig, ScheduleConfig, config_from_dict
from semantic_depth_ros.training.distributed import DistContext
from semantic_depth_ros.training.run import prepare_run
from semantic_depth_ros.training.schedule import build_scheduler
from semantic_depth_ros.training.step import StepParts, train_step

CONFIG = ModelConfig(input_height=32, input_width=96, num_depth_bins=16, decoder_channels=(32, 16), focal_px=55.8,
                     encoder_widths=(16, 32, 48, 64), use_drn=False)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _parts(net: SemanticDepthNet) -> StepParts:
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.01)
    return StepParts(model=net, optimizer=optimizer, scheduler=build_scheduler(optimizer, 4, ScheduleConfig()),
                     scaler=torch.amp.GradScaler("cpu", enabled=False), bins=DepthBins(1.0, 80.0, 16), phase=1,
                     loss=LossConfig(), grad_clip=0.5, device=torch.device("cpu"),
                     autocast=autocast_factory("fp32", torch.device("cpu")))


def test_a_channels_last_step_computes_what_a_contiguous_one_does() -> None:
    torch.manual_seed(0)
    contiguous = SemanticDepthNet(CONFIG).train()
    channels_last = copy.deepcopy(contiguous).to(memory_format=torch.channels_last)
    assert channels_last.encoder.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    batches = [("depth", {"image": torch.rand(2, 3, 32, 96), "depth": torch.rand(2, 1, 32, 96) * 30 + 2}),
               ("semantic", {"image": torch.rand(2, 3, 32, 96), "semantic": torch.randint(0, 19, (2, 32, 96))})]
    for net in (contiguous, channels_last):
        parts = _parts(net)
        norms = [float(train_step(parts, batch, task)["grad_norm"]) for task, batch in batches]
        net.norms = norms  # type: ignore[attr-defined]
    assert contiguous.norms == pytest.approx(channels_last.norms, rel=1e-4)  # type: ignore[attr-defined]
    assert min(contiguous.norms) > 0.5  # type: ignore[attr-defined]  # above grad_clip: clipping was active
    after = channels_last.state_dict()
    for key, value in contiguous.state_dict().items():
        torch.testing.assert_close(after[key], value, rtol=1e-4, atol=1e-5, msg=key)


def test_the_trainer_builds_its_network_channels_last(tmp_path: Path) -> None:
    config = config_from_dict({
        "steps": 1, "batch_size": 2, "model": {"preset": "resnet18_fast", "overrides": {
            "input_height": 32, "input_width": 96, "decoder_channels": [16], "encoder_widths": [16, 16, 32, 32]}},
        "datasets": [{"type": "synthetic", "task": "depth", "options": {"domain": "kitti_like", "length": 2,
                                                                        "height": 40, "width": 120}}],
        "flow": {"depth": 1, "semantic": 0}, "validation": {"every": 0, "datasets": []},
        "logging": {"every": 1, "tensorboard": False, "num_images": 0}})
    run = prepare_run(config, tmp_path, False, False, DistContext(), torch.device("cpu"))
    convolutions = [m.weight for m in run.net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(w.is_contiguous(memory_format=torch.channels_last) for w in convolutions)
    assert run.model_config.encoder_widths == (16, 16, 32, 32)

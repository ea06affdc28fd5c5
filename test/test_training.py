"""Training: conditional-flow head isolation, exact resume, Table I variants, phase 2, checkpoints, DDP, CLI."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
import yaml

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.model.bins import DepthBins
from semantic_depth_ros.model.checkpoint import load_checkpoint
from semantic_depth_ros.training import trainer
from semantic_depth_ros.training.config import TrainConfig, config_from_dict
from semantic_depth_ros.training.datasets import build_train_streams
from semantic_depth_ros.training.distributed import DistContext, detect_context
from semantic_depth_ros.training.flow import StreamBatchSampler
from semantic_depth_ros.training.logging import RunLogger
from semantic_depth_ros.training.schedule import build_scheduler
from semantic_depth_ros.training.state import latest_run_state, list_run_states
from semantic_depth_ros.devices import autocast_factory
from semantic_depth_ros.training.model_setup import build_model, build_optimizer, resolve_model_config
from semantic_depth_ros.training.step import StepParts, heads_for, train_step
from semantic_depth_ros.training.trainer import run_training


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def synthetic(domain: str, task: str, *, length: int = 4, seed: int = 0) -> dict[str, Any]:
    height, width = (40, 120) if domain == "kitti_like" else (48, 96)
    return {"type": "synthetic", "task": task,
            "options": {"domain": domain, "length": length, "seed": seed, "height": height, "width": width}}


TINY_MODEL = {"input_height": 32, "input_width": 96, "decoder_channels": [32, 16], "focal_px": 55.8}


def tiny_config(phase: int = 1, tasks: tuple[str, ...] = ("depth", "semantic"), **changes: Any) -> TrainConfig:
    """A 32x96 ResNet-18 run on generated scenes, a few steps, no TensorBoard."""
    datasets = []
    if "depth" in tasks:
        datasets.append(synthetic("kitti_like", "depth"))
    if "semantic" in tasks:
        datasets.append(synthetic("cityscapes_like", "semantic"))
    data: dict[str, Any] = {
        "name": "tiny", "phase": phase, "steps": 4, "batch_size": 2, "num_workers": 0, "seed": 0,
        "model": {"preset": "resnet18_fast", "overrides": dict(TINY_MODEL)},
        "datasets": datasets,
        "flow": {"depth": int("depth" in tasks), "semantic": int("semantic" in tasks)},
        "optimizer": {"lr": 1e-3, "weight_decay": 0.05, "grad_clip": 1.0},
        "schedule": {"warmup_steps": 1, "decay": "cosine"},
        "validation": {"every": 0, "datasets": []},
        "checkpoint": {"every": 0, "keep_last": 2},
        "logging": {"every": 1, "tensorboard": False, "num_images": 0},
    }
    data.update(changes)
    return config_from_dict(data)


def with_validation(tasks: tuple[str, ...] = ("depth", "semantic")) -> dict[str, Any]:
    sets = []
    if "depth" in tasks:
        sets.append(synthetic("kitti_like", "depth", length=2, seed=9))
    if "semantic" in tasks:
        sets.append(synthetic("cityscapes_like", "semantic", length=2, seed=9))
    return {"every": 2, "batch_size": 2, "crop": "none", "datasets": sets}


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> dict[str, bool]:
    return {k: not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix)}


# ------------------------------------------------------------------------------- conditional flow (critical)

def test_each_batch_moves_only_its_own_head_and_the_trunk() -> None:
    """After a semantic step the DC head (weights, BN statistics, AdamW moments) is bit-identical, after a depth
    step the SC head is, and the trunk changed in both; weight decay, momentum and clipping are all active."""
    config = tiny_config()
    model_config, _ = resolve_model_config(config)
    net = build_model(model_config, None, config.seed)
    net.train()
    optimizer = build_optimizer(net, config)
    parts = StepParts(model=net, optimizer=optimizer, scheduler=build_scheduler(optimizer, 8, config.schedule),
                      scaler=torch.amp.GradScaler("cpu", enabled=False),
                      bins=DepthBins(model_config.min_depth, model_config.max_depth, model_config.num_depth_bins),
                      phase=1, loss=config.loss, grad_clip=config.optimizer.grad_clip, device=torch.device("cpu"),
                      autocast=autocast_factory("fp32", torch.device("cpu")))
    streams = build_train_streams(config, model_config)
    collate = torch.utils.data.default_collate
    samplers = {task: StreamBatchSampler(len(ds), 2, seed=0, stream=i, start_batch=0)
                for i, (task, ds) in enumerate(streams.items())}
    head_of = {"depth": "dc_head.", "semantic": "sc_head."}
    # two rounds, so both heads already carry AdamW moments when the other task steps
    for number, task in enumerate(["semantic", "depth", "semantic", "depth", "depth", "semantic"]):
        batch = collate([streams[task][key] for key in samplers[task].batch(number)])
        before = snapshot(net)
        moments = {id(p): {k: v.clone() for k, v in optimizer.state[p].items()} for p in optimizer.state}
        stats = train_step(parts, batch, task)
        after = snapshot(net)
        other = "semantic" if task == "depth" else "depth"
        idle = changed(before, after, head_of[other])
        assert idle and not any(idle.values()), f"{task} step changed {[k for k, v in idle.items() if v]}"
        idle_params = net.dc_head.parameters() if task == "semantic" else net.sc_head.parameters()
        for parameter in idle_params:
            assert parameter.grad is None
            for key, value in moments.get(id(parameter), {}).items():
                assert torch.equal(optimizer.state[parameter][key], value)
        used = changed(before, after, head_of[task])
        assert all(v for k, v in used.items() if not k.endswith("num_batches_tracked") and "running" not in k)
        trunk = {k: v for k, v in changed(before, after, "").items()
                 if k.startswith(("encoder.", "decoder.")) and "num_batches" not in k}
        assert all(trunk.values()), [k for k, v in trunk.items() if not v][:5]
        assert torch.isfinite(stats["loss"]) and stats["grad_norm"] > 0


def test_optimizer_is_fused_where_torch_has_the_kernel_and_plain_where_not(monkeypatch) -> None:
    config = tiny_config()
    net = build_model(resolve_model_config(config)[0], None, config.seed)
    optimizer = build_optimizer(net, config)
    assert optimizer.defaults["lr"] == config.optimizer.lr
    assert optimizer.defaults["fused"] is True  # torch >= 2.4 fuses AdamW on the CPU
    plain_adamw = torch.optim.AdamW

    def without_fused_kernel(params, **kwargs):
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return plain_adamw(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", without_fused_kernel)
    fallback = build_optimizer(net, config)
    assert not fallback.defaults["fused"] and fallback.defaults["weight_decay"] == config.optimizer.weight_decay


@pytest.mark.parametrize(("task", "phase", "heads"), [("depth", 1, ("dc",)), ("semantic", 1, ("sc",)),
                                                       ("depth", 2, ("drn",)), ("semantic", 2, ("sc",))])
def test_heads_for_each_batch(task: str, phase: int, heads: tuple[str, ...]) -> None:
    assert heads_for(task, phase) == heads


# ------------------------------------------------------------------------------------------- exact resume

def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir / "model.pt").state_dict


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def resume_config() -> TrainConfig:
    return tiny_config(flow={"depth": 2, "semantic": 1, "shuffle": True},
                       checkpoint={"every": 2, "keep_last": 2},
                       augmentation={"scale_min": 1.0, "scale_max": 1.4, "hflip": 0.5, "brightness": 0.3})


def test_stop_and_resume_is_bit_identical_to_one_run(tmp_path: Path) -> None:
    config = resume_config()
    run_training(config.replace(steps=4), out_dir=tmp_path / "once", progress=False)
    stopped = run_training(config.replace(steps=4), out_dir=tmp_path / "split", progress=False, stop_at_step=2)
    assert stopped.checkpoint_path is None and stopped.steps == 2
    assert [step for step, _ in list_run_states(tmp_path / "split" / "checkpoints")] == [2]
    resumed = run_training(config.replace(steps=4), out_dir=tmp_path / "split", resume=True, progress=False)
    assert resumed.steps == 4
    assert_same_weights(final_weights(tmp_path / "once"), final_weights(tmp_path / "split"))
    once = torch.load(latest_run_state(tmp_path / "once" / "checkpoints"), weights_only=True)
    split = torch.load(latest_run_state(tmp_path / "split" / "checkpoints"), weights_only=True)
    assert once["scheduler"] == split["scheduler"] and once["step"] == split["step"] == 4
    for a, b in zip(once["optimizer"]["state"].values(), split["optimizer"]["state"].values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # the test is sensitive: the weights at step 2 differ from those at step 4
    halfway = torch.load(tmp_path / "split" / "checkpoints" / "state_00000002.pt", weights_only=True)["model"]
    assert any(not torch.equal(halfway[k], split["model"][k]) for k in halfway)


def test_resume_after_a_crash_replays_from_the_last_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    config = resume_config().replace(steps=5)
    run_training(config, out_dir=tmp_path / "once", progress=False)
    real_step = trainer.train_step
    calls = {"n": 0}

    def crashing_step(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:  # dies during step 4, after the checkpoint of step 2 and the update of step 3
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", crashing_step)
    with pytest.raises(KeyboardInterrupt):
        run_training(config, out_dir=tmp_path / "crash", progress=False)
    monkeypatch.setattr(trainer, "train_step", real_step)
    assert [step for step, _ in list_run_states(tmp_path / "crash" / "checkpoints")] == [2]
    run_training(config, out_dir=tmp_path / "crash", resume=True, progress=False)
    assert_same_weights(final_weights(tmp_path / "once"), final_weights(tmp_path / "crash"))
    assert [step for step, _ in list_run_states(tmp_path / "crash" / "checkpoints")] == [4, 5]  # keep_last 2


def test_data_order_does_not_depend_on_the_number_of_workers(tmp_path: Path) -> None:
    config = resume_config().replace(steps=3)
    run_training(config, out_dir=tmp_path / "w0", progress=False)
    run_training(config.replace(num_workers=2), out_dir=tmp_path / "w2", progress=False)
    assert_same_weights(final_weights(tmp_path / "w0"), final_weights(tmp_path / "w2"))


def test_a_run_folder_is_never_overwritten_and_resume_needs_the_same_config(tmp_path: Path) -> None:
    config = tiny_config(steps=2)
    run_training(config, out_dir=tmp_path, progress=False, stop_at_step=1)
    with pytest.raises(ConfigError, match="already holds a run .*--resume"):
        run_training(config, out_dir=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="config key 'optimizer.lr' differs"):
        run_training(config.replace(optimizer={"lr": 0.5}), out_dir=tmp_path, resume=True, progress=False)
    result = run_training(config.replace(num_workers=1), out_dir=tmp_path, resume=True, progress=False)
    assert result.steps == 2 and result.checkpoint_path == tmp_path / "model.pt"


# ------------------------------------------------------------------------------ checkpoints and run folder

def test_run_folder_holds_resolved_config_and_loadable_checkpoints(tmp_path: Path) -> None:
    config = tiny_config(validation=with_validation(), checkpoint={"every": 1, "keep_last": 2, "best_metric": "a1"},
                         logging={"every": 1, "tensorboard": True, "num_images": 1})
    result = run_training(config, out_dir=tmp_path, progress=False)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved == config.replace(out_dir=str(tmp_path)).to_dict()
    assert config_from_dict(saved).steps == 4
    model = load_checkpoint(result.checkpoint_path)
    assert model.trained and model.config.input_width == 96 and model.config.use_drn is False
    assert model.extra["train_config"] == saved and model.extra["step"] == 4 and model.extra["phase"] == 1
    assert set(model.extra["metrics"]) >= {"abs_rel", "a1", "miou", "pixel_accuracy"}
    best = load_checkpoint(result.best_checkpoint_path)
    assert best.extra["metrics"]["a1"] == result.best_metrics["a1"] == max(
        entry["metrics"]["a1"] for entry in json.loads((tmp_path / "metrics.json").read_text())["history"])
    states = list_run_states(tmp_path / "checkpoints")
    assert [step for step, _ in states] == [3, 4]
    state = torch.load(states[-1][1], weights_only=True)
    assert state["train_config"] == saved and state["step"] == 4
    assert isinstance(state["rng"]["torch"], torch.Tensor) and isinstance(state["rng"]["python"], torch.Tensor)
    assert [entry["step"] for entry in state["history"]] == [2, 4]
    events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(events[0])).Reload()
    assert {"train_depth/loss", "train_semantic/loss", "train/lr", "val/abs_rel", "val/miou"} <= set(
        accumulator.Tags()["scalars"])
    assert "val/0" in accumulator.Tags()["images"]
    image = accumulator.Images("val/0")[-1]
    assert (image.height, image.width) == (3 * 32, 96)  # input, depth colour, labels colour stacked


# --------------------------------------------------------------------------------- Table I and phase 2

def test_table_one_variants_from_config_alone(tmp_path: Path) -> None:
    depth_only = {"depth": 1, "semantic": 0}
    # DRN: regression from scratch (phase 2 without init_from)
    drn = run_training(tiny_config(phase=2, tasks=("depth",), steps=2, flow=depth_only), out_dir=tmp_path / "drn",
                       progress=False)
    assert load_checkpoint(drn.checkpoint_path).config.use_drn
    # DC-DRN: phase 1 without semantic data, then phase 2
    dc = run_training(tiny_config(tasks=("depth",), steps=2, flow=depth_only), out_dir=tmp_path / "dc",
                      progress=False)
    dc_ckpt = load_checkpoint(dc.checkpoint_path)
    untouched = build_model(dc_ckpt.config, None, 0).state_dict()
    assert all(torch.equal(untouched[k], v) for k, v in dc_ckpt.state_dict.items() if k.startswith("sc_head."))
    dc_drn = run_training(tiny_config(phase=2, tasks=("depth",), steps=2, flow=depth_only, model={},
                                      init_from=str(tmp_path / "dc")), out_dir=tmp_path / "dc_drn", progress=False)
    # DSC-DRN: the full method
    dsc = run_training(tiny_config(steps=2), out_dir=tmp_path / "dsc", progress=False)
    dsc_drn = run_training(tiny_config(phase=2, steps=3, model={}, init_from=str(dsc.checkpoint_path),
                                       flow={"depth": 2, "semantic": 1}, validation=with_validation()),
                           out_dir=tmp_path / "dsc_drn", progress=False)
    for result in (dc_drn, dsc_drn):
        checkpoint = load_checkpoint(result.checkpoint_path)
        assert checkpoint.config.use_drn and checkpoint.config.decoder_channels == (32, 16)
    assert {"miou", "abs_rel"} <= set(dsc_drn.metrics_before) and {"miou", "abs_rel"} <= set(dsc_drn.final_metrics)
    assert load_checkpoint(dsc_drn.checkpoint_path).extra["metrics_before"] == dsc_drn.metrics_before


def test_phase_two_starts_from_phase_one_and_can_freeze_the_semantic_head(tmp_path: Path) -> None:
    phase1 = run_training(tiny_config(steps=2), out_dir=tmp_path / "p1", progress=False)
    first = load_checkpoint(phase1.checkpoint_path)
    config = tiny_config(phase=2, steps=2, model={}, init_from=str(tmp_path / "p1"), freeze=["sc"],
                         datasets=[synthetic("kitti_like", "depth")], flow={"depth": 1, "semantic": 0},
                         validation=with_validation(("semantic",)) | {"every": 0})
    model_config, init = resolve_model_config(config)
    start = build_model(model_config, init, 0).state_dict()
    assert model_config.use_drn and all(torch.equal(start[k], v) for k, v in first.state_dict.items())
    result = run_training(config, out_dir=tmp_path / "p2", progress=False)
    second = load_checkpoint(result.checkpoint_path)
    sc = [k for k in first.state_dict if k.startswith("sc_head.")]
    assert sc and all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in sc)
    assert any(not torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict
               if k.startswith("encoder."))
    assert 0.0 <= result.metrics_before["miou"] <= 1.0 and 0.0 <= result.final_metrics["miou"] <= 1.0


# -------------------------------------------------------------------------------------- precision, ranks

def test_precision_rules() -> None:
    with pytest.raises(ConfigError, match="precision fp16 needs a CUDA device, got cpu"):
        autocast_factory("fp16", torch.device("cpu"))
    with pytest.raises(ConfigError, match="precision 'auto' is not one of fp32, fp16, bf16$"):
        autocast_factory("auto", torch.device("cpu"))  # a training run names its precision
    assert autocast_factory("fp32", torch.device("cpu"))().__class__.__name__ == "nullcontext"
    with autocast_factory("bf16", torch.device("cpu"))():
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


def test_rank_detection_and_rank_zero_only_output(tmp_path: Path) -> None:
    assert detect_context({}) == DistContext(0, 1, 0)
    worker = detect_context({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (worker.rank, worker.world_size, worker.local_rank, worker.is_main) == (3, 4, 1, False)
    with pytest.raises(ConfigError, match="RANK=4 WORLD_SIZE=4"):
        detect_context({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ConfigError, match="WORLD_SIZE = 'two'"):
        detect_context({"WORLD_SIZE": "two"})
    silent = RunLogger(tmp_path / "r1", enabled=False, tensorboard=True, progress=True, total=3, initial=0)
    silent.scalars(1, "train", {"loss": 1.0})
    silent.close()
    assert not (tmp_path / "r1").exists()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, port: int, out_dir: str, result_dir: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    config = tiny_config(steps=2, logging={"every": 1, "tensorboard": True, "num_images": 0},
                         checkpoint={"every": 1, "keep_last": 2}, validation=with_validation() | {"every": 0})
    sums: list[float] = []
    original = trainer.train_step

    def recording_step(parts: StepParts, batch: dict[str, torch.Tensor], task: str) -> Any:
        sums.append(batch["image"].sum().item())
        return original(parts, batch, task)

    trainer.train_step = recording_step
    result = run_training(config, out_dir=out_dir, progress=False)
    torch.save({"batch_sums": sums, "final_metrics": result.final_metrics}, Path(result_dir) / f"rank{rank}.pt")


@pytest.mark.skipif(sys.platform != "linux", reason="gloo on Linux")
def test_two_process_ddp_on_cpu(tmp_path: Path) -> None:
    """torchrun-style: two gloo processes, each with its own data share; rank 0 alone writes; the depth step leaves
    the SC head untouched under DDP too; validation is sharded and merged."""
    (tmp_path / "results").mkdir()
    mp.spawn(_ddp_worker, args=(_free_port(), str(tmp_path / "run"), str(tmp_path / "results")), nprocs=2,
             join=True)
    ranks = [torch.load(tmp_path / "results" / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["batch_sums"] != ranks[1]["batch_sums"]  # DistributedSampler shares differ
    assert ranks[0]["final_metrics"] == ranks[1]["final_metrics"]  # merged over both shards
    assert ranks[0]["final_metrics"]["synthetic_depth_0/count"] == 2 and "miou" in ranks[0]["final_metrics"]
    assert len(list((tmp_path / "run" / "tensorboard").glob("events.*"))) == 1  # rank 0 alone logs
    after_depth_step = torch.load(tmp_path / "run" / "checkpoints" / "state_00000001.pt", weights_only=True)["model"]
    config = tiny_config()
    initial = build_model(resolve_model_config(config)[0], None, config.seed).state_dict()
    assert all(torch.equal(initial[k], after_depth_step[k]) for k in initial if k.startswith("sc_head."))
    assert any(not torch.equal(initial[k], after_depth_step[k]) for k in initial if k.startswith("dc_head."))
    assert load_checkpoint(tmp_path / "run" / "model.pt").extra["step"] == 2


# ------------------------------------------------------------------------------------------------------ CLI

def test_train_command_runs_a_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from semantic_depth_ros.cli import main

    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(tiny_config(steps=3).to_dict()))
    code = main(["train", "--config", str(path), "--out", str(tmp_path / "run"), "--max-steps", "2",
                 "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    summary = json.loads(out[out.index("{\n"):])
    assert summary["steps"] == 2 and summary["model_checkpoint"] == str(tmp_path / "run" / "model.pt")
    assert "# resolved training config" in out and "steps: 2" in out
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 1
    assert "error: train config" in capsys.readouterr().err


def test_train_command_finds_installed_configs_by_name() -> None:
    from semantic_depth_ros.commands.train import config_path

    assert config_path("train_demo_phase1").name == "train_demo_phase1.yaml"
    assert config_path("train_demo_phase2.yaml").is_file()
    assert config_path("no_such_config") == Path("no_such_config")

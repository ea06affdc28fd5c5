"""Training config: YAML files in config/, strict keys and types, cross-field rules, dataset options."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from semantic_depth_ros.errors import ConfigError
from semantic_depth_ros.training.config import (TrainConfig, config_from_dict, config_to_yaml, first_difference,
                                                load_config)
from semantic_depth_ros.training.datasets import build_reader
from semantic_depth_ros.training.model_setup import resolve_model_config

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
SYNTHETIC = {"type": "synthetic", "task": "depth",
             "options": {"domain": "kitti_like", "length": 2, "seed": 0, "height": 20, "width": 60}}


def minimal(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"datasets": [dict(SYNTHETIC)], "flow": {"depth": 1, "semantic": 0}}
    data.update(changes)
    return data


@pytest.mark.parametrize("name", ["train_phase1_kitti_cityscapes", "train_phase2_kitti", "train_demo_phase1",
                                  "train_demo_phase2", "train_demo_full_phase1", "train_demo_full_phase2"])
def test_shipped_configs_load(name: str) -> None:
    config = load_config(CONFIG_DIR / f"{name}.yaml")
    assert config.tasks() == ("depth", "semantic")
    assert config.phase == (2 if "phase2" in name else 1)
    assert (config.init_from is not None) == (config.phase == 2)
    assert config_from_dict(yaml.safe_load(config_to_yaml(config))) == config  # round trip


def test_demo_phase1_config_resolves_its_model() -> None:
    config = load_config(CONFIG_DIR / "train_demo_phase1.yaml")
    model_config, init = resolve_model_config(config)
    assert init is None and (model_config.input_height, model_config.input_width) == (96, 320)
    assert model_config.use_drn is False and model_config.output_stride == 2
    assert model_config.focal_px == pytest.approx(721.5 * 320 / 1242, abs=0.01)  # kitti_like camera at 320 px
    semantic = next(entry for entry in config.datasets if entry.task == "semantic")
    colours = semantic.augmentation_of(config.augmentation)  # the overcast domain's own, stronger jitter
    assert (colours.saturation, colours.hue, config.augmentation.hue) == (0.5, 0.05, 0.0)
    assert config.loss.semantic_balance == 0.5
    full, _ = resolve_model_config(load_config(CONFIG_DIR / "train_demo_full_phase1.yaml"))
    assert (full.input_height, full.input_width) == (188, 620)  # the vehicle's network
    assert full.focal_px == pytest.approx(721.54 * 620 / 1242, abs=0.01)


def test_defaults() -> None:
    config = config_from_dict(minimal())
    assert isinstance(config, TrainConfig)
    assert (config.phase, config.precision, config.flow.depth, config.checkpoint.keep_last) == (1, "fp32", 1, 3)
    assert config.run_dir() == Path("runs/train")


@pytest.mark.parametrize(("data", "message"), [
    (minimal(stepz=3), "unknown key 'stepz'"),
    (minimal(optimizer={"lrr": 1.0}), "unknown key 'optimizer.lrr'"),
    (minimal(datasets=[{**SYNTHETIC, "root": "x"}]), "unknown key 'datasets[0].root'"),
    (minimal(validation={"datasets": [{"typo": 1}]}), "unknown key 'validation.datasets[0].typo'"),
    (minimal(model={"overrides": {"input_hieght": 96}}), "unknown key 'model.overrides.input_hieght'"),
    (minimal(steps="ten"), "steps = 'ten' is not a valid int"),
    (minimal(resume="yes"), "resume = 'yes' is not a valid bool"),
    (minimal(optimizer={"betas": [0.9]}), "optimizer.betas must be a list of 2 values"),
    (minimal(optimizer={"lr": True}), "optimizer.lr = True is not a valid float"),
    (minimal(datasets="kitti"), "datasets must be a list"),
    (minimal(phase=3), "phase = 3 must be 1 or 2"),
    (minimal(precision="fp8"), "precision = 'fp8' must be one of fp32, fp16, bf16"),
    (minimal(freeze=["head"]), "freeze lists unknown group 'head'"),
    (minimal(datasets=[]), "datasets is empty"),
    (minimal(flow={"depth": 1, "semantic": 1}), "flow.semantic = 1 but no training dataset has task semantic"),
    (minimal(flow={"depth": 0, "semantic": 0}), "flow.depth is 0 but datasets has a depth dataset"),
    (minimal(datasets=[{**SYNTHETIC, "type": "nyu"}]), "datasets[0].type = 'nyu' must be one of"),
    (minimal(datasets=[{**SYNTHETIC, "type": "cityscapes", "path": "c", "split": "train"}]),
     "datasets[0].task = 'depth': a cityscapes dataset provides semantic"),
    (minimal(datasets=[{"type": "kitti", "task": "depth", "path": "k"}]), "datasets[0].split is required"),
    (minimal(datasets=[{**SYNTHETIC, "path": "here"}]), "a synthetic dataset takes no path/split"),
    (minimal(init_from="p1.pt", model={"preset": "resnet18"}), "set either model.preset or init_from"),
    (minimal(model={"overrides": {"use_drn": True}}), "use_drn = True contradicts phase 1"),
    (minimal(augmentation={"scale_min": 0.5}), "augmentation.scale_min/scale_max = 0.5/1.5"),
    (minimal(schedule={"decay": "step"}), "schedule.decay = 'step' must be one of cosine, poly, constant"),
    (minimal(validation={"crop": "kitti"}), "validation.crop = 'kitti' must be one of garg, eigen, none"),
    (minimal(checkpoint={"best_metric": "psnr"}), "checkpoint.best_metric = 'psnr' must be one of"),
    (minimal(phase=2, loss={"depth_l1": 0.0}),
     "phase 2 needs loss.depth_l1, loss.depth_relative or loss.phase2_depth_ce above 0"),
    (minimal(augmentation={"hue": 0.7}), "augmentation.hue = 0.7 must be in [0, 0.5]"),
    (minimal(datasets=[{**SYNTHETIC, "augmentation": {"hue": -0.1}}]), "datasets[0].augmentation.hue = -0.1"),
    (minimal(datasets=[{**SYNTHETIC, "augmentation": {"scale_max": 0.9}}]),
     "datasets[0].augmentation.scale_min/scale_max = 1.0/0.9"),
    (minimal(datasets=[{**SYNTHETIC, "augmentation": {"hues": 0.1}}]), "unknown key 'datasets[0].augmentation.hues'"),
    (minimal(datasets=[{**SYNTHETIC, "crop": [64]}]), "datasets[0].crop must be a list of 2 values"),
    (minimal(datasets=[{**SYNTHETIC, "crop": [4, 160]}]), "datasets[0].crop = [4, 160] must be two sizes of at least"),
    (minimal(validation={"datasets": [{**SYNTHETIC, "crop": [64, 0]}]}), "validation.datasets[0].crop = [64, 0]"),
    (minimal(datasets=[dict(SYNTHETIC), {**SYNTHETIC, "crop": [16, 32]}]),
     "the depth datasets have crops ['(16, 32)', 'None']: every training dataset of one task shares one crop"),
    ([1, 2], "top level must be a mapping"),
])
def test_invalid_configs_name_the_offending_key(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_load_config_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"train config {tmp_path / 'none.yaml'}: file not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: [1,\n")
    with pytest.raises(ConfigError, match=f"train config {bad}: invalid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text(yaml.safe_dump(minimal(loss={"depth_cee": 1.0})))
    with pytest.raises(ConfigError, match=f"train config {typo}: unknown key 'loss.depth_cee'"):
        load_config(typo)


def test_dataset_options_are_checked_against_the_reader() -> None:
    config = config_from_dict(minimal(datasets=[{**SYNTHETIC, "options": {**SYNTHETIC["options"], "fov": 90}}]))
    with pytest.raises(ConfigError, match="datasets\\[0\\].options: unknown key 'fov' for a synthetic dataset "
                                          "\\(accepted: domain, length, seed, height, width, cache\\)"):
        build_reader(config.datasets[0], "datasets[0]")
    reader = build_reader(config_from_dict(minimal()).datasets[0], "datasets[0]")
    assert len(reader) == 2 and reader[0]["depth"].shape == (1, 20, 60)


def test_model_overrides_are_validated_by_the_model_config() -> None:
    config = config_from_dict(minimal(model={"preset": "resnet18_fast", "overrides": {"input_height": 8}}))
    with pytest.raises(ConfigError, match="model.overrides: .*input_height = 8 must be an integer between 32"):
        resolve_model_config(config)


def test_replace_validates_and_first_difference_names_keys() -> None:
    config = config_from_dict(minimal())
    assert config.replace(steps=7).steps == 7
    with pytest.raises(ConfigError, match="steps = 0 must be at least 1"):
        config.replace(steps=0)
    a = config.to_dict()
    b = config.replace(optimizer={"lr": 0.1}).to_dict()
    assert first_difference(a, b) == "optimizer.lr"
    assert first_difference(a, a) is None


# ------------------------------------------------------------------ one strict converter for both configs

def test_fractional_decoder_channels_are_refused_by_the_train_config_loader(tmp_path: Path) -> None:
    path = tmp_path / "fractional.yaml"
    path.write_text(yaml.safe_dump(minimal(model={"preset": "resnet18_fast",
                                                  "overrides": {"decoder_channels": [32.9, 16.2, 8.7]}})))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (f"train config {path}: model.overrides.decoder_channels[0] = 32.9 is not a valid "
                                "int (not a whole number)")


@pytest.mark.parametrize(("data", "message"), [
    (minimal(steps=800.5), "steps = 800.5 is not a valid int (not a whole number)"),
    (minimal(model={"overrides": {"input_height": 64.5}}),
     "model.overrides.input_height = 64.5 is not a valid int (not a whole number)"),
    (minimal(model={"overrides": {"decoder_channels": 32}}), "model.overrides.decoder_channels must be a list"),
    (minimal(model={"overrides": {"use_drn": 0}}), "model.overrides.use_drn = 0 is not a valid bool"),
    (minimal(model={"overrides": {"focal_px": True}}), "model.overrides.focal_px = True is not a valid float"),
    (minimal(model={"overrides": {"imagenet_weights": 3}}), "model.overrides.imagenet_weights = 3 is not a valid str"),
    (minimal(validation={"max_depth": float("inf")}), "validation.max_depth = inf is not a valid float"),
])
def test_strict_types_everywhere(data: Any, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        config_from_dict(data)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_whole_floats_are_accepted_as_ints_in_both_configs(tmp_path: Path) -> None:
    """The one rule for both: 800.0 is 800 (YAML writers emit it), a fraction is refused."""
    config = config_from_dict(minimal(steps=800.0, model={"preset": "resnet18_fast",
                                                          "overrides": {"decoder_channels": [32.0, 16.0]}}))
    assert config.steps == 800 and isinstance(config.steps, int)
    assert config.model.overrides["decoder_channels"] == (32, 16)
    model_config, _ = resolve_model_config(config)
    assert model_config.decoder_channels == (32, 16)
    assert all(isinstance(c, int) for c in model_config.decoder_channels)
    assert config_from_dict(yaml.safe_load(config_to_yaml(config))) == config
    validation = config_from_dict(minimal(validation={"max_depth": 50}))
    assert validation.validation.max_depth == 50.0 and isinstance(validation.validation.max_depth, float)
    assert validation.validation.min_depth == 1.0 and validation.validation.every == 1000

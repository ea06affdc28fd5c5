"""Model core: network shapes per preset and head set, bins, confidence, configs, checkpoints, ImageNet weights."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

from semantic_depth_ros.errors import CheckpointError, ConfigError
from semantic_depth_ros.model.bins import IGNORE_INDEX, DepthBins, confidence_from_probs, expected_log_depth
from semantic_depth_ros.model.checkpoint import FORMAT_NAME, FORMAT_VERSION, load_checkpoint, save_checkpoint
from semantic_depth_ros.model.config import ModelConfig, available_presets, load_preset
from semantic_depth_ros.model.network import HEADS, SemanticDepthNet
from semantic_depth_ros.model.resnet import ResNetEncoder, load_imagenet_weights

PRESETS = sorted(available_presets())
HEAD_SETS = [combo for n in range(1, 4) for combo in itertools.combinations(HEADS, n)]
SMALL = {"input_height": 64, "input_width": 192}
TINY = ModelConfig(name="tiny", input_height=64, input_width=96, num_depth_bins=8, decoder_channels=(16, 8))


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _expected_keys(heads: tuple[str, ...]) -> set[str]:
    keys: set[str] = set()
    if "dc" in heads or "drn" in heads:
        keys |= {"depth_logits", "depth_probs", "dc_depth"}
    if "drn" in heads:
        keys.add("depth")
    if "sc" in heads:
        keys.add("semantic_logits")
    return keys


# ---------------------------------------------------------------- network

def test_the_documented_presets_are_installed() -> None:
    assert {"resnet18", "resnet18_fast", "resnet34", "resnet50"} <= set(PRESETS)


@pytest.mark.parametrize("preset", PRESETS)
def test_network_shapes_for_every_head_combination(preset: str) -> None:
    config = load_preset(preset).replace(**SMALL)
    torch.manual_seed(0)
    model = SemanticDepthNet(config).eval()
    images = torch.rand(2, 3, 64, 192)
    k, c, stride = config.num_depth_bins, config.num_classes, config.output_stride
    channels = {"depth_logits": k, "depth_probs": k, "dc_depth": 1, "depth": 1, "semantic_logits": c}
    with torch.inference_mode():
        for heads in HEAD_SETS:
            full = model(images, heads=heads)
            assert set(full) == _expected_keys(heads), heads
            for key, value in full.items():
                assert value.shape == (2, channels[key], 64, 192), (heads, key)
                assert torch.isfinite(value).all(), (heads, key)
            low = model(images, heads=heads, upsample=False)
            assert set(low) == set(full)
            for key, value in low.items():
                assert value.shape == (2, channels[key], 64 // stride, 192 // stride), (heads, key)
            for out in (full, low):
                if "depth" in out:
                    assert float(out["depth"].min()) >= config.min_depth * (1 - 1e-6)
                    assert float(out["depth"].max()) <= config.max_depth * (1 + 1e-6)
                if "depth_probs" in out:
                    torch.testing.assert_close(out["depth_probs"].sum(1), torch.ones(2, *out["depth_probs"].shape[2:]))


def test_resnet50_builds_at_the_preset_size() -> None:
    config = load_preset("resnet50")
    model = SemanticDepthNet(config)
    assert (config.input_height, config.input_width, config.max_depth) == (188, 620, 80.0)
    assert model.encoder.channels == (64, 256, 512, 1024, 2048)
    assert model.decoder.out_channels == config.decoder_channels[-1]
    assert model.dc_head.classifier.out_channels == config.num_depth_bins
    assert model.sc_head.classifier.out_channels == 19
    assert 23_000_000 < sum(p.numel() for p in model.encoder.parameters()) < 24_000_000  # ResNet-50 minus fc


def test_fresh_drn_reproduces_the_classification_depth() -> None:
    torch.manual_seed(0)
    model = SemanticDepthNet(TINY).eval()
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 64, 96), heads=("drn",), upsample=False)
    torch.testing.assert_close(out["depth"], out["dc_depth"])


def test_drn_on_a_model_without_drn_is_a_config_error() -> None:
    model = SemanticDepthNet(TINY.replace(name="plain", use_drn=False)).eval()
    assert model.param_groups()["drn"] == []
    with pytest.raises(ConfigError, match=r"^model 'plain' has no DRN head \(use_drn is false\)$"):
        model(torch.rand(1, 3, 64, 96), heads=("dc", "drn"))
    with pytest.raises(ConfigError, match="unknown or empty heads"):
        model(torch.rand(1, 3, 64, 96), heads=("depth",))
    with pytest.raises(ConfigError, match="unknown or empty heads"):
        model(torch.rand(1, 3, 64, 96), heads=())


# ---------------------------------------------------------------- bins and confidence

def test_bins_round_trip_and_edges() -> None:
    bins = DepthBins(1.0, 80.0, 64)
    centers, edges = bins.centers, bins.edges
    assert centers.shape == (64,) and edges.shape == (65,)
    assert torch.all(edges[1:] > edges[:-1])
    assert edges[0].item() == pytest.approx(1.0) and edges[-1].item() == pytest.approx(80.0)
    assert torch.all((centers > edges[:-1]) & (centers < edges[1:]))
    torch.testing.assert_close(centers, torch.sqrt(edges[:-1] * edges[1:]))  # geometric mean of the edges
    index = bins.depth_to_index(centers)
    assert torch.equal(index, torch.arange(64))
    torch.testing.assert_close(bins.index_to_depth(index), centers)


def test_bins_invalid_and_out_of_range_depths() -> None:
    bins = DepthBins(1.0, 80.0, 64)
    depth = torch.tensor([0.0, -3.0, math.nan, math.inf, 0.2, 1000.0])
    assert bins.depth_to_index(depth).tolist() == [IGNORE_INDEX] * 4 + [0, 63]
    with pytest.raises(ValueError, match="invalid depth bins"):
        DepthBins(5.0, 1.0, 8)


def test_expected_log_depth_of_a_one_hot_distribution_is_the_bin_centre() -> None:
    bins = DepthBins(1.0, 80.0, 16)
    probs = torch.zeros(1, 16, 2, 3)
    probs[:, 5] = 1.0
    torch.testing.assert_close(expected_log_depth(probs, bins.log_centers).exp(),
                               torch.full((1, 1, 2, 3), float(bins.centers[5])))


def test_confidence_is_one_for_one_hot_and_zero_for_uniform() -> None:
    one_hot = torch.zeros(2, 32, 4, 5)
    one_hot[:, 7] = 1.0
    uniform = torch.full((2, 32, 4, 5), 1.0 / 32)
    torch.testing.assert_close(confidence_from_probs(one_hot), torch.ones(2, 1, 4, 5))
    torch.testing.assert_close(confidence_from_probs(uniform), torch.zeros(2, 1, 4, 5), atol=1e-6, rtol=0)
    mixed = torch.softmax(torch.randn(1, 32, 4, 5), dim=1)
    value = confidence_from_probs(mixed)
    assert value.shape == (1, 1, 4, 5) and bool(((value > 0) & (value < 1)).all())


# ---------------------------------------------------------------- config

def test_config_from_dict_names_unknown_keys_and_bad_types() -> None:
    with pytest.raises(ConfigError, match="^model config: unknown key 'depthh' \\(known: name, encoder, "):
        ModelConfig.from_dict({"depthh": 1, "colour": 2})
    with pytest.raises(ConfigError, match=r"^model config: decoder_channels\[1\] = 16.5 is not a valid int "
                                          r"\(not a whole number\)$"):
        ModelConfig.from_dict({"decoder_channels": [32, 16.5]})
    with pytest.raises(ConfigError, match=r"^model config: decoder_channels\[0\] = 32.9 is not a valid int"):
        ModelConfig(decoder_channels=(32.9, 16.2))  # type: ignore[arg-type]
    assert ModelConfig.from_dict({"decoder_channels": [32.0, 16], "input_height": 64.0}).decoder_channels == (32, 16)
    with pytest.raises(ConfigError, match="^model config: input_height = 'tall' is not a valid int$"):
        ModelConfig.from_dict({"input_height": "tall"})
    with pytest.raises(ConfigError, match="^model config: use_drn = 'yes' is not a valid bool$"):
        ModelConfig.from_dict({"use_drn": "yes"})
    with pytest.raises(ConfigError, match="model encoder 'vgg16' is not one of resnet18, resnet34, resnet50"):
        ModelConfig.from_dict({"encoder": "vgg16"})
    with pytest.raises(ConfigError, match="model max_depth = 0.5 must be larger than min_depth = 1.0"):
        ModelConfig.from_dict({"max_depth": 0.5})
    with pytest.raises(ConfigError, match="^model config: top level must be a mapping, got list$"):
        ModelConfig.from_dict([1, 2])  # type: ignore[arg-type]


def test_config_dict_round_trip() -> None:
    config = load_preset("resnet18_fast")
    assert ModelConfig.from_dict(config.to_dict()) == config
    assert config.output_stride == 4 and load_preset("resnet18").output_stride == 2


def test_unknown_preset_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match="model preset 'resnet9000' not found \\(available: .*resnet18"):
        load_preset("resnet9000")


# ---------------------------------------------------------------- checkpoints

@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SemanticDepthNet]:
    torch.manual_seed(3)
    model = SemanticDepthNet(TINY).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, model, TINY, trained=True, extra={"epoch": 7})
    return path, model


def test_checkpoint_round_trip_gives_identical_outputs(saved: tuple[Path, SemanticDepthNet]) -> None:
    path, model = saved
    checkpoint = load_checkpoint(path)
    assert checkpoint.config == TINY and checkpoint.trained is True and checkpoint.extra == {"epoch": 7}
    rebuilt = checkpoint.build_model()
    assert not rebuilt.training
    images = torch.rand(1, 3, 64, 96)
    with torch.inference_mode():
        a, b = model(images), rebuilt(images)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert not list(path.parent.glob(".tiny.pt.*.tmp"))  # the atomic write left no temp file


def _payload(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


class NotAllowed:
    """A custom class: pickling it into a checkpoint must make the file unloadable with weights_only."""

    def __init__(self) -> None:
        self.value = 1


def _bad_files(source: Path, folder: Path) -> list[tuple[Path, str]]:
    """(file, expected part of the message) for every kind of bad checkpoint."""
    good = source.read_bytes()
    cases: list[tuple[Path, str]] = [(folder / "absent.pt", "file not found"), (folder, "not a regular file")]

    def write_bytes(name: str, data: bytes, message: str) -> None:
        path = folder / name
        path.write_bytes(data)
        cases.append((path, message))

    def write_payload(name: str, payload: object, message: str) -> None:
        path = folder / name
        torch.save(payload, path)
        cases.append((path, message))

    write_bytes("garbage.pt", b"\x00not a checkpoint at all" * 50, "cannot be read")
    write_bytes("truncated.pt", good[: len(good) // 2], "cannot be read")
    write_bytes("empty.pt", b"", "cannot be read")
    payload = _payload(source)
    write_payload("custom_class.pt", {**payload, "extra": {"obj": NotAllowed()}},
                  "cannot be read (it contains objects other than tensors and plain data, refused for safety)")
    write_payload("other_format.pt", {**payload, "format": "someone.else"}, "not a semantic_depth_ros checkpoint")
    write_payload("list.pt", [1, 2, 3], "not a semantic_depth_ros checkpoint")
    write_payload("newer.pt", {**payload, "version": FORMAT_VERSION + 1},
                  f"format version {FORMAT_VERSION + 1} is newer than this code supports ({FORMAT_VERSION})")
    write_payload("bad_config.pt", {**payload, "config": {**payload["config"], "input_height": 5}},
                  "config: model input_height = 5 must be an integer between 32 and 8192")
    write_payload("unknown_config_key.pt", {**payload, "config": {**payload["config"], "colour": 1}},
                  "config: unknown key 'colour' (known: ")
    write_payload("no_state.pt", {**payload, "state_dict": None}, "has no valid state_dict")
    state = payload["state_dict"]
    missing = {k: v for k, v in state.items() if k != "sc_head.classifier.bias"}
    write_payload("missing.pt", {**payload, "state_dict": missing},
                  "weights do not match its config: missing 1 keys (e.g. sc_head.classifier.bias)")
    write_payload("unexpected.pt", {**payload, "state_dict": {**state, "extra_head.weight": torch.zeros(2)}},
                  "weights do not match its config: unexpected 1 keys (e.g. extra_head.weight)")
    reshaped = {**state, "sc_head.classifier.bias": torch.zeros(7)}
    write_payload("misshaped.pt", {**payload, "state_dict": reshaped},
                  "incompatible weights (size mismatch for sc_head.classifier.bias")
    return cases


def test_every_bad_checkpoint_is_refused_with_its_reason(saved: tuple[Path, SemanticDepthNet],
                                                         tmp_path: Path) -> None:
    path, _ = saved
    assert _payload(path)["format"] == FORMAT_NAME
    for bad, message in _bad_files(path, tmp_path):
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(bad)
        text = str(info.value)
        assert text.startswith(f"checkpoint {bad}: "), text
        assert "\n" not in text
        assert message in text, (bad.name, text)


def test_encoder_widths_size_every_stage_and_travel_in_the_checkpoint(tmp_path: Path) -> None:
    narrow = TINY.replace(encoder_widths=[16, 24, 40, 48])
    model = SemanticDepthNet(narrow).eval()
    assert model.encoder.channels == (16, 16, 24, 40, 48)
    assert model.encoder.conv1.weight.shape == (16, 3, 7, 7)
    assert model.encoder.layer4[0].conv1.weight.shape == (48, 40, 3, 3)
    assert model.encoder.layer4[1].conv2.weight.shape == (48, 48, 3, 3)
    wide = SemanticDepthNet(TINY)
    assert wide.encoder.channels == (64, 64, 128, 256, 512)  # torchvision's widths by default
    count = lambda net: sum(p.numel() for p in net.encoder.parameters())  # noqa: E731
    assert count(model) < count(wide) / 10
    images = torch.rand(2, 3, 64, 96)
    with torch.inference_mode():
        out = model(images)
    assert out["depth"].shape == (2, 1, 64, 96) and out["semantic_logits"].shape == (2, 19, 64, 96)
    path = tmp_path / "narrow.pt"
    save_checkpoint(path, model, narrow, trained=True)
    checkpoint = load_checkpoint(path)
    assert checkpoint.config.encoder_widths == (16, 24, 40, 48)
    with torch.inference_mode():
        assert torch.equal(checkpoint.build_model()(images)["depth"], out["depth"])
    older = _payload(path)  # a checkpoint written before the key existed: torchvision's widths
    del older["config"]["encoder_widths"]
    assert ModelConfig.from_dict(older["config"]).encoder_widths == (64, 128, 256, 512)


def test_bad_encoder_widths_are_refused_naming_the_value() -> None:
    with pytest.raises(ConfigError, match=r"^model config: model encoder_widths = \[64, 128, 256\] must list 4 "
                                          r"widths between 1 and 4096$"):
        ModelConfig.from_dict({"encoder_widths": [64, 128, 256]})
    with pytest.raises(ConfigError, match=r"encoder_widths = \[64, 0, 256, 512\] must list 4 widths"):
        ModelConfig(encoder_widths=(64, 0, 256, 512))
    with pytest.raises(ConfigError, match=r"encoder_widths\[3\] = 25.5 is not a valid int"):
        ModelConfig.from_dict({"encoder_widths": [64, 128, 256, 25.5]})
    with pytest.raises(ConfigError, match=r"^model encoder_widths = \[64, 128, 256, 256\] cannot load "
                                          r"imagenet_weights: ImageNet weights have the widths \[64, 128, 256, 512\]$"):
        ModelConfig(encoder_widths=(64, 128, 256, 256), imagenet_weights="resnet18-f37072fd.pth")


# ---------------------------------------------------------------- ImageNet weights

def _torchvision_style(encoder: str, seed: int) -> dict[str, torch.Tensor]:
    """A state dict shaped like torchvision's ResNet ImageNet files: encoder weights plus the ``fc`` classifier."""
    torch.manual_seed(seed)
    state = dict(ResNetEncoder(encoder).state_dict())
    width = 512 if encoder != "resnet50" else 2048
    state["fc.weight"] = torch.randn(1000, width)
    state["fc.bias"] = torch.randn(1000)
    return state


def test_imagenet_weights_load_and_fc_is_ignored(tmp_path: Path) -> None:
    state = _torchvision_style("resnet18", seed=5)
    path = tmp_path / "resnet18-f37072fd.pth"
    torch.save(state, path)
    encoder = ResNetEncoder("resnet18")
    load_imagenet_weights(encoder, path)
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_incompatible_imagenet_weights_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(_torchvision_style("resnet50", seed=1), path)
    with pytest.raises(CheckpointError, match=f"^ImageNet weights {path}: "):
        load_imagenet_weights(ResNetEncoder("resnet18"), path)
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"something.weight": torch.zeros(3)}, unrelated)
    with pytest.raises(CheckpointError, match="does not match the .* missing / 1 unexpected parameters"):
        load_imagenet_weights(ResNetEncoder("resnet18"), unrelated)
    with pytest.raises(CheckpointError, match="file not found"):
        load_imagenet_weights(ResNetEncoder("resnet18"), tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"junk" * 10)
    with pytest.raises(CheckpointError, match=f"^ImageNet weights {garbage}: cannot be read"):
        load_imagenet_weights(ResNetEncoder("resnet18"), garbage)


def test_init_checkpoint_refuses_an_unusable_out_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from semantic_depth_ros import cli

    (tmp_path / "a_file").write_text("not a folder")
    inside_file = tmp_path / "a_file" / "model.pt"
    for out, message in ((tmp_path, f"--out {tmp_path} is a folder; give a file name such as model.pt"),
                         (inside_file, f"--out {inside_file}: folder {inside_file.parent}: cannot be created")):
        assert cli.main(["init-checkpoint", "--preset", "resnet18_fast", "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"error: {message}") and err.count("\n") == 1

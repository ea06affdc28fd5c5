"""Sample transforms: shapes, dtypes, fx, depth/label value preservation, flips, jitter, canonical depth, seeds."""

import pytest
import torch

from semantic_depth_ros.data.transforms import (
    CanonicalDepth,
    ColorJitter,
    Compose,
    RandomHorizontalFlip,
    RandomScaleCrop,
    Resize,
    canonical_depth,
    hue_rotation,
    make_generator,
    resize_sample,
)
from semantic_depth_ros.errors import ConfigError, InvalidInputError

torch.set_num_threads(1)


def _sample(height: int = 12, width: int = 20, seed: int = 0) -> dict:
    """Random image; sparse depth (about half zeros) with distinct values; labels 0..18 and 255."""
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(1, height, width, generator=g) * 79 + 1
    depth[torch.rand(1, height, width, generator=g) < 0.5] = 0.0
    semantic = torch.randint(0, 19, (height, width), generator=g)
    semantic[:, :3] = 255
    return {
        "image": torch.rand(3, height, width, generator=g),
        "depth": depth,
        "semantic": semantic,
        "fx": 100.0,
        "name": "frame_0001",
    }


def test_random_scale_crop_shapes_dtypes_and_values() -> None:
    sample = _sample()
    for seed in range(5):
        out = RandomScaleCrop(6, 8, scale_range=(1.0, 2.0))(sample, seed)
        assert out["image"].shape == (3, 6, 8) and out["image"].dtype == torch.float32
        assert out["depth"].shape == (1, 6, 8) and out["depth"].dtype == torch.float32
        assert out["semantic"].shape == (6, 8) and out["semantic"].dtype == torch.int64
        assert 0.0 <= out["image"].min() and out["image"].max() <= 1.0
        # nearest sampling: every depth is an input value (0 included), every label an input label
        assert set(out["depth"].unique().tolist()) <= set(sample["depth"].unique().tolist())
        assert set(out["semantic"].unique().tolist()) <= set(sample["semantic"].unique().tolist())
        # fx follows the resized width: fx_out / fx_in * W is the integer width the image was resized to (>= 8)
        resized_width = out["fx"] / sample["fx"] * 20
        assert resized_width == pytest.approx(round(resized_width), abs=1e-9) and round(resized_width) >= 8
        assert out["name"] == "frame_0001"
    assert sample["image"].shape == (3, 12, 20)  # input untouched


def test_minimum_scale_is_the_cover_scale_and_fx_scales_exactly() -> None:
    out = RandomScaleCrop(6, 5, scale_range=(1.0, 1.0))(_sample(12, 20), 3)
    # cover = max(6/12, 5/20) = 0.5 -> resized to 6x10, then a 6x5 crop
    assert out["fx"] == 50.0
    assert Resize(3, 8)(_sample(12, 20))["fx"] == 40.0


def test_zeros_stay_zeros_and_depth_is_never_averaged() -> None:
    sample = _sample(8, 8)
    sample["depth"] = torch.zeros(1, 8, 8)
    sample["depth"][..., ::2] = 5.0  # alternating valid / invalid columns
    for height, width in ((4, 4), (5, 7), (16, 16), (12, 20)):
        out = resize_sample(sample, height, width)
        assert set(out["depth"].unique().tolist()) <= {0.0, 5.0}
    sample["depth"] = torch.zeros(1, 8, 8)
    assert RandomScaleCrop(4, 4)(sample, 1)["depth"].count_nonzero() == 0


def test_crop_without_resize_takes_one_window_for_all_fields() -> None:
    sample = _sample(8, 16)
    sample["image"] = torch.arange(3 * 8 * 16, dtype=torch.float32).reshape(3, 8, 16) / (3 * 8 * 16)
    seen = set()
    for seed in range(12):
        out = RandomScaleCrop(4, 8, scale_range=(2.0, 2.0))(sample, seed)  # cover 0.5 x 2 = 1: crop only
        flat = int(round(float(out["image"][0, 0, 0]) * 3 * 8 * 16))
        top, left = divmod(flat, 16)
        window = (slice(top, top + 4), slice(left, left + 8))
        assert torch.equal(out["image"], sample["image"][:, window[0], window[1]])
        assert torch.equal(out["depth"], sample["depth"][:, window[0], window[1]])
        assert torch.equal(out["semantic"], sample["semantic"][window])
        assert out["fx"] == 100.0
        seen.add((top, left))
    assert len(seen) > 1  # the window is random


def test_resize_shrinks_image_with_antialias_and_keeps_same_size_exact() -> None:
    sample = {"image": torch.zeros(3, 4, 8)}
    sample["image"][:, :, 4] = 1.0  # a one-pixel line that plain bilinear sampling at 1/4 width would miss
    out = Resize(2, 2)(sample)["image"]
    assert out.shape == (3, 2, 2) and float(out.min()) > 0.1
    assert float(out.mean()) == pytest.approx(1 / 8, abs=0.02)  # brightness of the line is kept on average
    assert torch.equal(Resize(4, 8)(sample)["image"], sample["image"])


def test_horizontal_flip_keeps_fields_consistent() -> None:
    sample = _sample(4, 6)
    columns = torch.arange(6, dtype=torch.float32)
    sample["image"] = (columns / 10).expand(3, 4, 6).clone()
    sample["depth"] = (columns + 1).expand(1, 4, 6).clone()
    sample["semantic"] = torch.arange(6).expand(4, 6).clone()
    flipped = RandomHorizontalFlip(p=1.0)(sample, 0)
    assert torch.equal(flipped["semantic"][0], torch.tensor([5, 4, 3, 2, 1, 0]))
    assert torch.equal(flipped["depth"][0], flipped["semantic"].float() + 1)
    assert torch.allclose(flipped["image"][1], flipped["semantic"].float() / 10)
    assert flipped["fx"] == 100.0
    kept = RandomHorizontalFlip(p=0.0)(sample, 0)
    assert all(torch.equal(kept[k], sample[k]) for k in ("image", "depth", "semantic"))
    flips = [RandomHorizontalFlip(0.5)(sample, seed)["semantic"][0, 0].item() == 5 for seed in range(40)]
    assert 5 < sum(flips) < 35


def test_color_jitter_touches_only_the_image_and_clamps() -> None:
    sample = _sample()
    bright = ColorJitter(brightness=(3.0, 3.0), contrast=0.0, saturation=0.0)(sample, 0)
    assert torch.equal(bright["image"], (sample["image"] * 3).clamp(0, 1))
    assert bright["image"].max() == 1.0
    assert torch.equal(bright["depth"], sample["depth"]) and torch.equal(bright["semantic"], sample["semantic"])
    gray = ColorJitter(brightness=0.0, contrast=0.0, saturation=(0.0, 0.0))(sample, 0)["image"]
    luma = 0.299 * sample["image"][0] + 0.587 * sample["image"][1] + 0.114 * sample["image"][2]
    assert torch.allclose(gray, luma.expand(3, -1, -1), atol=1e-6)
    flat = ColorJitter(brightness=0.0, contrast=(0.0, 0.0), saturation=0.0)(sample, 0)["image"]
    assert torch.allclose(flat, torch.full_like(flat, float(luma.mean())), atol=1e-6)
    strong = ColorJitter(brightness=0.9, contrast=0.9, saturation=0.9)
    for seed in range(10):
        image = strong(sample, seed)["image"]
        assert 0.0 <= image.min() and image.max() <= 1.0


def test_hue_rotation_keeps_greys_and_turns_red_to_green_to_blue() -> None:
    third = hue_rotation(1.0 / 3.0)
    assert torch.allclose(third @ torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),
                          torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), atol=1e-12)
    assert torch.allclose(third @ torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64),
                          torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), atol=1e-12)
    grey = torch.tensor([0.4, 0.4, 0.4], dtype=torch.float64)
    assert torch.allclose(hue_rotation(0.17) @ grey, grey, atol=1e-12)
    assert torch.allclose(hue_rotation(0.1) @ hue_rotation(-0.1), torch.eye(3, dtype=torch.float64), atol=1e-12)


def test_color_jitter_hue_rotates_colours_within_its_range_and_draws_nothing_at_zero() -> None:
    sample = _sample()
    plain = dict(brightness=0.0, contrast=0.0, saturation=0.0)
    for seed in range(8):
        image = ColorJitter(**plain, hue=0.05)(sample, seed)["image"]
        # a rotation of at most 0.05 turn moves a colour by at most 2 sin(pi * 0.05) of its distance to grey
        grey = sample["image"].mean(dim=0, keepdim=True)
        bound = 2 * torch.sin(torch.tensor(torch.pi * 0.05)) * (sample["image"] - grey).norm(dim=0) + 1e-6
        assert ((image - sample["image"]).norm(dim=0) <= bound).all()
    assert not torch.equal(ColorJitter(**plain, hue=0.05)(sample, 3)["image"], sample["image"])
    assert torch.equal(ColorJitter(**plain, hue=0.0)(sample, 3)["image"], sample["image"])
    generator = make_generator(5)
    ColorJitter()(sample, generator)
    after_default = float(torch.rand((), generator=generator))
    generator = make_generator(5)
    ColorJitter(hue=0.0)(sample, generator)
    assert float(torch.rand((), generator=generator)) == after_default  # hue 0: the same draws as before
    with pytest.raises(ConfigError, match="hue must be in"):
        ColorJitter(hue=0.6)


def test_canonical_depth_numbers() -> None:
    depth = torch.tensor([[[0.0, 10.0], [20.0, 0.0]]])
    assert torch.equal(canonical_depth(depth, 200.0, 100.0), torch.tensor([[[0.0, 5.0], [10.0, 0.0]]]))
    sample = {"image": torch.zeros(3, 2, 2), "depth": depth, "fx": 50.0}
    assert torch.equal(CanonicalDepth(100.0)(sample)["depth"], depth * 2)
    semantic_only = {"image": torch.zeros(3, 2, 2), "semantic": torch.zeros(2, 2, dtype=torch.int64), "fx": 50.0}
    assert CanonicalDepth(100.0)(semantic_only).keys() == semantic_only.keys()


def test_canonical_depth_after_scale_crop_uses_the_current_fx() -> None:
    sample = _sample(12, 20)
    pipeline = Compose([RandomScaleCrop(6, 5, scale_range=(1.0, 1.0)), CanonicalDepth(25.0)])
    out = pipeline(sample, 0)  # fx 100 -> 50 after the 0.5 resize, so depth is scaled by 25 / 50
    plain = RandomScaleCrop(6, 5, scale_range=(1.0, 1.0))(sample, 0)
    assert torch.equal(out["depth"], plain["depth"] * 0.5)


def test_same_seed_same_augmentation() -> None:
    pipeline = Compose(
        [RandomScaleCrop(6, 8), RandomHorizontalFlip(), ColorJitter(), CanonicalDepth(60.0)]
    )
    sample = _sample()
    first = pipeline(sample, make_generator(7, 2, 31))
    second = pipeline(sample, make_generator(7, 2, 31))
    other = pipeline(sample, make_generator(7, 2, 32))
    for key in ("image", "depth", "semantic"):
        assert torch.equal(first[key], second[key])
    assert first["fx"] == second["fx"]
    assert not torch.equal(first["image"], other["image"])
    assert torch.equal(pipeline(sample, 5)["image"], pipeline(sample, 5)["image"])


def test_errors_name_the_field() -> None:
    sample = _sample()
    bad = dict(sample, depth=torch.zeros(1, 5, 5))
    with pytest.raises(InvalidInputError, match=r"sample\['depth'\] must be a float 1x12x20 tensor, got shape"):
        Resize(4, 4)(bad)
    with pytest.raises(InvalidInputError, match=r"sample\['image'\] must be a float 3xHxW tensor"):
        Resize(4, 4)(dict(sample, image=torch.zeros(12, 20, 3, dtype=torch.uint8)))
    with pytest.raises(InvalidInputError, match=r"sample\['semantic'\] must be an integer 12x20 tensor"):
        Resize(4, 4)(dict(sample, semantic=torch.zeros(12, 20)))
    with pytest.raises(InvalidInputError, match="no 'fx'"):
        CanonicalDepth(10.0)({"image": torch.zeros(3, 2, 2), "depth": torch.ones(1, 2, 2)})
    with pytest.raises(InvalidInputError, match="fx must be a positive finite number of pixels, got 0"):
        canonical_depth(torch.ones(1, 2, 2), 0, 10.0)
    with pytest.raises(ConfigError, match=r"scale_range must satisfy 1 <= low <= high, got \(0.5, 1.0\)"):
        RandomScaleCrop(4, 4, scale_range=(0.5, 1.0))
    with pytest.raises(ConfigError, match="output size must be positive, got 0x4"):
        Resize(0, 4)
    with pytest.raises(ConfigError, match="flip probability must be in"):
        RandomHorizontalFlip(1.5)
    with pytest.raises(InvalidInputError, match="generator must be a torch.Generator, an int seed or None, got str"):
        RandomHorizontalFlip()(sample, "7")

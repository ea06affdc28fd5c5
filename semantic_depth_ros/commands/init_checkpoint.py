"""`semantic-depth init-checkpoint`: a randomly initialised (UNTRAINED) checkpoint, for tests and plumbing."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..files import ensure_writable_folder
from ..errors import ConfigError
from ..model.checkpoint import save_checkpoint
from ..model.config import available_presets, load_preset
from ..model.network import SemanticDepthNet
from ..model.resnet import load_imagenet_weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="resnet18",
                        help=f"preset name or YAML path (installed: {', '.join(available_presets())})")
    parser.add_argument("--out", required=True, help="checkpoint file to write (.pt)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random initialisation")
    parser.add_argument("--imagenet-weights", default=None,
                        help="torchvision ImageNet state dict to initialise the encoder with")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a file name such as model.pt")
    ensure_writable_folder(out.parent, f"--out {out}: folder {out.parent}")
    config = load_preset(args.preset)
    if args.imagenet_weights:
        config = config.replace(imagenet_weights=args.imagenet_weights)
    torch.manual_seed(args.seed)
    model = SemanticDepthNet(config)
    if config.imagenet_weights:
        load_imagenet_weights(model.encoder, config.imagenet_weights)
    save_checkpoint(args.out, model, config, trained=False, extra={"seed": args.seed})
    print(f"WARNING: {args.out} is an UNTRAINED checkpoint (random weights, preset '{config.name}'): "
          "its depth and labels are meaningless. Train one with `semantic-depth train` or `semantic-depth demo`.",
          file=sys.stderr)
    print(f"wrote {args.out}")
    return 0

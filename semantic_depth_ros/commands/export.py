"""`semantic-depth export`: a checkpoint -> an .onnx model (with metadata), then the automatic parity check.

Exits 1 with ``error: ...`` for a missing, corrupt or incompatible checkpoint, an unwritable output path or bad
heads, and exits 1 after printing the differences when ONNX Runtime and PyTorch disagree beyond the tolerance.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..files import ensure_writable_folder, write_atomic
from ..errors import ConfigError
from ..evaluation.onnx_parity import parity_check
from ..inference.onnx_runner import is_onnx_path
from ..model.checkpoint import load_checkpoint
from ..model.onnx_export import DEFAULT_OPSET, USER_HEADS, export_onnx


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="the .pt checkpoint to export")
    parser.add_argument("--out", required=True, help="the .onnx file to write (atomically)")
    parser.add_argument("--heads", default=None,
                        help=f"comma-separated subset of {','.join(USER_HEADS)} (default: all the model has)")
    parser.add_argument("--height", type=int, default=None, help="network input height (default: the checkpoint's)")
    parser.add_argument("--width", type=int, default=None, help="network input width (default: the checkpoint's)")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--fp16", action="store_true",
                        help="fp16 weights and arithmetic (the input and outputs stay float32)")
    parser.add_argument("--parity-frames", type=int, default=2,
                        help="generated frames of the parity check (default 2)")


def check_output_path(path: Path) -> None:
    """ConfigError unless ``path`` can be written: not a folder, its folder exists (or can be made) and is writable."""
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file name such as model.onnx")
    ensure_writable_folder(path.parent, f"--out {path}: folder {path.parent}")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.parity_frames < 1:
        raise ConfigError(f"--parity-frames {args.parity_frames} must be at least 1")
    if is_onnx_path(args.checkpoint):
        raise ConfigError(f"--checkpoint {args.checkpoint} is an ONNX model already: export takes the PyTorch "
                          "checkpoint (.pt) it came from")
    check_output_path(out)
    checkpoint = load_checkpoint(args.checkpoint)
    heads = None if args.heads is None else args.heads
    proto = export_onnx(checkpoint, heads=heads, height=args.height, width=args.width, opset=args.opset,
                        fp16=args.fp16)
    # The file gets its final name only after the parity check passes: a vehicle never finds an unchecked model.
    unchecked = out.with_name(f".{out.stem}.unchecked-{os.getpid()}.onnx")
    try:
        write_atomic(unchecked, proto.SerializeToString())
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot be written ({exc.strerror or exc})") from None
    try:
        size_mb = unchecked.stat().st_size / 2**20
        config = checkpoint.config
        print(f"exported {out.name} ({size_mb:.1f} MiB; model {config.name}, input "
              f"{args.width or config.input_width}x{args.height or config.input_height}, opset {args.opset}, "
              f"{'fp16' if args.fp16 else 'fp32'} weights{'' if checkpoint.trained else ', UNTRAINED weights'})")
        report = parity_check(checkpoint, unchecked, frames=args.parity_frames)
        for line in report.lines():
            print(line)
        if not report.passed:
            print(f"not written: {out} (the parity check failed)")
            return 1
        os.replace(unchecked, out)
        print(f"wrote {out}")
        return 0
    finally:
        unchecked.unlink(missing_ok=True)

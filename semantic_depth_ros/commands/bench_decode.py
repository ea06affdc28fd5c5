"""`semantic-depth bench-decode`: input decoding time per frame at real camera sizes, beside the network's time.

Times ``messages.decode.decode_raw_image`` (the node's, replay's and extraction's one decoder) followed by
``np.ascontiguousarray`` (the host work done before the estimator copies the frame) on random frames: a Blackfly S
2448x2048 ``bayer_rggb8`` (and ``bayer_rggb16``), a usb_cam 1920x1080 ``yuv422_yuy2`` and a KITTI 1242x375
``rgb8``; then ``DepthEstimator.estimate`` of a preset (random weights) on an image already at its input size, the
network's own time. The work does not depend on the pixel values.
"""

from __future__ import annotations

import argparse
from typing import Any

import cv2
import numpy as np

from ..data.fileio import write_json
from ..errors import ConfigError
from ..inference.benchmark import benchmark_model, time_calls
from ..messages.decode import decode_raw_image
from ..messages.decode_packed import encoding_layout
from ..model.config import available_presets, load_preset

# (encoding, width, height): what the cameras of the issue publish by default
CASES = (("bayer_rggb8", 2448, 2048), ("bayer_rggb16", 2448, 2048), ("yuv422_yuy2", 1920, 1080),
         ("rgb8", 1242, 375))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``semantic-depth bench-decode``."""
    parser.add_argument("--iters", type=int, default=30, help="timed decodes per case (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed decodes first (default 3)")
    parser.add_argument("--threads", type=int, default=0,
                        help="OpenCV threads for decoding (default 0: OpenCV's own choice; 1: one core)")
    parser.add_argument("--preset", default="resnet18",
                        help=f"network timed beside (installed: {', '.join(available_presets())})")
    parser.add_argument("--device", default="auto", help="network device: auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--precision", default="auto", help="network precision (default auto)")
    parser.add_argument("--network-iters", type=int, default=10, help="timed network frames (default 10)")
    parser.add_argument("--no-network", action="store_true", help="time decoding only")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")


def decode_case(encoding: str, width: int, height: int, *, warmup: int, iters: int) -> dict[str, Any]:
    """Decode time (``time_calls`` statistics, ms) of one random ``encoding`` frame of ``width`` x ``height``."""
    layout, _ = encoding_layout(encoding)
    step = width * layout.pixel_bytes
    data = np.random.default_rng(0).integers(0, 256, height * step, dtype=np.uint8).tobytes()

    def decode() -> np.ndarray:
        return np.ascontiguousarray(decode_raw_image(encoding, height, width, step, data))

    return {"encoding": encoding, "size": f"{width}x{height}", **time_calls(decode, warmup=warmup, iters=iters)}


def main(args: argparse.Namespace) -> int:
    """Print (and with ``--json`` write) the decode table and the network's time."""
    if args.iters < 1 or args.warmup < 0 or args.network_iters < 1 or args.threads < 0:
        raise ConfigError(f"--iters {args.iters}, --warmup {args.warmup}, --network-iters {args.network_iters}, "
                          f"--threads {args.threads}: need iters >= 1, warmup >= 0, network iters >= 1, threads >= 0")
    if args.threads:
        cv2.setNumThreads(args.threads)
    report: dict[str, Any] = {"opencv_threads": cv2.getNumThreads(), "decode": []}
    print(f"decode: decode_raw_image -> contiguous uint8 RGB, OpenCV {cv2.__version__} with {cv2.getNumThreads()} "
          "thread(s)")
    for encoding, width, height in CASES:
        row = decode_case(encoding, width, height, warmup=args.warmup, iters=args.iters)
        report["decode"].append(row)
        print(f"  {encoding:<13} {row['size']:>9}  p50 {row['p50_ms']:7.2f} ms  p95 {row['p95_ms']:7.2f} ms")
    if not args.no_network:
        config = load_preset(args.preset)
        stats = benchmark_model(config, device=args.device, precision=args.precision, height=config.input_height,
                                width=config.input_width, warmup=2, iters=args.network_iters)
        report["network"] = {"preset": args.preset, "size": f"{config.input_width}x{config.input_height}", **stats}
        print(f"network: {args.preset} at its input size {config.input_width}x{config.input_height} "
              f"({stats['runtime']}): p50 {stats['p50_ms']:.2f} ms  p95 {stats['p95_ms']:.2f} ms")
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0

"""`semantic-depth bench`: model latency per preset/precision/size and end-to-end node latency over DDS.

Prints two tables for this machine: (1) ``DepthEstimator.estimate`` latency p50/p95, throughput and peak memory
for each preset, precision and input size, on PyTorch and, beside it, on onnxruntime (the preset exported to
ONNX, the same pre- and post-processing) with the ratio of the PyTorch fp32 p50 to the onnxruntime p50; (2) the
node in its own process: image published -> outputs received latency (one frame in flight), and the sustained
output rate at fixed input rates (30 Hz) and at a saturating rate, with the node's overhead over the bare model
and its peak memory. Random weights: timing only.
With ``--cameras N`` the node part is the multi-camera comparison instead: one node batching N cameras against N
single-camera nodes, each camera at ``--size`` and ``--rate`` (``ros.bench_cameras``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..data.fileio import write_json
from ..devices import resolve_device, resolve_precision
from ..errors import ConfigError
from ..files import ensure_writable_folder
from ..inference.benchmark import benchmark_model, random_checkpoint
from ..inference.onnx_runner import is_onnx_path
from ..inference.runners import BACKENDS
from ..messages import OUTPUT_TOPICS
from ..pipeline import OutputPlan
from ..pipeline.stages import FRAME_PATH_PARTS
from ..model.checkpoint import save_checkpoint
from ..model.config import available_presets, load_preset

ALL_NODE_OUTPUTS = tuple(OUTPUT_TOPICS)  # the node's output keys


def parse_size(text: str) -> tuple[int, int]:
    """``"375x1242"`` -> ``(375, 1242)`` (height x width, pixels)."""
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"size '{text}' must be HEIGHTxWIDTH in pixels, e.g. 375x1242")
    return int(parts[0]), int(parts[1])


def parse_rate(text: str) -> float:
    """``"30"`` -> 30.0 Hz; ``"max"`` -> inf (saturating input)."""
    if text.strip().lower() in ("max", "inf", "saturating"):
        return math.inf
    try:
        rate = float(text)
    except ValueError:
        raise ConfigError(f"rate '{text}' must be a number of Hz or 'max'") from None
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"rate '{text}' must be a positive number of Hz or 'max'")
    return rate


def parse_outputs(text: str) -> tuple[str, ...]:
    """``"depth,points"`` or ``"all"`` -> node output keys."""
    if text.strip() == "all":
        return ALL_NODE_OUTPUTS
    keys = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in keys if k not in ALL_NODE_OUTPUTS]
    if not keys or unknown:
        raise ConfigError(f"node outputs '{text}' must be 'all' or a comma list of {', '.join(ALL_NODE_OUTPUTS)}")
    return keys


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--presets", default="resnet18,resnet18_fast,resnet50",
                        help=f"comma list of presets for the model table (installed: {', '.join(available_presets())})")
    parser.add_argument("--precisions", default=None,
                        help="comma list of fp32, fp16, bf16 (default: fp32 and what precision auto picks here: "
                             "fp16 on CUDA, bf16 on CPUs with native bf16)")
    parser.add_argument("--sizes", default="188x620,375x1242", help="comma list of camera image sizes HxW")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="network execution for the model table and the node (auto: cudagraphs on CUDA, "
                             "eager on the CPU)")
    parser.add_argument("--iters", type=int, default=30, help="timed frames per model configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed frames before them")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, model table and node process (1 is fastest on a busy small CPU)")
    parser.add_argument("--no-model", action="store_true", help="skip the model table")
    parser.add_argument("--no-onnx", action="store_true",
                        help="model table without the onnxruntime rows (default: each preset exported to ONNX too)")
    parser.add_argument("--no-node", action="store_true", help="skip the end-to-end node measurements")
    parser.add_argument("--node-preset", default="resnet18", help="preset the node runs (random weights)")
    parser.add_argument("--checkpoint", default=None, help="run the node on this checkpoint (.pt or .onnx) instead")
    parser.add_argument("--node-precision", default=None, help="node precision (default: what auto picks here)")
    parser.add_argument("--node-size", default="375x1242", help="camera image size HxW published to the node")
    parser.add_argument("--node-outputs", action="append", default=None,
                        help="output set to subscribe, e.g. depth,points or all (repeatable; default both)")
    parser.add_argument("--rates", default="30,max", help="comma list of open-loop input rates in Hz; 'max' = "
                                                          "saturating (3x the closed-loop rate, at least 60 Hz)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per node measurement")
    parser.add_argument("--input-qos", default="reliable", choices=("reliable", "best_effort"),
                        help="the node's input QoS reliability in the benchmark (the node's default: best_effort)")
    parser.add_argument("--cameras", type=int, default=0,
                        help="multi-camera mode: N cameras, one batched node against N single-camera nodes")
    parser.add_argument("--size", default="375x1242", help="multi-camera mode: every camera's image size HxW")
    parser.add_argument("--rate", type=float, default=30.0, help="multi-camera mode: input rate per camera, Hz")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS domain of the benchmark (default random)")
    parser.add_argument("--json", default=None, help="also write all figures to this JSON file")


def _precisions(args: argparse.Namespace) -> list[str]:
    if args.precisions:
        return _csv(args.precisions)
    automatic = resolve_precision("auto", resolve_device(args.device))
    return ["fp32"] if automatic == "fp32" else ["fp32", automatic]


def _print_row(row: dict[str, Any]) -> None:
    ratio = f"{row['vs_pytorch_fp32']:5.2f}x" if row.get("vs_pytorch_fp32") is not None else ""
    print(f"  {row['preset']:<14} {row['size']:<9} {row['runtime']:<42} p50 {row['p50_ms']:8.2f} ms  "
          f"p95 {row['p95_ms']:8.2f} ms  {row['fps']:7.1f} fps  peak {row['peak_mem_mb']:7.0f} MiB  {ratio}",
          flush=True)


def model_table(args: argparse.Namespace, precisions: list[str]) -> list[dict[str, Any]]:
    """One row per preset x size x (each precision on PyTorch, then onnxruntime unless ``--no-onnx``): p50/p95 ms,
    fps, peak memory, precision and runtime of ``estimate`` (all outputs); onnxruntime rows also carry
    ``vs_pytorch_fp32`` = PyTorch fp32 p50 / onnxruntime p50 (> 1: onnxruntime is faster)."""
    rows = []
    sizes = [parse_size(s) for s in _csv(args.sizes)]
    options = {"device": args.device, "warmup": args.warmup, "iters": args.iters, "num_threads": args.threads}
    onnx_skipped: str | None = "--no-onnx" if args.no_onnx else None
    for preset in _csv(args.presets):
        config = load_preset(preset)
        for height, width in sizes:
            size = {"preset": preset, "size": f"{height}x{width}"}
            torch_fp32 = None
            for precision in precisions:
                stats = benchmark_model(config, precision=precision, height=height, width=width,
                                        backend=args.backend, **options)
                rows.append({**size, "backend": args.backend, **stats})
                torch_fp32 = stats["p50_ms"] if precision == "fp32" else torch_fp32
                _print_row(rows[-1])
            if onnx_skipped is not None:
                continue
            try:
                stats = benchmark_model(config, precision="auto", height=height, width=width, backend="onnxruntime",
                                        **options)
            except ConfigError as exc:  # e.g. --device cuda without onnxruntime-gpu: the PyTorch rows still count
                onnx_skipped = str(exc)
                continue
            ratio = torch_fp32 / stats["p50_ms"] if torch_fp32 is not None else None
            rows.append({**size, "backend": "onnxruntime", **stats, "vs_pytorch_fp32": ratio})
            _print_row(rows[-1])
    if onnx_skipped is not None and not args.no_onnx:
        print(f"  (no onnxruntime rows: {onnx_skipped})")
    return rows


def _node_checkpoint(args: argparse.Namespace, folder: str) -> tuple[Path, Any]:
    """The node's checkpoint (``--checkpoint``, or ``--node-preset`` with random weights written to ``folder``) and
    what ``benchmark_model`` takes for the same model."""
    if args.checkpoint:
        return Path(args.checkpoint), Path(args.checkpoint)
    config = load_preset(args.node_preset)
    checkpoint = Path(folder) / f"{config.name}_random.pt"
    save_checkpoint(checkpoint, random_checkpoint(config).build_model(), config, trained=False,
                    extra={"purpose": "benchmark"})
    return checkpoint, config


def node_section(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    """End-to-end runs through the node, plus the bare-model baseline for the same configuration."""
    from ..ros.bench_node import run_node_benchmark  # rclpy only when the node part runs

    height, width = parse_size(args.node_size)
    output_sets = [parse_outputs(text) for text in (args.node_outputs or ["depth,points", "all"])]
    rates = [parse_rate(text) for text in _csv(args.rates)]
    with tempfile.TemporaryDirectory(prefix="semantic_depth_bench_") as folder:
        checkpoint, source = _node_checkpoint(args, folder)
        baselines = {}
        for outputs in output_sets:
            needed = OutputPlan(outputs).estimator_outputs()
            if needed not in baselines:
                baselines[needed] = benchmark_model(source, device=args.device, precision=precision, height=height,
                                                    width=width, warmup=args.warmup, iters=args.iters,
                                                    outputs=needed, backend=args.backend, num_threads=args.threads)
        result = run_node_benchmark(checkpoint, height=height, width=width, device=args.device, precision=precision,
                                    backend=args.backend, output_sets=output_sets, rates_hz=rates,
                                    duration_s=args.duration, domain_id=args.domain_id,
                                    num_threads=args.threads, input_reliability=args.input_qos)
    rows = []
    for run in result.runs:
        base = baselines[OutputPlan(run.outputs).estimator_outputs()]["p50_ms"]
        rows.append({**asdict(run), "model_p50_ms": base,
                     "overhead_pct": (run.p50_ms / base - 1.0) * 100.0 if run.mode.startswith("latency") else None})
    return {"preset": args.node_preset if not args.checkpoint else str(args.checkpoint), "precision": precision,
            "size": f"{height}x{width}", "device": str(resolve_device(args.device)), "backend": args.backend,
            "input_qos": args.input_qos,
            "runs": rows, "node_peak_rss_mb": result.node_peak_rss_mb, "node_peak_gpu_mb": result.node_peak_gpu_mb,
            "node_reported_latency_p50_ms": result.node_latency_p50_ms}


def print_node_section(section: dict[str, Any]) -> None:
    print(f"\nEnd to end through the node over DDS ({section['preset']}, {section['precision']}, "
          f"{section['size']} camera, node process on {section['device']}, backend {section['backend']}, "
          f"input QoS {section['input_qos']}):")
    print(f"  {'outputs':<22} {'mode':<30} {'sent':>6} {'served':>6} {'in Hz':>7} {'out Hz':>7} "
          f"{'p50 ms':>8} {'p95 ms':>8} {'model p50':>9} {'node adds':>9}")
    for run in section["runs"]:
        outputs = "all" if tuple(run["outputs"]) == ALL_NODE_OUTPUTS else ",".join(run["outputs"])
        overhead = "" if run["overhead_pct"] is None else f"{run['overhead_pct']:+8.1f}%"
        print(f"  {outputs:<22} {run['mode']:<30} {run['sent']:>6} {run['completed']:>6} {run['input_rate_hz']:>7.1f} "
              f"{run['output_rate_hz']:>7.1f} {run['p50_ms']:>8.2f} {run['p95_ms']:>8.2f} {run['model_p50_ms']:>9.2f} "
              f"{overhead:>9}")
    print_split(section["runs"])
    gpu = section["node_peak_gpu_mb"]
    print(f"  node process peak RSS {section['node_peak_rss_mb']:.0f} MiB"
          + (f", peak GPU memory {gpu:.0f} MiB" if gpu is not None else ""))


def print_split(runs: list[dict[str, Any]]) -> None:
    """Where a frame's time goes in the node (closed loop, p50 ms per part from its ``/diagnostics``) beside the
    end-to-end latency, what it published, and what a Python subscriber would pay to deserialize a frame."""
    rows = [run for run in runs if run.get("split_ms")]
    if not rows:
        return
    parts = [part for part in FRAME_PATH_PARTS if any(part in run["split_ms"] for run in rows)]
    parts[parts.index("outputs"):parts.index("outputs")] = sorted(
        {part for run in rows for part in run["split_ms"]} - set(FRAME_PATH_PARTS))  # the stages, before outputs
    print("\n  where the time goes (one frame in flight, p50 ms per part, from the node's /diagnostics):")
    print(f"  {'outputs':<22} " + " ".join(f"{part:>10}" for part in parts)
          + f" {'end to end':>10} {'MB/s out':>9} {'py deser':>9}")
    for run in rows:
        outputs = "all" if tuple(run["outputs"]) == ALL_NODE_OUTPUTS else ",".join(run["outputs"])
        rate, deser = run["published_mb_per_s"], run["deserialize_ms"]
        print(f"  {outputs:<22} " + " ".join(f"{run['split_ms'].get(part, math.nan):>10.2f}" for part in parts)
              + f" {run['p50_ms']:>10.2f} {math.nan if rate is None else rate:>9.1f}"
              f" {math.nan if deser is None else deser:>9.2f}")
    print("  (py deser: rclpy deserialize_message of one frame's outputs, what a Python subscriber pays on top; the "
          "benchmark's own subscriptions are raw)")


def cameras_section(args: argparse.Namespace, precision: str) -> dict[str, Any]:
    """One batched node against ``--cameras`` single-camera nodes (outputs: the first ``--node-outputs``, or all)."""
    from ..ros.bench_cameras import run_cameras_benchmark  # rclpy only when the node part runs

    height, width = parse_size(args.size)
    outputs = parse_outputs((args.node_outputs or ["all"])[0])
    with tempfile.TemporaryDirectory(prefix="semantic_depth_bench_") as folder:
        checkpoint, _ = _node_checkpoint(args, folder)
        configurations = run_cameras_benchmark(
            checkpoint, cameras=args.cameras, height=height, width=width, rate_hz=args.rate, outputs=outputs,
            duration_s=args.duration, device=args.device, precision=precision, backend=args.backend,
            domain_id=args.domain_id, num_threads=args.threads, input_reliability=args.input_qos)
    return {"preset": args.node_preset if not args.checkpoint else str(args.checkpoint), "precision": precision,
            "size": f"{height}x{width}", "rate_hz": args.rate, "cameras": args.cameras, "outputs": list(outputs),
            "device": str(resolve_device(args.device)), "backend": args.backend,
            "configurations": [asdict(c) for c in configurations]}


def print_cameras_section(section: dict[str, Any]) -> None:
    from ..ros.bench_cameras import CameraRun, CamerasConfiguration, configuration_rows

    configurations = [CamerasConfiguration(**{**c, "cameras": [CameraRun(**run) for run in c["cameras"]]})
                      for c in section["configurations"]]
    outputs = "all" if tuple(section["outputs"]) == ALL_NODE_OUTPUTS else ",".join(section["outputs"])
    print(f"\n{section['cameras']} cameras at {section['size']} and {section['rate_hz']:g} Hz each, outputs "
          f"{outputs} ({section['preset']}, {section['precision']}, {section['device']}, backend "
          f"{section['backend']}):")
    for line in configuration_rows(configurations):
        print(line)


def main(args: argparse.Namespace) -> int:
    if args.iters < 1 or args.warmup < 0 or args.duration <= 0:
        raise ConfigError(f"--iters {args.iters}, --warmup {args.warmup}, --duration {args.duration}: need iters >= 1, "
                          "warmup >= 0, duration > 0")
    if args.cameras < 0 or not args.rate > 0:
        raise ConfigError(f"--cameras {args.cameras}, --rate {args.rate}: need cameras >= 0 and a positive rate")
    if args.json:  # before minutes of measurements, not after them
        if Path(args.json).is_dir():
            raise ConfigError(f"--json {args.json} is a folder; give a file name such as bench.json")
        ensure_writable_folder(Path(args.json).parent, f"--json {args.json}: folder {Path(args.json).parent}")
    precisions = _precisions(args)
    device = resolve_device(args.device)
    report: dict[str, Any] = {"device": str(device), "backend": args.backend}
    print(f"semantic-depth bench on {device} (random weights; timing only)")
    if not args.no_model:
        print("\nModel latency: DepthEstimator.estimate, numpy image in -> depth, semantic, confidence on the host "
              "(x: PyTorch fp32 p50 / onnxruntime p50)")
        report["model"] = model_table(args, precisions)
    if not args.no_node:
        onnx_node = bool(args.checkpoint) and is_onnx_path(args.checkpoint)  # onnxruntime resolves its own auto
        precision = args.node_precision or ("auto" if onnx_node else resolve_precision("auto", device))
        try:
            section = cameras_section(args, precision) if args.cameras else node_section(args, precision)
        except ImportError as exc:
            print(f"\nskipping the node measurements: {exc} (install ROS 2 or the rclpy wheels)")
        else:
            if args.cameras:
                print_cameras_section(section)
                report["cameras"] = section
            else:
                print_node_section(section)
                report["node"] = section
    if args.json:
        write_json(args.json, report)
        print(f"\nwrote {args.json}")
    return 0

"""`semantic-depth fleet`: validate a model on many recorded drives on Ray, each drive replayed exactly as
`infer-bag` replays it (its options are infer-bag's), with the fleet report at the end."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import ConfigError
from ..fleet.drives import find_drives
from ..fleet.results import DONE, FAILED, SKIPPED
from ..fleet.runner import FleetSettings, import_ray, run_fleet
from .infer_bag import add_replay_arguments, bag_run_from


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``semantic-depth fleet``."""
    parser.add_argument("drives", nargs="+", metavar="DRIVE_OR_FOLDER",
                        help="bags (ROS 1 .bag, ROS 2 folders) and folders searched for bags")
    parser.add_argument("--out", required=True,
                        help="output folder: DIR/<drive>/ as infer-bag --out writes it, fleet_report.json/.md")
    add_replay_arguments(parser)
    group = parser.add_argument_group("fleet")
    group.add_argument("--ray-address", default=None,
                       help="join this Ray cluster (e.g. auto, or ray://head:10001); default: start a local Ray")
    group.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    group.add_argument("--cpus-per-drive", type=float, default=1.0,
                       help="CPUs each task reserves (and torch threads, unless --num-threads; default 1)")
    group.add_argument("--gpus-per-drive", type=float, default=None,
                       help="GPUs each task reserves, fractions allowed (default: 1 when the cluster has GPUs, "
                            "else 0 and the CPU)")
    group.add_argument("--max-retries", type=int, default=2,
                       help="times Ray reruns a task whose worker died (default 2); then the drive is failed")
    group.add_argument("--chunk-s", type=float, default=None,
                       help="split each drive into windows of S seconds run as separate tasks, then merged")
    group.add_argument("--chunk-warmup-s", type=float, default=1.0,
                       help="with --temporal or --scale-from-road, each chunk after the first starts this many "
                            "seconds early to warm its filter (not written; default 1)")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Run the fleet; exit 0 when no drive failed, 1 otherwise (the report says which and why)."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    if args.every != 1 and args.chunk_s is not None:
        raise ConfigError("--every with --chunk-s would restart the count in every chunk: leave one out")
    run = bag_run_from(args)
    settings = FleetSettings(out=Path(args.out), ray_address=args.ray_address, num_cpus=args.num_cpus,
                             cpus_per_drive=args.cpus_per_drive, gpus_per_drive=args.gpus_per_drive,
                             max_retries=args.max_retries, chunk_s=args.chunk_s, warmup_s=args.chunk_warmup_s,
                             progress=not args.no_progress)
    import_ray()
    if not Path(args.checkpoint).is_file():
        raise ConfigError(f"--checkpoint {args.checkpoint} is not a file")
    out = settings.out
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    drives = find_drives(args.drives, out)
    results = run_fleet(drives, run, settings)
    counts = {status: sum(r.status == status for r in results) for status in (DONE, SKIPPED, FAILED)}
    for result in results:
        if result.status == FAILED:
            print(f"failed {result.name}: {result.reason}")
    print(f"drives {len(results)}: " + ", ".join(f"{n} {status}" for status, n in counts.items())
          + f"; report {out / 'fleet_report.md'}")
    return 1 if counts[FAILED] else 0

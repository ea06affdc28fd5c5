#!/usr/bin/env python3
"""Regenerate test/data/rosdep_keys.txt from a checkout of github.com/ros/rosdistro (read-only; no network).

    python3 scripts/update_rosdep_keys.py /path/to/rosdistro

Writes every rosdep key of ``rosdep/base.yaml`` and ``rosdep/python.yaml`` and every released ROS package of the
supported distributions' ``distribution.yaml``, with the checkout's commit and date, so that
``test/test_package.py`` can check ``package.xml`` without a network.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

DISTRIBUTIONS = ("humble", "jazzy", "kilted")
ROSDEP_FILES = ("base", "python")
OUT = Path(__file__).resolve().parent.parent / "test" / "data" / "rosdep_keys.txt"


def released_packages(distribution_yaml: Path) -> set[str]:
    """Package names released in one distribution (a repository without a package list releases itself)."""
    data = yaml.safe_load(distribution_yaml.read_text())
    names: set[str] = set()
    for repository, entry in data["repositories"].items():
        release = entry.get("release")
        if release:
            names.update(release.get("packages", [repository]))
    return names


def main(root: Path) -> int:
    commit, date = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%H %cs"], check=True,
                                  capture_output=True, text=True).stdout.split()
    lines = [f"# rosdistro {commit} ({date}): rosdep keys and released packages",
             "# <name> <where: base.yaml | python.yaml | the distributions releasing it, comma-separated>"]
    for name in ROSDEP_FILES:
        keys = yaml.safe_load((root / "rosdep" / f"{name}.yaml").read_text())
        lines += [f"{key} {name}.yaml" for key in sorted(keys)]
    releases = {distribution: released_packages(root / distribution / "distribution.yaml")
                for distribution in DISTRIBUTIONS}
    for package in sorted(set().union(*releases.values())):
        lines.append(f"{package} {','.join(d for d in DISTRIBUTIONS if package in releases[d])}")
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines) - 2} names to {OUT}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1])))

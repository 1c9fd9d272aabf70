#!/usr/bin/env python3
"""What the weights status of `unetpp models list` (engine/weights_status.py) costs: the
command run in two source trees, interleaved (order alternated per round), both byte-compiled
once into one PYTHONPYCACHEPREFIX so that neither pays for compiling. Prints the median and
minimum seconds of each tree.

Usage: python bench/models_list.py BEFORE_TREE AFTER_TREE [--rounds N]
(a tree is a checkout's root; e.g. /work/main and this one)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs=2, type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = tempfile.mkdtemp(prefix="models-list-pyc-")
    command = [sys.executable, "-m", "UNetPlusPlusLib.cli", "models", "list"]
    trees = [str(t.resolve() / "UNetPlusPlus") for t in args.trees]
    times: dict[str, list[float]] = {tree: [] for tree in trees}
    for tree in trees:  # warm-up: writes the .pyc files
        subprocess.run(command, env=dict(env, PYTHONPATH=tree), stdout=subprocess.DEVNULL)
    for round_ in range(args.rounds):
        for tree in trees if round_ % 2 == 0 else trees[::-1]:
            started = time.perf_counter()
            subprocess.run(
                command, env=dict(env, PYTHONPATH=tree), stdout=subprocess.DEVNULL, check=True
            )
            times[tree].append(time.perf_counter() - started)
    for tree, values in times.items():
        print(
            f"{tree}: median {statistics.median(values):.3f} s, min {min(values):.3f} s "
            f"({len(values)} runs)"
        )


if __name__ == "__main__":
    main()

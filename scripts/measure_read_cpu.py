#!/usr/bin/env python
"""CPU seconds of ``read_volume`` on image files, two code trees interleaved, fresh processes.

Each measurement is one new process that imports the engine of one tree (not timed) and times
``read_volume([FILE])`` with ``time.process_time`` (every thread); rounds alternate which tree
goes first. Prints per (file, tree) the median, the runs, the median of the paired ratios
(tree / first tree) and the load average, and checks that both trees read identical voxels
and geometry (a hash). Usage::

    python scripts/measure_read_cpu.py ROUNDS before=/tmp/before/UNetPlusPlus \\
        after=$PWD/UNetPlusPlus FILE [FILE ...]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import hashlib, json, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
from UNetPlusPlusLib.engine.image_read import read_volume
start = time.process_time()
volume = read_volume([sys.argv[2]])
cpu = time.process_time() - start
digest = hashlib.blake2b(volume.array.tobytes(), digest_size=8)
digest.update(repr((volume.spacing, volume.origin, volume.direction.tolist())).encode())
print(json.dumps({"cpu": cpu, "hash": digest.hexdigest()}))
"""


def main() -> None:
    rounds = int(sys.argv[1])
    trees = [arg.split("=", 1) for arg in sys.argv[2:] if "=" in arg]
    files = [arg for arg in sys.argv[2:] if "=" not in arg]
    runs: dict = {(f, name): [] for f in files for name, _ in trees}
    hashes: dict = {f: set() for f in files}
    loads = []
    for r in range(rounds):
        order = trees if r % 2 == 0 else trees[::-1]
        for path in files:
            for name, code in order:
                out = subprocess.run(
                    [sys.executable, "-c", _CHILD, code, path],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                row = json.loads(out.stdout.strip().splitlines()[-1])
                runs[(path, name)].append(row["cpu"])
                hashes[path].add(row["hash"])
        loads.append(os.getloadavg()[0])
    print(f"{rounds} rounds; 1-min load average per round: {[round(x, 1) for x in loads]}")
    first = trees[0][0]
    for path in files:
        same = "identical voxels and geometry" if len(hashes[path]) == 1 else "DIFFERENT READS"
        print(f"{os.path.basename(path)}: {same}")
        for name, _ in trees:
            values = runs[(path, name)]
            ratio = statistics.median(a / b for a, b in zip(values, runs[(path, first)]))
            print(
                f"  {name}: median {statistics.median(values):.3f} CPU-s, paired ratio to "
                f"{first} {ratio:.2f}; runs " + " ".join(f"{v:.3f}" for v in values)
            )


if __name__ == "__main__":
    main()

"""Paired, interleaved: streamed_checks.check_files with and without the front-back check
(ap_check, the `--roi` path), on one CT file; wall seconds and tracemalloc peak (numpy buffers
are traced), with the load average (docs/INPUT_CHECKS_CT.md).

    PYTHONPATH=UNetPlusPlus python scripts/measure_streamed_ap.py CT.nii.gz [ROUNDS]
"""

import os
import sys
import time
import tracemalloc
from pathlib import Path

from UNetPlusPlusLib.engine import streamed_checks
from UNetPlusPlusLib.engine.orientation_check import check_orientation_strided
from UNetPlusPlusLib.engine.registry import find_model

path = Path(sys.argv[1])
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
manifest = find_model("liver")


def ap(ct, grid):
    return check_orientation_strided(manifest, ct, grid)


rows = {"without": [], "with": []}
for r in range(rounds):
    order = ("without", "with") if r % 2 == 0 else ("with", "without")
    for name in order:
        tracemalloc.start()
        t = time.perf_counter()
        streamed_checks.check_files([path], ["CT"], ["CT"], ap_check=ap if name == "with" else None)
        seconds = time.perf_counter() - t
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows[name].append((seconds, peak))
for name, values in rows.items():
    s = sorted(v[0] for v in values)
    m = max(v[1] for v in values)
    print(
        f"{name:8s} median {s[len(s) // 2]:.3f} s (min {s[0]:.3f}, max {s[-1]:.3f}); "
        f"traced peak {m / 1e6:.1f} MB"
    )
print(
    "paired with/without:", [round(a[0] / b[0], 3) for a, b in zip(rows["with"], rows["without"])]
)
print("load average", os.getloadavg())

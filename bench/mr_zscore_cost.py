#!/usr/bin/env python3
"""What setting absurd voxels apart (engine/mr_robust.py) costs the MR z-score: the four channels
of a shared BraTS case normalised by this tree's ``normalize_channel`` and by the former
z-score (every non-zero voxel's mean and std), interleaved in one process (order alternated
per round). Prints the median seconds of each, the median of the rounds' ratios, the load.

Usage: python bench/mr_zscore_cost.py [--case FOLDER] [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
from benchlib.mr_channels import CASE, case_channels
from UNetPlusPlusLib.engine.normalize import normalize_channel


def former(array: np.ndarray) -> np.ndarray:
    """The z-score before mr_robust.py (main 0b29d04)."""
    mask = array != 0
    out = np.zeros_like(array, dtype=np.float32)
    values = array[mask].astype(np.float64)
    mean, std = float(values.mean()), float(values.std())
    scale = 1.0 / std if std > 1e-8 * max(1.0, abs(mean)) else 0.0
    out[mask] = ((values - mean) * scale).astype(np.float32)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", type=Path, default=CASE)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    arrays = case_channels(args.case)
    modes = {
        "former": lambda: [former(a) for a in arrays],
        "ours": lambda: [normalize_channel(a, {"kind": "mr"}) for a in arrays],
    }
    times: dict[str, list[float]] = {name: [] for name in modes}
    for round_ in range(args.rounds):
        for name in list(modes) if round_ % 2 == 0 else list(modes)[::-1]:
            started = time.perf_counter()
            modes[name]()
            times[name].append(time.perf_counter() - started)
    ratios = [o / f for o, f in zip(times["ours"], times["former"])]
    for name, values in times.items():
        print(f"{name}: median {statistics.median(values):.3f} s ({len(arrays)} channels)")
    print(f"ours / former: median ratio {statistics.median(ratios):.3f} over {args.rounds} rounds")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

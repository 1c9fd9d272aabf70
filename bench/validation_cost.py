"""CPU seconds of one training validation per validated case, two source trees interleaved.

The case is the nodule crop a tester saw validated slowly (LIDC-IDRI-0057_R_1, 65x61x30 at
0.73x0.73x1.25 mm: 30x64x68 voxels on the lidc-vois grid 0.7x0.7x1.25 mm, 12 tiles of 48x48x16),
synthetic here (a bright ball in noise) since the cost depends on shapes, not values; the
network is lidc-vois's (features 8 16 32 64 128 8), seeded random weights. Each run is a fresh
process that times ONE ``evaluate_depths`` call as the trainer makes it (cold: the first
validation of a run), ``timed=True`` (the last validation: each depth on its own) or ``False``
(the others: every depth from one pass), with ``time.process_time`` around the call only.
Runs alternate between the trees (A B A B ...); Dice must agree exactly.

    nice -n 19 python bench/validation_cost.py --before /tmp/before --after . [--pairs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[2]))
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training.preprocess import PreprocessedCase, foreground_points
from UNetPlusPlusLib.training.validation import evaluate_depths
shape = (30, 64, 68)
z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
labels = (((z - 15) / 6.0) ** 2 + ((y - 30) / 9.0) ** 2 + ((x - 36) / 9.0) ** 2 <= 1)
labels = labels.astype(np.uint8)
rng = np.random.default_rng(0)
image = (labels * 1.5 + rng.normal(0, 0.5, shape)).astype(np.float32)[None]
case = PreprocessedCase("c", "c", image, labels, foreground_points(labels, 0), np.zeros(1))
torch.manual_seed(0)
model = UNetPlusPlus3D(1, 2, (8, 16, 32, 64, 128, 8))
timed = sys.argv[1] == "timed"
started = time.process_time()
results = evaluate_depths(model, [case], ["nodule"], (16, 48, 48), 0.25, torch.device("cpu"),
                          timed=timed)
print(json.dumps({"cpu_s": time.process_time() - started,
                  "dice": {k: v["mean_dice"] for k, v in results.items()}}))
"""


def _run(root: Path, mode: str, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root / "UNetPlusPlus"))
    out = subprocess.run(
        [sys.executable, "-c", WORKER, mode, str(threads)],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="source tree A")
    parser.add_argument("--after", type=Path, required=True, help="source tree B")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print(f"load average at start {os.getloadavg()}")
    for mode in ("timed", "one-pass"):
        cpu: dict = {"before": [], "after": []}
        dice: dict = {}
        for _ in range(args.pairs):
            for name in ("before", "after"):
                result = _run(getattr(args, name), mode, args.threads)
                cpu[name].append(result["cpu_s"])
                dice.setdefault(name, result["dice"])
                if result["dice"] != dice[name]:
                    raise SystemExit(f"{name}: Dice changed between runs: {result['dice']}")
        same = "identical" if dice["before"] == dice["after"] else f"DIFFER {dice}"
        ratios = [a / b for a, b in zip(cpu["after"], cpu["before"])]
        print(
            f"{mode}: CPU s per validated case (1 case, {args.threads} thread(s), "
            f"{args.pairs} interleaved pairs): before median "
            f"{statistics.median(cpu['before']):.2f} {[round(t, 2) for t in cpu['before']]}; "
            f"after median {statistics.median(cpu['after']):.2f} "
            f"{[round(t, 2) for t in cpu['after']]}; after/before median "
            f"{statistics.median(ratios):.2f}; Dice {same} {dice['after']}"
        )
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    main()

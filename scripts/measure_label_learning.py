#!/usr/bin/env python
"""CPU seconds of learning a labelmap folder's label values (no ``--labels``), two code trees
interleaved, fresh processes.

Each measurement is one new process that imports the engine of one tree (not timed) and times,
with ``time.process_time``, ``describe_slicer_export(FOLDER)`` and then
``check_dataset(dataset, channel_check=False)`` (which reads every case once). Rounds
alternate which tree goes first. Prints per tree the median of each stage, the runs, the
median of the paired total ratios (tree / first tree) and the load average, and checks that
both trees learn the same labels. ``--make FOLDER CASES SIZE`` first writes a synthetic folder
(``<case>.nrrd`` int16 + ``<case>-label.nrrd`` uint8 0/1/2, gzip-compressed as Slicer saves).
Usage::

    python scripts/measure_label_learning.py --make /tmp/lm20 20 128
    python scripts/measure_label_learning.py ROUNDS FOLDER before=/tmp/before/UNetPlusPlus \\
        after=$PWD/UNetPlusPlus
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, sys, time, warnings
sys.path.insert(0, sys.argv[1])
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export
warnings.simplefilter("ignore")
start = time.process_time()
dataset = describe_slicer_export(sys.argv[2])
described = time.process_time()
check_dataset(dataset, channel_check=False)
checked = time.process_time()
print(json.dumps({"describe": described - start, "check": checked - described,
                  "labels": dataset.label_names}))
"""


def make(folder: Path, cases: int, size: int) -> None:
    """``cases`` synthetic cases of ``size``^3 voxels: a ball of value 1 with one of 2 inside."""
    import numpy as np
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    z, y, x = np.ogrid[:size, :size, :size]
    rng = np.random.default_rng(0)
    for i in range(cases):
        c = rng.uniform(0.35 * size, 0.65 * size, 3)
        r2 = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2
        labels = np.where(r2 <= (0.2 * size) ** 2, 1, 0).astype(np.uint8)
        labels[r2 <= (0.08 * size) ** 2] = 2
        ct = rng.normal(-800, 20, labels.shape).astype(np.int16)
        ct[labels > 0] = 60
        for array, name in ((ct, f"case{i:02d}.nrrd"), (labels, f"case{i:02d}-label.nrrd")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((1.0, 1.0, 1.0))
            sitk.WriteImage(image, str(folder / name), True)


def main() -> None:
    if sys.argv[1] == "--make":
        make(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return
    rounds, folder = int(sys.argv[1]), sys.argv[2]
    trees = [arg.split("=", 1) for arg in sys.argv[3:]]
    runs: dict = {name: [] for name, _ in trees}
    labels = set()
    loads = []
    for r in range(rounds):
        for name, code in trees if r % 2 == 0 else trees[::-1]:
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, code, folder],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(out.stdout.strip().splitlines()[-1])
            runs[name].append(row)
            labels.add(tuple(row["labels"]))
        loads.append(os.getloadavg()[0])
    print(f"{rounds} rounds; 1-min load average per round: {[round(x, 1) for x in loads]}")
    print("labels learnt:", "the same" if len(labels) == 1 else "DIFFERENT", sorted(labels))
    first = trees[0][0]
    for name, _ in trees:
        rows = runs[name]
        totals = [row["describe"] + row["check"] for row in rows]
        ratios = [
            t / (a["describe"] + a["check"]) for t, a in zip(totals, runs[first], strict=True)
        ]
        print(
            f"{name}: describe {statistics.median(r['describe'] for r in rows):.3f} s, "
            f"check {statistics.median(r['check'] for r in rows):.3f} s, total "
            f"{statistics.median(totals):.3f} s (runs {[round(t, 3) for t in totals]}); "
            f"paired ratio to {first} {statistics.median(ratios):.3f}"
        )


if __name__ == "__main__":
    main()

"""Seconds of the liver anatomy check (engine/anatomy_check.py) on a shared CT, without and with
the lung and body masks kept in a warm memo (what `unetpp serve` keeps per model and volume).
Interleaved rounds; the segment is a fixed box where a liver lies.

    PYTHONPATH=UNetPlusPlus python scripts/measure_anatomy_memo.py [rounds]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.anatomy_check import check_model_result
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.registry import find_model

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "liver"
CTS = ["totalsegmentator-examples/example_ct.nii.gz", "totalsegmentator-dataset-s0009/ct.nii.gz"]


def main(rounds: int = 10) -> None:
    manifest = find_model("liver")
    print(f"load average {os.getloadavg()[0]:.2f}, {rounds} interleaved rounds")
    for name in CTS:
        volume = read_volume([DATA / name], ["CT"])
        labels = np.zeros(volume.shape_zyx, np.uint8)
        z, y, x = labels.shape
        labels[z // 3 : z // 2, y // 3 : y // 2, x // 4 : x // 2] = 1
        memo: dict = {}
        check_model_result(manifest, volume, labels, volume.grid, memo=memo)  # fills the memo
        times: dict = {"without memo": [], "warm memo": []}
        for _ in range(rounds):
            for what, kept in (("without memo", None), ("warm memo", memo)):
                started = time.perf_counter()
                check_model_result(manifest, volume, labels, volume.grid, memo=kept)
                times[what].append(time.perf_counter() - started)
        for what, seconds in times.items():
            median = sorted(seconds)[len(seconds) // 2]
            print(f"{name} {volume.shape_zyx} {what}: best {min(seconds):.3f} s, "
                  f"median {median:.3f} s")  # fmt: skip


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)

#!/usr/bin/env python3
"""What the v2 image-content prints (mirror state and in-plane patch sketch, case_content.py)
cost against reading the case and against the v1 prints they replace.

Cases: a 512 x 512 x 300 CT (LiTS volumes 0 and 1 of ../shared/data, 65 slices each, stacked
and reversed to 300 slices, written once as a gzipped NIfTI under --tmp), LiTS volume 0
(512 x 512 x 65) and a BraTS 2018 case (4 x 240 x 240 x 155). Per round, interleaved and
paired: read_volume of the case, then its v1 print (``legacy=True``) and its v2 print, in
alternating order. Prints the medians, the paired median of v2 - v1 (what this change adds)
and its share of the read, and the load average before and after. ``--winnow`` also times
hashing every 9 x 9 window of every slice and the minimum of each 16 x 16 window of those
hashes (2D winnowing's own work, numpy, no flip invariance), once per case.

Usage: PYTHONPATH=UNetPlusPlus python scripts/content_print_cost.py [--rounds N] [--winnow]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.image_read import read_volume  # noqa: E402
from UNetPlusPlusLib.training.case_content import volume_print  # noqa: E402


def ct300(data: Path, folder: Path) -> Path:
    """The 512 x 512 x 300 CT built from LiTS volumes 0 and 1 (written once)."""
    path = folder / "ct300.nii.gz"
    if not path.exists():
        lits = data / "liver" / "lits-partial"
        first = sitk.ReadImage(str(lits / "liver_0_ct.nii.gz"))
        a = sitk.GetArrayFromImage(first)
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(lits / "liver_1_ct.nii.gz")))
        image = sitk.GetImageFromArray(np.concatenate([a, b, a[::-1], b[::-1], a[:40]]))
        image.SetSpacing(first.GetSpacing())
        image.SetDirection(first.GetDirection())
        folder.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(path), True)
    return path


def winnow_seconds(array: np.ndarray, k: int = 9, w: int = 16) -> float:
    """Seconds to hash every k x k window of every slice (a polynomial hash mod 2^64 by prefix
    sums along y and x) and take the minimum of each w x w window of hashes."""
    start = time.perf_counter()
    base = np.uint64(0x9E3779B97F4A7C15)
    for plane in array.reshape(-1, *array.shape[-2:]):
        bits = plane.view(np.uint32).astype(np.uint64)
        for axis in (0, 1):
            n = bits.shape[axis]
            powers = np.cumprod(np.full(n, base, np.uint64)).reshape(
                (-1, 1) if axis == 0 else (1, -1)
            )
            prefix = np.cumsum(bits * powers, axis=axis)
            upper = prefix[k - 1 :] if axis == 0 else prefix[:, k - 1 :]
            lower = prefix[: n - k + 1] if axis == 0 else prefix[:, : n - k + 1]
            bits = upper - lower  # window sums, scaled by a power (enough for the cost)
        for axis in (0, 1):
            step = 1
            while step < w:
                shifted = bits[step:] if axis == 0 else bits[:, step:]
                head = bits[: len(bits) - step] if axis == 0 else bits[:, : bits.shape[1] - step]
                bits = np.minimum(head, shifted)
                step *= 2
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--tmp", type=Path, default=Path("/tmp/unetpp-content-cost"))
    parser.add_argument("--winnow", action="store_true")
    args = parser.parse_args(argv)
    brats = args.data / "brain-tumor" / "brats2018" / "Brats18_2013_11_1"
    cases = {
        "CT 512x512x300": [ct300(args.data, args.tmp)],
        "LiTS 0 512x512x65": [args.data / "liver" / "lits-partial" / "liver_0_ct.nii.gz"],
        "BraTS 4x240x240x155": [
            brats / f"Brats18_2013_11_1_{s}.nii.gz" for s in ("flair", "t1", "t1ce", "t2")
        ],
    }
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for label, files in cases.items():
        names = [f"c{i}" for i in range(len(files))]
        times: dict[str, list[float]] = {"read": [], "v1": [], "v2": [], "added": []}
        for round_ in range(args.rounds):
            start = time.perf_counter()
            volume = read_volume(files, names)
            times["read"].append(time.perf_counter() - start)
            seconds = {}
            for legacy in (False, True) if round_ % 2 else (True, False):
                start = time.perf_counter()
                volume_print(volume, legacy=legacy)
                seconds["v1" if legacy else "v2"] = time.perf_counter() - start
            for key, value in seconds.items():
                times[key].append(value)
            times["added"].append(seconds["v2"] - seconds["v1"])
        median = {key: statistics.median(values) for key, values in times.items()}
        line = (
            f"{label}: read {median['read']:.2f} s, v1 prints {median['v1']:.2f} s, v2 prints "
            f"{median['v2']:.2f} s, added (paired) {median['added']:.2f} s = "
            f"{100 * median['added'] / median['read']:.0f} % of the read"
        )
        if args.winnow:
            line += f"; 2D winnowing's hashing alone {winnow_seconds(volume.array):.2f} s"
        print(line + f" (median of {args.rounds})")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

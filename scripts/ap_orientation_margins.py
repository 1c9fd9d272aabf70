"""Margins of the front-back orientation check (engine/orientation_check.py) on the shared CTs.

Every CT of ``../shared/data`` as given (false alarms: there must be none), and two AP-flipped
copies of each: the array flipped along its front-back axis with the direction unchanged
("array"), and the direction's front-back column negated with the array unchanged
("header"). Prints one row per volume (median offset / share of slices with the bone in
front, then the slices and bone that decided; LIDC crops only with clear evidence) and the
counts; ``--every N`` takes every Nth LIDC crop.

    PYTHONPATH=UNetPlusPlus python scripts/ap_orientation_margins.py ../shared/data [--every 1]
    PYTHONPATH=UNetPlusPlus python scripts/ap_orientation_margins.py ../shared/data --time 5
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.orientation_check import measure_ap
from UNetPlusPlusLib.engine.volume import Grid, resample_volume


def ct_paths(data: Path, every: int) -> list[Path]:
    """Every CT of the shared data: liver CTs, chest crops, LIDC DICOM slabs and crops."""
    liver = data / "liver"
    examples = liver / "totalsegmentator-examples"
    paths = [examples / f"{n}.nii.gz" for n in ("example_ct", "example_ct_sm")]
    paths += [examples / "example_ct_dicom"]
    paths += [examples / f"{n}.nii.gz" for n in ("pulm_ct_cropped", "aorta_ct_cropped")]
    paths += [liver / "totalsegmentator-dataset-s0009" / "ct.nii.gz"]
    paths += sorted((liver / "lits-partial").glob("*_ct.nii.gz"))
    paths += [liver / "dcmqi-liver" / "ct-3slice"]
    slabs = data / "lung-nodule" / "lidc-dicom-slabs"
    paths += sorted(p for p in slabs.iterdir() if p.is_dir())
    crops = sorted((data / "lung-nodule" / "lidc-vois" / "image").glob("*.nii.gz"))
    return paths + crops[::every]


def ap_flipped(volume, how: str):
    """``volume`` flipped front-back: its array along the axis nearest LPS y, or that axis's
    direction column negated."""
    axis_xyz = int(np.argmax(np.abs(volume.direction[1])))  # array axis pointing most along y
    if how == "array":
        return volume.with_array(np.flip(volume.array, axis=3 - axis_xyz).copy())
    flipped = volume.with_array(volume.array)
    flipped.direction = volume.direction.copy()
    flipped.direction[:, axis_xyz] *= -1.0
    return flipped


def timing(data: Path, runs: int) -> None:
    """Seconds of the check on example_ct resampled to 512 x 512 x 300 voxels."""
    example = read_volume([data / "liver/totalsegmentator-examples/example_ct.nii.gz"], ["CT"])
    size = (512, 512, 300)
    spacing = tuple(np.asarray(example.grid.size_xyz) * np.asarray(example.spacing) / size)
    big = resample_volume(example, Grid(size, spacing, example.origin, example.direction),
                          "linear", -1024.0)  # fmt: skip
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        found = measure_ap(big)
        seconds.append(time.perf_counter() - started)
    times = ", ".join(f"{s:.2f}" for s in seconds)
    print(f"512 x 512 x 300: offset {found.offset:+.2f}; seconds {times}", end="")
    print(f" (median {np.median(seconds):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", type=Path)
    parser.add_argument("--every", type=int, default=1)
    parser.add_argument("--time", type=int, default=0, help="time N runs on a 512^2 x 300 CT")
    args = parser.parse_args()
    if args.time:
        timing(args.data, args.time)
        return
    counts = {"as given": [0, 0], "array": [0, 0], "header": [0, 0]}
    decided = {"as given": 0, "array": 0, "header": 0}
    slowest = 0.0
    for path in ct_paths(args.data, args.every):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            volume = read_volume([path], ("CT",))
        row = []
        for how in ("as given", "array", "header"):
            case = volume if how == "as given" else ap_flipped(volume, how)
            started = time.perf_counter()
            found = measure_ap(case)
            slowest = max(slowest, time.perf_counter() - started)
            counts[how][0] += 1
            counts[how][1] += int(found.flipped)
            decided[how] += int(found.offset is not None)
            offset = "-" if found.offset is None else f"{found.offset:+.2f}/{found.front_share:.2f}"
            row.append(f"{how}: {offset} ({found.slices} sl, {found.bone_ml:.0f} ml)"
                       + (" FLIPPED" if found.flipped else ""))  # fmt: skip
        if "lidc-vois" not in str(path) or any(": -" not in r for r in row):
            print(f"{path.name}: " + "; ".join(row), flush=True)
    for how, (total, flagged) in counts.items():
        print(f"{how}: {flagged} of {total} warned; {decided[how]} with clear evidence")
    print(f"slowest check: {slowest:.2f} s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""What the output stamp (UNetPlusPlusLib/output_stamp.py) costs on a 512x512x300 result.

A liver-like label volume (an ellipsoid, uint8, 512x512x300 at 0.7x0.7x1.5 mm) and its
two-class probabilities (float32, a smooth ramp at the boundary). Per round, interleaved, each
output type: the writer alone (what `unetpp segment` did before), stamping the written file
(stamp_file) and checking an existing file before a run (stamp_state: one read + sha256).
Prints the median seconds and the file size of each, and, for the .seg.nrrd, what checking
would cost if the stamp hashed the decoded voxels instead of the file's bytes.

Usage: python bench/output_stamp.py [--rounds N] [--no-probabilities] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "UNetPlusPlus"))

from UNetPlusPlusLib.engine.manifest import LabelSpec  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume, write_labelmap  # noqa: E402
from UNetPlusPlusLib.output_stamp import stamp_file, stamp_state  # noqa: E402
from UNetPlusPlusLib.segfile import read_seg_nrrd, write_seg_nrrd  # noqa: E402

SHAPE = (300, 512, 512)  # z, y, x
SPACING = (0.7, 0.7, 1.5)  # x, y, z mm


def _volumes():
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    r = np.sqrt(((z - 150) / 90.0) ** 2 + ((y - 240) / 150.0) ** 2 + ((x - 300) / 170.0) ** 2)
    labels = (r < 1.0).astype(np.uint8)
    liver = np.clip((1.1 - r) * 5.0, 0.0, 1.0).astype(np.float32)
    spec = LabelSpec(value=1, name="liver", color=(0.8, 0.3, 0.2))
    volume = LabelVolume(labels, SPACING, (0.0, 0.0, 0.0), np.eye(3), [spec])
    return volume, np.stack([1.0 - liver, liver])


def _write_probabilities(probabilities: np.ndarray, path: Path) -> None:
    import SimpleITK as sitk

    channels = []
    for component in probabilities:
        image = sitk.GetImageFromArray(component)
        image.SetSpacing(SPACING)
        channels.append(image)
    sitk.WriteImage(sitk.Compose(channels), str(path), True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-probabilities", action="store_true")
    parser.add_argument("--dir", help="folder for the files (default: a temporary folder)")
    args = parser.parse_args()
    labels, probabilities = _volumes()
    writers = {
        "seg.nrrd": lambda p: write_seg_nrrd(labels, p),
        "label .nii.gz": lambda p: write_labelmap(labels, p),
        "label .nii": lambda p: write_labelmap(labels, p),
        "label .nrrd": lambda p: write_labelmap(labels, p),
    }
    if not args.no_probabilities:
        writers["probabilities .nii.gz"] = lambda p: _write_probabilities(probabilities, p)
    suffix = {"seg.nrrd": ".seg.nrrd", "label .nii.gz": ".nii.gz", "label .nii": ".nii"}
    suffix.update({"label .nrrd": ".nrrd", "probabilities .nii.gz": ".nii.gz"})
    times: dict = {name: {"write": [], "stamp": [], "check": []} for name in writers}
    sizes, decoded = {}, []
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for _ in range(args.rounds):
            for number, (name, write) in enumerate(writers.items()):
                path = Path(folder) / f"out{number}{suffix[name]}"
                start = time.perf_counter()
                write(path)
                times[name]["write"].append(time.perf_counter() - start)
                start = time.perf_counter()
                stamp_file(path)
                times[name]["stamp"].append(time.perf_counter() - start)
                start = time.perf_counter()
                assert stamp_state(path) == "valid"
                times[name]["check"].append(time.perf_counter() - start)
                sizes[name] = path.stat().st_size
                if name == "seg.nrrd":  # the rule not taken: decode the voxels, hash them
                    start = time.perf_counter()
                    hashlib.sha256(read_seg_nrrd(path).array.tobytes()).hexdigest()
                    decoded.append(time.perf_counter() - start)
                path.unlink()
    print(f"{SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]}, median of {args.rounds} interleaved rounds, s")
    print(f"{'output':24s} {'size MB':>8s} {'write':>7s} {'stamp':>7s} {'check':>7s}")
    for name, row in times.items():
        med = {k: statistics.median(v) for k, v in row.items()}
        print(
            f"{name:24s} {sizes[name] / 1e6:8.2f} {med['write']:7.3f} {med['stamp']:7.3f} "
            f"{med['check']:7.3f}"
        )
    print(f"seg.nrrd, decoding + sha256 of the voxels instead: {statistics.median(decoded):.3f}")


if __name__ == "__main__":
    main()

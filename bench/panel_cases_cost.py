#!/usr/bin/env python3
"""What the panel's "Cases" check costs Slicer's main thread (adapter/training_cases.py).

The check is the trainer's own case discovery without the one step of it that reads voxels:
training from scratch, ``describe_slicer_export`` guesses CT or MR from the voxels of up to 5
cases' images. Timed, each in a fresh process, alternating in each round:

- ``panel``: ``training_cases.check_cases(folder)`` (names, NRRD headers, colour tables);
- ``trainer``: ``describe_slicer_export(folder)`` (modality guessed) + ``find_cases``, the
  discovery of ``unetpp train folder`` before its voxel checks.

Folders: ``--folder`` (repeatable; default /work/shared/data/liver/lits-partial, the one folder
of /work/shared/data that ``unetpp train`` reads as Slicer exports) and ``--synthetic N``: N
exported cases (a 4x5x6 ``.nrrd`` image with a one-segment ``.seg.nrrd`` beside it), a big
folder's listing and header reads. Prints the median wall and CPU seconds per step and folder,
and the load average; also the CPU seconds of the call itself, after the imports (numpy,
SimpleITK, slicerio are loaded in Slicer already), and of the panel's next call with no file
changed. Each ``--code`` tree (e.g. a checkout of main and this one) runs each step
once per round, in alternating order. Times are of the whole child process, imports included.

Usage: python bench/panel_cases_cost.py [--folder DIR ...] [--synthetic 200] [--rounds 5]
       [--code /tmp/before --code .]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LITS = Path("/work/shared/data/liver/lits-partial")

CHILD = r"""
import json, sys, time, warnings
t0, c0 = time.perf_counter(), time.process_time()
step, folder = sys.argv[1], sys.argv[2]
warnings.simplefilter("ignore")
if step == "panel":
    from UNetPlusPlusLib.adapter.training_cases import check_cases
    import numpy, SimpleITK, slicerio  # imported in Slicer already: not the check's cost
    c1 = time.process_time()
    found = check_cases(folder)
    c2 = time.process_time()
    check_cases(folder)  # the next parameter change, no file changed
    again = time.process_time() - c2
    n = len(found.cases) if hasattr(found, "cases") else sum(c.usable for c in found)
else:
    from UNetPlusPlusLib.training.dataset import find_cases
    from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export
    c1 = time.process_time()
    n = len(find_cases(describe_slicer_export(folder), []))
    c2 = again = 0.0
done = {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}
done.update(n=n, check=(c2 or time.process_time()) - c1, again=again)
print(json.dumps(done))
"""

SEG_HEADER = (
    "NRRD0004\ntype: unsigned char\ndimension: 3\nspace: left-posterior-superior\n"
    "sizes: 4 5 6\nspace directions: (1,0,0) (0,1,0) (0,0,1)\nkinds: domain domain domain\n"
    "encoding: raw\nspace origin: (0,0,0)\nSegment0_ID:=Segment_1\nSegment0_LabelValue:=1\n"
    "Segment0_Layer:=0\nSegment0_Name:=liver\n\n"
)


def synthetic(folder: Path, count: int) -> Path:
    """``count`` cases as 'Add current case' writes them (tiny, so the cost is per file)."""
    import numpy as np
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(np.full((6, 5, 4), -1000, np.int16))
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[2:4, 2:4, 1:3] = 1
    for i in range(1, count + 1):
        sitk.WriteImage(image, str(folder / f"case{i:03d}.nrrd"))
        (folder / f"case{i:03d}.seg.nrrd").write_bytes(SEG_HEADER.encode() + labels.tobytes())
    return folder


def measure(step: str, folder: Path, code: Path = ROOT) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code / "UNetPlusPlus"))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, step, str(folder)], env=env, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", action="append", type=Path)
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--code", action="append", type=Path, help="code trees (default: this)")
    args = parser.parse_args()
    codes = [c.resolve() for c in args.code or [ROOT]]
    folders = list(args.folder or [LITS])
    with tempfile.TemporaryDirectory() as tmp:
        if args.synthetic:
            folders.append(synthetic(Path(tmp) / f"synthetic{args.synthetic}", args.synthetic))
        results: dict = {}
        load = os.getloadavg()
        runs = [(code, step) for code in codes for step in ("panel", "trainer")]
        for r in range(args.rounds):
            for folder in folders:
                for code, step in runs if r % 2 == 0 else runs[::-1]:
                    key = (folder.name, str(code), step)
                    results.setdefault(key, []).append(measure(step, folder, code))
        print(f"load average before: {load}, after: {os.getloadavg()}")
        for (name, code, step), found in results.items():
            wall = statistics.median(m["wall"] for m in found)
            cpu = statistics.median(m["cpu"] for m in found)
            check = statistics.median(m["check"] for m in found)
            again = statistics.median(m["again"] for m in found)
            print(
                f"{name:14s} {code:28s} {step:8s} cases {found[0]['n']:4d}  wall {wall:.3f} s  "
                f"cpu {cpu:.3f} s  (the call {check:.3f} s, again {again:.3f} s)"
            )


if __name__ == "__main__":
    main()

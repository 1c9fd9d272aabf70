#!/usr/bin/env python3
"""What recognising unrecorded cases costs the training export (adapter/case_records.py).

A folder of ``--cases`` cases as the export writes them, made from the CT fixture
(Testing/fixtures/example_ct_liver.nii.gz, 122x101x112, as int16 plus the case's number: each
case another image of the same shape, the worst case for the header check) with a thresholded
one-segment segmentation, or, with ``--brats``, each case a BraTS 2018 patient from
/work/shared/data (4 channels of 240x240x155 int16 and its 3-label segmentation: patients'
images differ only where their heads are, after slices of background), their ``.export.json``
records deleted (exported before records existed). Then, timed, in one process per
measurement: the first export of a new image into that folder (``cold``: every case is told
from it, read back and recorded only if it may hold it), a second new image (``warm``) and the
image of case001 again (``again``: refused as a duplicate now, written as another case before
records). Each code tree (``--code``, e.g. a checkout of main and this one) runs once per round,
their order alternating; prints the median wall and CPU seconds of each step per tree, and the
load average.

Usage: python bench/export_records_cost.py --code /tmp/before --code . [--rounds 3] [--cases 20]
       [--brats]  (at most 15 cases)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "Testing" / "fixtures" / "example_ct_liver.nii.gz"
BRATS = Path("/work/shared/data/brain-tumor/brats2018")
CHANNELS = ("flair", "t1", "t1ce", "t2")


def brats_nodes(scene, number: int):
    """The volume nodes and segmentation of the ``number``-th BraTS 2018 patient (from 1)."""
    import numpy as np
    from UNetPlusPlusLib.adapter import geometry, segmentation_writer
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology
    from UNetPlusPlusLib.engine.volume import LabelVolume

    patient = sorted(p for p in BRATS.iterdir() if p.is_dir())[number - 1]
    volumes = []
    for channel in CHANNELS:
        image = read_volume(next(patient.glob(f"*_{channel}.nii.gz")))
        volumes.append(geometry.volume_node_from_volume(scene, image, f"{channel}{number}"))
    truth = read_volume(next(patient.glob("*_seg.nii.gz")))
    term = standard_terminology("liver")  # the terminology does not change the cost
    names = ((1, "core"), (2, "oedema"), (4, "enhancing"))
    labels = [LabelSpec(value, name, (0.5, 0.5, 0.5), term) for value, name in names]
    mask = truth.array[0].astype(np.uint8)
    seg = LabelVolume(mask, truth.spacing, truth.origin, truth.direction, labels)
    return volumes, segmentation_writer.write_segments(seg, volumes[0], node_name=f"s{number}")


def measure(cases: int, brats: bool = False) -> dict:
    """In this process (its code on sys.path): build the folder, time the three exports; the
    folder is removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="export_records_") as folder:
        return _measure(cases, Path(folder), brats)


def _measure(cases: int, folder: Path, brats: bool) -> dict:
    """The three timed exports into ``folder`` (empty), after ``cases`` unrecorded cases."""
    import numpy as np
    import slicer
    from UNetPlusPlusLib.adapter import geometry, segmentation_writer
    from UNetPlusPlusLib.adapter.training_export import export_training_case
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology
    from UNetPlusPlusLib.engine.volume import LabelVolume, Volume
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    ct = read_volume(FIXTURE)
    base = ct.array.astype(np.int16)
    labels = [LabelSpec(1, "liver", (0.8, 0.4, 0.3), standard_terminology("liver"))]
    scene = slicer.vtkMRMLScene()

    def nodes(number):
        if brats:
            return brats_nodes(scene, number)
        voxels = base + number
        volume = geometry.volume_node_from_volume(
            scene, Volume(voxels, ct.spacing, ct.origin, ct.direction), f"CT{number}"
        )
        mask = (voxels[0] > np.median(voxels)).astype(np.uint8)
        seg = LabelVolume(mask, ct.spacing, ct.origin, ct.direction, labels)
        return [volume], segmentation_writer.write_segments(seg, volume, node_name=f"s{number}")

    for number in range(1, cases + 1):
        volumes, seg = nodes(number)
        export_training_case(volumes, seg, folder, f"case{number:03d}", CHANNELS[: len(volumes)])
    for record in folder.glob("*.export.json"):
        record.unlink()
    result = {}
    steps = [
        ("cold", cases + 1, cases + 1),
        ("warm", cases + 2, cases + 2),
        ("again", 1, cases + 3),
    ]
    for step, number, name in steps:
        volumes, seg = nodes(number)
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            export_training_case(volumes, seg, folder, f"case{name:03d}", CHANNELS[: len(volumes)])
            said = "written"
        except UNetPlusPlusError as error:
            said = type(error).__name__
        result[step] = [time.perf_counter() - wall, time.process_time() - cpu, said]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", action="append", required=True, help="a checkout's root")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--brats", action="store_true", help="BraTS 2018 patients as cases")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child: measure with this code
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.cases, args.brats)))
        return 0
    runs: dict = {code: [] for code in args.code}
    loads = [os.getloadavg()[0]]
    for round_ in range(args.rounds):
        for code in args.code if round_ % 2 == 0 else reversed(args.code):
            env = dict(os.environ, PYTHONPATH=str(Path(code).resolve() / "UNetPlusPlus"))
            command = [sys.executable, __file__, "--code", code, "--one", "1"]
            command += ["--cases", str(args.cases)] + (["--brats"] if args.brats else [])
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            runs[code].append(json.loads(out.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
    kind = "BraTS 4x240x240x155 float32" if args.brats else "122x101x112 int16"
    print(f"{args.cases} unrecorded cases of {kind}; {args.rounds} rounds; load "
          f"average (1 min) {min(loads):.2f}-{max(loads):.2f}")  # fmt: skip
    for code, results in runs.items():
        for step in ("cold", "warm", "again"):
            wall = statistics.median(r[step][0] for r in results)
            cpu = statistics.median(r[step][1] for r in results)
            said = {r[step][2] for r in results}
            print(f"{code:>30} {step:>5}: {wall:6.3f} s wall, {cpu:6.3f} s CPU ({', '.join(said)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

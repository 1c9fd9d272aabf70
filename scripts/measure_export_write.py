#!/usr/bin/env python
"""Main-thread time of the panel's "Export training case" (adapter/training_export.py).

The panel's export (``start_training_export``) reads the nodes on Slicer's main thread (the
voxels copied, the case's identity, the segmentation written by Slicer's storage node) and
compresses and writes the images in a thread. This times, into an empty folder (median of
``--rounds``, each round a new folder), for real MRML nodes (slicer-core):

- ``sync``: ``export_training_case``, all of it in the calling thread (wall and CPU seconds):
  the time a Slicer main thread would be blocked if it ran so, as it did before;
- ``background``: ``start_training_export`` from a main thread that then ticks every 10 ms
  (as Slicer's event loop would run its timers) until the thread is done: the wall time to the
  case written, the time the start call blocked, and the longest gap between two ticks
  (start call included): what the user feels as a freeze.

Cases:

- ``brats``: one BraTS 2018 patient, 4 channels of 240x240x155 int16, its 3-label segmentation
  (/work/shared/data/brain-tumor/brats2018, the first patient);
- ``lits``: the LiTS CT liver_0 (512x512x65 int16, /work/shared/data/liver/lits-partial) and
  its liver label;
- ``ct300``: that CT repeated to 512x512x300 slices (a typical abdominal CT), its label too.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_export_write.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DATA = Path("/work/shared/data")


def labels(count: int):
    from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology

    term = standard_terminology("liver")  # the terminology does not change the cost
    names = [(1, "core"), (2, "oedema"), (4, "enhancing")][:count]
    return [LabelSpec(value, name, (0.5, 0.5, 0.5), term) for value, name in names]


def case(scene, which: str):
    """(volume nodes, segmentation node) of ``which``."""
    from UNetPlusPlusLib.adapter import geometry, segmentation_writer
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.volume import LabelVolume, Volume

    if which == "brats":
        patient = sorted(p for p in (DATA / "brain-tumor/brats2018").iterdir() if p.is_dir())[0]
        nodes = [
            geometry.volume_node_from_volume(
                scene, read_volume(next(patient.glob(f"*_{c}.nii.gz"))), c
            )
            for c in ("flair", "t1", "t1ce", "t2")
        ]
        truth = read_volume(next(patient.glob("*_seg.nii.gz")))
        mask, specs = truth.array[0].astype(np.uint8), labels(3)
        grid = truth
    else:
        ct = read_volume(DATA / "liver/lits-partial/liver_0_ct.nii.gz")
        truth = read_volume(DATA / "liver/lits-partial/liver_0_label.nii.gz")
        voxels, mask = ct.array[0], (truth.array[0] > 0).astype(np.uint8)
        if which == "ct300":
            reps = -(-300 // voxels.shape[0])
            voxels = np.concatenate([voxels] * reps)[:300]
            mask = np.concatenate([mask] * reps)[:300]
        grid = Volume(voxels[None].astype(np.int16), ct.spacing, ct.origin, ct.direction)
        nodes = [geometry.volume_node_from_volume(scene, grid, "CT")]
        specs = labels(1)
    seg = LabelVolume(mask, grid.spacing, grid.origin, grid.direction, specs)
    return nodes, segmentation_writer.write_segments(seg, nodes[0], node_name="labels")


def background_export(nodes, seg, folder: str, names) -> tuple[float, float, float, list]:
    """(wall s to the case written, s the start call blocked, longest main-thread gap s, the
    files) of ``start_training_export`` with this thread ticking every 10 ms meanwhile."""
    from UNetPlusPlusLib.adapter.training_export import start_training_export

    start = time.perf_counter()
    job = start_training_export(nodes, seg, folder, "case001", names)
    last = time.perf_counter()
    blocked = longest = last - start
    while not job.finished:
        time.sleep(0.01)
        now = time.perf_counter()
        longest, last = max(longest, now - last), now
    written = job.result()
    return time.perf_counter() - start, blocked, longest, written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cases", nargs="+", default=["brats", "lits", "ct300"])
    parser.add_argument("--modes", nargs="+", default=["sync", "background"])
    args = parser.parse_args()
    import slicer
    from UNetPlusPlusLib.adapter.training_export import export_training_case

    for which in args.cases:
        scene = slicer.vtkMRMLScene()
        nodes, seg = case(scene, which)
        names = [n.GetName() for n in nodes]
        voxels = sum(n.GetImageData().GetNumberOfPoints() for n in nodes)
        kinds = ", ".join(sorted({n.GetImageData().GetScalarTypeAsString() for n in nodes}))
        for mode in args.modes:
            walls, cpus, blocks, gaps, size = [], [], [], [], 0
            for _ in range(args.rounds):
                with tempfile.TemporaryDirectory() as folder:
                    wall, cpu = time.perf_counter(), time.process_time()
                    if mode == "sync":
                        written = export_training_case(nodes, seg, folder, "case001", names)
                        blocks.append(time.perf_counter() - wall)
                        gaps.append(blocks[-1])
                    else:
                        _, blocked, gap, written = background_export(nodes, seg, folder, names)
                        blocks.append(blocked)
                        gaps.append(gap)
                    walls.append(time.perf_counter() - wall)
                    cpus.append(time.process_time() - cpu)
                    size = sum(Path(p).stat().st_size for p in written)
            print(
                f"{which} [{mode}]: {len(nodes)} volume(s) ({kinds}), {voxels / 1e6:.1f} M "
                f"voxels, {size / 1e6:.1f} MB written; wall median "
                f"{statistics.median(walls):.2f} s (min {min(walls):.2f}), CPU median "
                f"{statistics.median(cpus):.2f} s; main thread: start call median "
                f"{statistics.median(blocks):.2f} s, longest gap median "
                f"{statistics.median(gaps) * 1000:.0f} ms (max {max(gaps) * 1000:.0f} ms)"
            )
        scene.Clear(1)
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""GUI-thread time of ``SegmentationLogic.start_job`` for a 512x512x300 int16 CT (issue 10, 6).

``start_job`` runs on Slicer's GUI thread: it reads the volume node, writes the job's inputs and
starts the engine's process. This builds the CT as a real MRML volume node (slicer-core), times
``start_job`` (best and median of ``--rounds``), and closes each job at once (the engine never
runs). It prints the times and the bytes of input written per channel.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_job_start.py [--rounds 5]

Run it with PYTHONPATH pointing at another checkout to measure that version (for example the
code before the native-type inputs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def ct_node(scene, shape_zyx=(300, 512, 512)):
    """An int16 CT-like volume node (air, body, bone), 0.7 x 0.7 x 1.0 mm."""
    import slicer
    import vtk
    from vtkmodules.util import numpy_support

    rng = np.random.default_rng(0)
    array = np.full(shape_zyx, -1000, dtype=np.int16)
    z, y, x = np.ogrid[: shape_zyx[0], : shape_zyx[1], : shape_zyx[2]]
    body = ((y - 256) / 200.0) ** 2 + ((x - 256) / 230.0) ** 2 < 1.0
    array[:, body[0]] = 40
    array += rng.integers(-20, 20, size=shape_zyx, dtype=np.int16)
    image = vtk.vtkImageData()
    image.SetDimensions(shape_zyx[2], shape_zyx[1], shape_zyx[0])
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("CT")
    node.SetAndObserveImageData(image)
    node.SetSpacing(0.7, 0.7, 1.0)
    scene.AddNode(node)
    return node


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import slicer
    import UNetPlusPlusLib
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    model = REPO / "Testing" / "fixtures" / "sphere_model" / "model.json"
    scene = slicer.vtkMRMLScene()
    node = ct_node(scene)
    logic = SegmentationLogic()
    times, sizes = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        job = logic.start_job([node], model, device="cpu", persistent=False)  # inputs per job
        times.append(time.perf_counter() - started)
        sizes = [p.stat().st_size for p in sorted(job._workdir.glob("input_*.nrrd"))]
        job.close() if hasattr(job, "close") else (job.cancel(), job._process.kill())
        while not job.finished:  # let the (old or new) job finish and remove its folder
            job.poll()
            time.sleep(0.05)
    print(f"code: {Path(UNetPlusPlusLib.__file__).parents[2]}")
    print(f"volume: 512x512x300 int16 ({node.GetImageData().GetScalarTypeAsString()})")
    print(
        f"start_job GUI-thread time: best {min(times):.3f} s, median "
        f"{statistics.median(times):.3f} s over {len(times)} rounds"
    )
    print(f"input written per channel: {', '.join(f'{s / 2**20:.0f} MiB' for s in sizes)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

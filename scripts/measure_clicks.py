#!/usr/bin/env python
"""Seconds per nodule click, one engine process per click vs the persistent engine (issue 14).

A real LIDC nodule crop (../shared/data/lung-nodule/lidc-vois) is pasted at the centre of an
int16 CT of air (-1000 HU, 0.7 x 0.7 x 1.25 mm, the lung-nodule model's spacing) of the given
size, as a real MRML volume node (slicer-core). Each click is ``start_job`` with the point at the
nodule's centre, polled every 20 ms as the panel's timer does, until the segment is in the scene;
the time is wall-clock from the click to the result. It prints the seconds per click for
``persistent=False`` (a new process each click) and ``persistent=True`` (``unetpp serve``).

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_clicks.py [--clicks 4] [--size 512 512 300]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VOI = REPO.parent / "shared/data/lung-nodule/lidc-vois/image/LIDC-IDRI-0001_R_1.nii.gz"


def ct_with_nodule(scene, size_xyz):
    import SimpleITK as sitk
    import slicer
    import vtk
    from vtkmodules.util import numpy_support

    voi = sitk.GetArrayFromImage(sitk.ReadImage(str(VOI))).astype(np.int16)
    array = np.full(tuple(reversed(size_xyz)), -1000, dtype=np.int16)
    start = [(a - b) // 2 for a, b in zip(array.shape, voi.shape)]
    array[tuple(slice(s, s + n) for s, n in zip(start, voi.shape))] = voi
    image = vtk.vtkImageData()
    image.SetDimensions(*size_xyz)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("CT")
    node.SetAndObserveImageData(image)
    node.SetSpacing(0.7, 0.7, 1.25)
    scene.AddNode(node)
    centre_ijk = [s + n / 2.0 for s, n in zip(reversed(start), reversed(voi.shape))]
    return node, [c * s for c, s in zip(centre_ijk, (0.7, 0.7, 1.25))]  # RAS, identity matrix


def click(logic, node, point, persistent, output):
    started = time.perf_counter()
    job = logic.start_job(
        [node], "lung-nodule", point_ras=point, persistent=persistent, output_node=output
    )
    while not job.finished:
        job.poll()
        time.sleep(0.02)
    if job.state != "succeeded":
        raise SystemExit(f"click failed: {job.error}")
    return time.perf_counter() - started, job.output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=3, default=(512, 512, 300), metavar="N")
    args = parser.parse_args()
    import slicer
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    scene = slicer.vtkMRMLScene()
    node, point = ct_with_nodule(scene, args.size)
    print(f"CT {'x'.join(map(str, args.size))} int16, nodule {VOI.name}")
    for persistent in (False, True):
        logic = SegmentationLogic()
        output, seconds = None, []
        for _ in range(args.clicks):
            elapsed, output = click(logic, node, point, persistent, output)
            seconds.append(elapsed)
        logic.shutdown()
        name = "persistent engine" if persistent else "one process per click"
        print(f"{name}: " + ", ".join(f"{s:.2f}" for s in seconds) + " s per click")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Audit one full Segment run of the Slicer module's Logic on a 512x512x300 CT, on real MRML
(slicer-core), through a launcher like PythonSlicer (Testing/launcher.py): the cancel path and
what stays in memory after a completed run.

Cancel (one-shot process, then the persistent engine): after ``cancel()`` mid-inference, the
job ends ``cancelled``, the scene is exactly as before (no partial segmentation node), the job's
working folder (a copy of the patient's images) is gone, and so is every process of the
one-shot run (the persistent engine process stays by design when it honoured the cancel, and is
killed when it did not).

Completed run: whether anything still references the volume's voxels (the Python object of
its vtkDataArray, which numpy views of the voxels hold) or the result's labels (a weak
reference) once the run's segments are in the scene and the job was released as the panel
releases it; then the volume node is removed from the scene and the process's resident memory
(RSS) is read again (its 150 MB should go).

    PYTHONPATH=UNetPlusPlus:Testing nice -n 19 python scripts/audit_segment_run.py [--skip-cancel]

Prints one line per check; exits 1 if a check failed. Not a test (minutes of CPU).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import weakref
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "UNetPlusPlus"), str(REPO / "Testing")]

import slicer  # noqa: E402
import vtk  # noqa: E402
from launcher import descendants, living, make_launcher  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from vtkmodules.util import numpy_support  # noqa: E402

SHAPE = (300, 512, 512)  # (z, y, x)
MODEL = REPO / "Testing" / "fixtures" / "sphere_model" / "model.json"
failures: list[str] = []


def check(ok: bool, what: str) -> None:
    print(("ok    " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        failures.append(what)


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def ct_node(scene):
    """A 512x512x300 int16 CT: air (-1000) around a 300 HU ball of 60 mm radius."""
    z, y, x = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    spacing = (0.7, 0.7, 1.25)
    centre = [(n - 1) / 2 for n in SHAPE]
    ball = (
        ((x - centre[2]) * spacing[0]) ** 2
        + ((y - centre[1]) * spacing[1]) ** 2
        + ((z - centre[0]) * spacing[2]) ** 2
    ) <= 60.0**2
    array = np.where(ball, np.int16(300), np.int16(-1000))
    image = vtk.vtkImageData()
    image.SetDimensions(SHAPE[2], SHAPE[1], SHAPE[0])
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(array.ravel(), deep=True))
    del array, ball
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("CT")
    node.SetSpacing(*spacing)
    node.SetOrigin(-179.0, -160.0, -300.0)
    node.SetAndObserveImageData(image)
    scene.AddNode(node)
    return node


def scene_state(scene) -> list:
    """Every node's class, name and modification time."""
    nodes = scene.GetNodes()
    return [
        (n.GetClassName(), n.GetName(), n.GetMTime())
        for n in (nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems()))
    ]


def poll(job, timeout: float = 1800.0, until=None) -> list:
    events, deadline = [], time.monotonic() + timeout
    while not job.finished and time.monotonic() < deadline:
        events += job.poll()
        if until is not None and until(events):
            return events
        time.sleep(0.05)
    return events


def inferring(events) -> bool:
    return any(e.kind == "progress" and e.stage == "infer" and e.done > 0 for e in events)


def audit_cancel(logic, node, scene, persistent: bool) -> None:
    kind = "persistent engine" if persistent else "one-shot process"
    before = scene_state(scene)
    job = logic.start_job([node], MODEL, depth="1", device="cpu", persistent=persistent)
    workdir = job.workdir
    events = poll(job, until=inferring)
    check(inferring(events), f"{kind}: inference had started before the cancel")
    leader = job.pid or (logic._server.pid if persistent and logic._server else None)
    pids = {leader, *descendants(leader)} if leader else set()
    cancelled_at = time.monotonic()
    job.cancel()
    poll(job)
    seconds = time.monotonic() - cancelled_at
    check(job.state == "cancelled", f"{kind}: the job ended {job.state} ({seconds:.1f} s)")
    check(scene_state(scene) == before, f"{kind}: the scene is exactly as before")
    count = scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode")
    check(count == 0, f"{kind}: no segmentation node ({count})")
    check(workdir is None or not workdir.exists(), f"{kind}: the working folder is gone")
    check(job.volume is None and job.on_success is None, f"{kind}: no input or nodes held")
    time.sleep(2.0)
    alive = living(pids)
    if persistent:
        print(
            f"      {kind}: engine process tree {sorted(pids)} alive after cancel: {sorted(alive)}"
        )
    else:
        check(not alive, f"{kind}: every process of the run is gone ({sorted(alive)} alive)")


def audit_memory(logic, scene) -> None:
    """A completed run on a fresh CT node; references counted on VTK's side (a numpy view of
    the node's voxels holds its vtkDataArray) and with a weak reference to the result's
    array (numpy arrays are not tracked by the garbage collector)."""
    gc.collect()
    start_rss = rss_mb()
    node = ct_node(scene)
    scalars = node.GetImageData().GetPointData().GetScalars()
    references = sys.getrefcount(scalars)  # numpy views of the voxels hold this wrapper
    job = logic.start_job([node], MODEL, depth="1", device="cpu", persistent=False)
    during = sys.getrefcount(scalars)
    poll(job)
    check(job.state == "succeeded", f"completed run: {job.state} {job.error or ''}")
    print(f"      voxel array references: {references} before, {during} running")
    check(job.volume is None and job.on_success is None, "completed run: no input or nodes held")
    gc.collect()
    check(sys.getrefcount(scalars) == references, "completed run: no view of the voxels held")
    result = weakref.ref(job.labels.array)
    size = job.labels.array.nbytes >> 20
    print(f"      result labels held by the job until release(): {size} MB")
    job.release()  # the panel's run_control does this once the result is in the scene
    gc.collect()
    check(result() is None, "completed run: the result's array is freed after release()")
    listed = any(j is job for j in logic._jobs)
    print(f"      the logic still lists the finished (closed, released) job: {listed}")
    after_rss = rss_mb()
    del job, scalars
    scene.RemoveNode(node)
    del node
    gc.collect()
    removed_rss = rss_mb()
    print(
        f"      RSS MB: start {start_rss:.0f}, after the run {after_rss:.0f}, "
        f"after the volume node was removed {removed_rss:.0f}"
    )
    check(after_rss - removed_rss > 100, "removing the volume frees its 150 MB of voxels")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-cancel", action="store_true")
    args = parser.parse_args()
    ModelManifest.load(MODEL)
    with tempfile.TemporaryDirectory() as folder:
        logic = SegmentationLogic(python=make_launcher(Path(folder)))
        scene = slicer.vtkMRMLScene()
        node = ct_node(scene)
        try:
            if not args.skip_cancel:
                audit_cancel(logic, node, scene, persistent=False)
                audit_cancel(logic, node, scene, persistent=True)
            scene.RemoveNode(node)
            del node
            audit_memory(logic, scene)
        finally:
            logic.shutdown()
    print(f"{len(failures)} failed" if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

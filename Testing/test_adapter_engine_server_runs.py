"""Whole-volume runs through the persistent engine, the module's default since issue 14: the same
labels as a one-shot run, one process for runs at several depths, cancel (honoured, or the
process killed and restarted) leaving the scene untouched, and the memory bound of `unetpp serve`.

Jobs run through a PythonSlicer-like launcher (Testing/launcher.py) on real MRML (slicer-core).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
pytestmark = pytest.mark.skipif(
    sys.platform == "win32" or not Path("/proc/self/stat").exists(), reason="needs /proc"
)

from helpers import make_sphere_image, rotation_matrix  # noqa: E402
from launcher import make_launcher, wait_for_descendant  # noqa: E402
from test_adapter_job_cancel import poll_until_finished, wait_gone  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.point_crop import grid_offset  # noqa: E402

TIMEOUT_S = 180


def oblique_node(scene, size=(22, 20, 16)):
    """A sphere CT with a rotated direction, anisotropic spacing and an off-centre origin."""
    image = make_sphere_image(
        size, (1.8, 2.2, 2.5), (5.0, -12.0, 30.0), rotation_matrix((-10, 15, 5)), radius_mm=9.0
    )
    return geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")


def same_grid(a, b) -> bool:
    """Exactly the same size, spacing, origin and direction."""
    return (
        a.size_xyz == b.size_xyz
        and tuple(a.spacing) == tuple(b.spacing)
        and tuple(a.origin) == tuple(b.origin)
        and np.array_equal(a.direction, b.direction)
    )


def mask_of(segmentation_node) -> np.ndarray:
    """The 'liver' segment's voxels (the sphere model's label) on the node's own labelmap."""
    segmentation = segmentation_node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("liver"))
    labels = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    return geometry.array_from_oriented_image(labels) == segment.GetLabelValue()


def until_infer(running) -> list:
    """Poll until the engine reports a tile batch (the run is inside inference)."""
    deadline, events = time.monotonic() + TIMEOUT_S, []
    while not any(e.kind == job.PROGRESS and e.stage == "infer" for e in events):
        assert not running.finished, running.error
        assert time.monotonic() < deadline, "no inference progress"
        events += running.poll()
        time.sleep(0.01)
    return events


def test_whole_volume_runs_share_one_engine_and_match_one_shot(tmp_path, sphere_model):
    scene = slicer.vtkMRMLScene()
    node = oblique_node(scene)
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    try:
        one_shot = logic.start_job([node], sphere_model, depth=1, device="cpu", persistent=False)
        poll_until_finished(one_shot)
        assert one_shot.state == job.SUCCEEDED, one_shot.error
        assert logic._server is None  # persistent=False starts no engine process

        runs = {}
        for depth in (1, 4):
            runs[depth] = logic.start_job([node], sphere_model, depth=depth, device="cpu")
            poll_until_finished(runs[depth])
            assert runs[depth].state == job.SUCCEEDED, runs[depth].error
            if depth == 1:
                pid = logic._server.pid
        server = logic._server
        assert server.starts == 1 and server.pid == pid and server.alive()  # one process
        assert runs[1].pid is None and "serve" in runs[1].command  # the request went to it

        labels, reference = runs[1].labels, one_shot.labels
        np.testing.assert_array_equal(labels.array, reference.array)
        assert labels.array.sum() > 100
        assert same_grid(labels.grid, reference.grid)  # the one-shot run's grid, exactly
        native = geometry.native_images_from_nodes([node]).grid
        assert grid_offset(labels.grid, native) == (0, 0, 0)  # the whole input grid
        assert runs[4].result["depth"] == 4 and runs[1].result["depth"] == 1
        for running in runs.values():  # a new segmentation node per run, as one-shot runs
            assert running.output.GetScene() is scene and running.workdir is None

        bounds = [0.0] * 6
        node.GetRASBounds(bounds)
        roi = slicer.vtkMRMLMarkupsROINode()
        scene.AddNode(roi)
        roi.SetCenter((bounds[0] + bounds[1]) / 2 + 4.0, (bounds[2] + bounds[3]) / 2, bounds[5])
        roi.SetSize(12.0, 40.0, 80.0)  # a slab through the sphere, off its centre
        in_roi = logic.start_job([node], sphere_model, depth=1, device="cpu", roi_node=roi)
        poll_until_finished(in_roi)
        assert in_roi.state == job.SUCCEEDED, in_roi.error
        assert server.starts == 1 and server.pid == pid
        blocking = logic.segment([node], sphere_model, depth=1, device="cpu", roi_node=roi)
        assert 0 < mask_of(in_roi.output).sum() < mask_of(runs[1].output).sum()
        np.testing.assert_array_equal(mask_of(in_roi.output), mask_of(blocking))
    finally:
        logic.shutdown()


def test_cancel_of_a_whole_volume_run_through_the_engine(tmp_path, sphere_model):
    """Honoured in time: the engine stops between tile batches and stays warm. Not honoured in
    time (a grace of 0 s): the engine's process tree is killed and the next run starts one."""
    scene = slicer.vtkMRMLScene()
    node = oblique_node(scene, size=(64, 64, 64))
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    try:
        first = logic.start_job([node], sphere_model, depth=1, device="cpu")
        poll_until_finished(first)
        assert first.state == job.SUCCEEDED, first.error
        pid, nodes_before = logic._server.pid, scene.GetNumberOfNodes()

        honoured = logic.start_job([node], sphere_model, depth=4, device="cpu")
        honoured.kill_grace = TIMEOUT_S  # prove the cooperative route: no kill
        workdir = honoured.workdir
        until_infer(honoured)
        honoured.cancel()
        events, _ = poll_until_finished(honoured)
        assert honoured.state == job.CANCELLED and events[-1].state == job.CANCELLED
        assert any(e.message.startswith("error: Cancelled") for e in events), events
        assert honoured.output is None and honoured.labels is None
        assert scene.GetNumberOfNodes() == nodes_before and not workdir.exists()
        assert logic._server.pid == pid and logic._server.alive()  # still warm

        killed = logic.start_job([node], sphere_model, depth=4, device="cpu")
        killed.kill_grace = 0.0
        pids = wait_for_descendant(pid)
        until_infer(killed)
        killed.cancel()
        poll_until_finished(killed)
        assert killed.state == job.CANCELLED and killed.output is None
        assert wait_gone(pids) == set()  # the launcher and the engine under it
        assert scene.GetNumberOfNodes() == nodes_before

        again = logic.start_job([node], sphere_model, depth=1, device="cpu")
        poll_until_finished(again)
        assert again.state == job.SUCCEEDED, again.error
        assert logic._server.starts == 2 and logic._server.pid != pid
        np.testing.assert_array_equal(again.labels.array, first.labels.array)
    finally:
        logic.shutdown()


def test_an_input_error_through_the_engine_is_one_message_and_it_goes_on(tmp_path, sphere_model):
    scene = slicer.vtkMRMLScene()
    node = oblique_node(scene)
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    try:
        bad = logic.start_job([node], sphere_model, depth=7, device="cpu")
        poll_until_finished(bad)
        assert bad.state == job.FAILED and bad.output is None
        assert "depth" in bad.error.lower() and "\n" not in bad.error
        good = logic.start_job([node], sphere_model, depth=2, device="cpu")
        poll_until_finished(good)
        assert good.state == job.SUCCEEDED, good.error
        assert logic._server.starts == 1  # the error did not cost the engine
    finally:
        logic.shutdown()


# ------------------------------------------------------------------ memory bound of `unetpp serve`
def test_the_volume_is_kept_only_within_the_bound_or_for_clicks(tmp_path, sphere_model):
    import SimpleITK as sitk
    from UNetPlusPlusLib.cli import build_parser
    from UNetPlusPlusLib.cli_serve import serve
    from UNetPlusPlusLib.warm_cache import WarmCache

    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    nbytes = 24**3 * 4  # the float32 Volume the server reads
    base = [str(tmp_path / "ct.nrrd"), "--model", str(sphere_model), "--device", "cpu"]

    def kept_after(argv: list[str], keep_bytes: int) -> int:
        cache = WarmCache(keep_bytes=keep_bytes)
        request = {"id": 1, "argv": [*argv, "--labelmap", str(tmp_path / "out.nrrd")]}
        replies = io.StringIO()
        serve(io.StringIO(json.dumps(request) + "\n"), replies, build_parser, cache=cache)
        assert '"result"' in replies.getvalue(), replies.getvalue()
        return cache.kept_volume_bytes()

    assert kept_after(base, keep_bytes=nbytes - 1) == 0  # whole volume above the bound: dropped
    assert kept_after(base, keep_bytes=nbytes) == nbytes  # within the bound: kept
    click = [*base, "--point", "0", "0", "0"]
    assert kept_after(click, keep_bytes=0) == nbytes  # a click keeps it whatever its size


def test_freeing_cuda_memory_never_imports_torch():
    code = (
        "import sys; from UNetPlusPlusLib.warm_cache import WarmCache; "
        "WarmCache().after_request(click=False); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=TIMEOUT_S)


def test_the_module_logs_an_input_warning_before_the_first_tile(tmp_path, sphere_model):
    """Through `unetpp serve` and the job client, the Log gets "warning: ..." before the first
    "infer" progress (tester 12: warnings came only with the result)."""
    image = make_sphere_image((24, 24, 6), (2.0, 2.0, 12.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    scene = slicer.vtkMRMLScene()
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    try:
        running = logic.start_job([node], sphere_model, device="cpu")
        events, _ = poll_until_finished(running, TIMEOUT_S)
    finally:
        logic.shutdown()
    assert running.state == job.SUCCEEDED, running.error
    kinds = [
        "warning" if e.kind == job.LOG else "infer"
        for e in events
        if (e.kind == job.LOG and e.message.startswith("warning: ") and "thick" in e.message)
        or (e.kind == job.PROGRESS and e.stage == "infer")
    ]
    assert kinds.count("warning") == 1 and kinds.index("warning") < kinds.index("infer"), kinds
    assert any("very thick voxels" in w for w in running.result["warnings"])  # the panel's

"""The panel's queue of nodule points (widget/run_control.py, widget/point_queue.py): a point
whose run is refused does not drop the points queued after it; the status text and the log
name each refused point by its label with the engine's reason, the others' segments stay, and
one error dialog lists them all at the end. A queued point moved before its run runs where it
is then; one deleted is skipped and logged. Cancel still empties the queue; a start refused
before any run (the engine cannot start) names the points it did not run (test_point_batch.py:
the batch's other cases).

Before, the first refused point emptied the queue silently (``self._pendingPoints = []``): the
user clicked three nodules and heard only of the first; queued points ran at the position
they were placed at, even when moved or deleted since.

The panel's code runs unchanged on real MRML (slicer-core) with real background runs of the
shipped nodule model through `unetpp serve`; the stand-ins are those of
test_run_control_warnings.py (3D Slicer's GUI cannot run here).
"""

from __future__ import annotations

import time

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_click_check import AIR, NODULE  # noqa: E402
from test_run_control_warnings import panel  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.registry import find_model  # noqa: E402

AIR_RAS = (-AIR[0], -AIR[1], AIR[2])
NODULE_RAS = (-NODULE[0], -NODULE[1], NODULE[2])
OFF_RAS = (500.0, 3.0, 4.0)
IN_AIR = "at (-56.0, -4.0, 30.0) mm RAS lies in the air outside the body"


def clicks(run_control, logic, chest_scene):
    """The panel watching the point list (``observeSeeds``: real MRML events call
    ``onPointPlaced`` and ``onPointRemoved``); ``host.starts``: every run's point and name."""
    from slicer.util import VTKObservationMixin

    class Host(run_control.RunControl, VTKObservationMixin):
        def __init__(self) -> None:
            VTKObservationMixin.__init__(self)
            self.starts = []

        def startRun(self, pointRas=None, pointName=None):  # noqa: N802, N803 (the panel's)
            self.starts.append((pointRas and list(pointRas), pointName))
            super().startRun(pointRas, pointName)

    scene, node, seeds = chest_scene
    host = panel(run_control, logic, find_model("lung-nodule"), [node], seeds, Host())
    host._observedSeeds = None
    host.observeSeeds(seeds)
    return host


def place(host, seeds, *positions) -> None:
    """Place points: Slicer's AddControlPoint invokes PointPositionDefinedEvent."""
    for position in positions:
        seeds.AddControlPoint(*position)


def settle(host) -> None:
    """Poll as the panel's timer does until no run goes on and nothing is queued."""
    deadline = time.monotonic() + 300
    while host._job is not None and not host._job.finished and time.monotonic() < deadline:
        host.onPollJob()
        time.sleep(0.05)
    assert host._job is None or host._job.finished, "the runs did not finish"


def test_a_refused_point_does_not_stop_the_queue(run_control, logic, chest_scene):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, AIR_RAS)  # F-1: refused, starts at once
    place(host, seeds, NODULE_RAS, OFF_RAS)  # F-2 and F-3 queued while F-1 runs
    assert len(host.starts) == 1 and len(host._points) == 2
    settle(host)
    assert [name for _, name in host.starts] == [
        "Point 'F-1'",  # the only point when its run started
        "Point 'F-2' (2 of 3)",
        "Point 'F-3' (3 of 3)",
    ]
    status = host.ui.statusLabel.text
    refused = [line for line in status.splitlines() if line.startswith("Not segmented: ")]
    assert len(refused) == 2, status
    assert refused[0].startswith(f"Not segmented: Point 'F-1' {IN_AIR}"), status
    assert refused[1].startswith(
        "Not segmented: Point 'F-3' (3 of 3) at (500.0, 3.0, 4.0) mm RAS lies outside the image"
    ), status
    assert len(errors) == 1, errors  # one dialog for the batch, at its end
    assert errors[0].startswith(f"2 of 3 points were not segmented:\n\nPoint 'F-1' {IN_AIR}")
    assert "Point 'F-3' (3 of 3) at (500.0" in errors[0]
    logged = [line for line in host.log if line.startswith("error: ")]
    assert len(logged) == 2 and "'F-1'" in logged[0] and "'F-3'" in logged[1], host.log
    # F-2's nodule stays: one segment in the output the next clicks add to
    output = host._parameterNode.outputSegmentation
    assert output is not None and output.GetSegmentation().GetNumberOfSegments() == 1
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 1
    assert any(line.startswith("Segments written to ") for line in host.log), host.log


def test_a_point_off_the_image_is_refused_before_its_run_and_the_next_one_runs(
    run_control, logic, chest_scene
):
    """The Logic refuses a click off the image before its run starts (PointRefusedError): that
    point only, as the engine's refusals; the start of F-2 refused did not drop F-3."""
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)  # F-1 runs
    place(host, seeds, OFF_RAS, NODULE_RAS)  # F-2 (off the image) and F-3 queued
    settle(host)
    assert [name for _, name in host.starts] == [
        "Point 'F-1'",
        "Point 'F-2' (2 of 3)",
        "Point 'F-3' (3 of 3)",
    ]
    off = "Point 'F-2' (2 of 3) at (500.0, 3.0, 4.0) mm RAS lies outside the image, whose voxel"
    status = host.ui.statusLabel.text
    refused = [line for line in status.splitlines() if line.startswith("Not segmented: ")]
    assert len(refused) == 1 and refused[0].startswith(f"Not segmented: {off}"), status
    assert "Not run" not in status, status
    assert len(errors) == 1 and errors[0].startswith("1 of 3 points were not segmented:")
    assert off in errors[0]
    logged = [line for line in host.log if line.startswith("error: ")]
    assert len(logged) == 1 and logged[0].startswith(f"error: {off}"), host.log
    output = host._parameterNode.outputSegmentation  # F-1's and F-3's nodules
    assert output is not None and output.GetSegmentation().GetNumberOfSegments() == 2
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 1


def test_a_single_refused_point_says_its_reason_once(run_control, logic, chest_scene):
    run_control, errors = run_control
    _scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, AIR_RAS)
    settle(host)
    assert len(errors) == 1 and errors[0].startswith(f"Point 'F-1' {IN_AIR}"), errors
    assert host.ui.statusLabel.text.startswith("Failed; the scene was not changed.")
    assert f"\nNot segmented: Point 'F-1' {IN_AIR}" in host.ui.statusLabel.text


def test_a_queued_point_moved_or_deleted_before_its_run(run_control, logic, chest_scene):
    run_control, errors = run_control
    _scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, AIR_RAS)  # F-1 runs
    place(host, seeds, AIR_RAS, AIR_RAS)  # F-2, F-3 queued
    seeds.SetNthControlPointPosition(1, *OFF_RAS)  # F-2 moved off the image
    seeds.RemoveNthControlPoint(2)  # F-3 deleted
    settle(host)
    assert host.starts == [
        (list(AIR_RAS), "Point 'F-1'"),
        (list(OFF_RAS), "Point 'F-2' (2 of 2)"),  # where it is now, not where it was placed
    ]
    assert "Point 'F-3' was deleted before its run started; skipped." in host.log
    assert len(errors) == 1 and errors[0].startswith("2 of 2 points were not segmented:")
    assert "Point 'F-2' (2 of 2) at (500.0, 3.0, 4.0) mm RAS lies outside" in errors[0]

    # Slicer gives the next point the deleted F-3's ID and label: a new point, it runs
    place(host, seeds, AIR_RAS)
    assert host.starts[2] == (list(AIR_RAS), "Point 'F-3' (3 of 3)")
    # a point list removed from the scene with its queued points: skipped, no crash
    place(host, seeds, NODULE_RAS)
    seeds.GetScene().RemoveNode(seeds)
    settle(host)
    assert len(host.starts) == 3, host.starts
    assert host.log[-1].endswith("was deleted before its run started; skipped."), host.log


def test_cancel_empties_the_queue(run_control, logic, chest_scene):
    run_control, errors = run_control
    _scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)
    place(host, seeds, AIR_RAS, NODULE_RAS)
    host.onSegmentButton()  # it reads "Cancel" while a run goes on
    settle(host)
    assert host._job.state == "cancelled" and len(host.starts) == 1 and not host._points
    assert errors == []
    # the points stay in the list without a segment: the status and the log name them all
    status = host.ui.statusLabel.text
    not_run = (
        "Cancelled; the scene was not changed: none of 3 points was segmented; 3 not run "
        "('F-1', 'F-2', 'F-3')."
    )
    assert status.splitlines()[0] == not_run, status
    assert any(line.startswith(not_run) for line in host.log), host.log


def test_a_refused_start_names_the_points_it_did_not_run(run_control, chest_scene, tmp_path):
    """The engine cannot start (no such interpreter): the same for every point, so the queue
    stops, but the status says which points were not run."""
    run_control, errors = run_control
    _scene, _node, seeds = chest_scene
    broken = SegmentationLogic(python=str(tmp_path / "no-python"), persistent=False)
    host = clicks(run_control, broken, chest_scene)
    host._job = type("Running", (), {"finished": False})()  # a run going on: points queue
    place(host, seeds, AIR_RAS, NODULE_RAS, NODULE_RAS)
    host._job = None
    host.startNextPoint()  # what the end of that run does
    assert len(host.starts) == 1 and "Cannot start the segmentation engine" in errors[-1]
    status = host.ui.statusLabel.text
    assert status.startswith("Not started; nothing was written."), status
    assert "Not run: 'F-1', 'F-2', 'F-3'; click Segment to run them once this is solved." in status
    assert not host._points and len(errors) == 1


def test_a_point_unplaced_and_placed_again_is_segmented_again(run_control, logic, chest_scene):
    """Slicer keeps the ID of a point whose position was cleared ("unset position"): placing it
    again is a new click. Before, it was taken for a point already run: nothing happened."""
    run_control, _errors = run_control
    _scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, AIR_RAS)  # F-1 runs
    place(host, seeds, AIR_RAS)  # F-2 queued
    seeds.UnsetNthControlPointPosition(1)
    seeds.SetNthControlPointPosition(1, *OFF_RAS)  # placed again before its run: runs once
    assert len(host._points) == 1
    settle(host)
    seeds.UnsetNthControlPointPosition(0)
    seeds.SetNthControlPointPosition(0, *OFF_RAS)  # F-1 placed again after its run
    settle(host)
    assert host.starts == [
        (list(AIR_RAS), "Point 'F-1'"),
        (list(OFF_RAS), "Point 'F-2' (2 of 2)"),
        (list(OFF_RAS), "Point 'F-1' (1 of 2)"),
    ], host.starts

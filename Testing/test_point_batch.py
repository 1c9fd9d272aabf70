"""The panel's batches of nodule points (widget/point_batch.py), on real MRML (slicer-core) with
real runs of the shipped nodule model through `unetpp serve` (the stand-ins of
test_run_control_warnings.py: 3D Slicer's GUI cannot run here).

- A point belongs to the task and input volume it was placed for: changing either while a
  batch runs stops the points queued before the change (the status and the log name them,
  they stay placed, Segment runs them later); before, they ran with the new model or on the
  new volume.
- Cancel says which points were segmented and kept, refused and not run, as the segmentation
  node holds them; before, it said "the scene was not changed" beside the earlier segments.
- Each engine error is in the log once (one-shot process and persistent engine alike); before,
  twice (the job's log event and the panel's line), three times from a one-shot process
  (its stderr too).
- With "Segment each new point automatically" off, placed points are landmarks: turning it on
  runs only the points placed after; Segment runs the placed points without a segment. Before,
  turning it on ran every point placed while it was off.
"""

from __future__ import annotations

import time

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_adapter_logic import add_volume  # noqa: E402
from test_click_check import chest  # noqa: E402
from test_run_control_queue import AIR_RAS, IN_AIR, NODULE_RAS, clicks, place, settle  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.volume import volume_to_sitk  # noqa: E402
from UNetPlusPlusLib.widget.segmented_points import (  # noqa: E402
    SEGMENTED_ATTRIBUTE,
    mark_segmented,
    segmented_ids,
)


def segments(scene) -> list[str]:
    """The names of the segments of every segmentation node of ``scene``."""
    nodes = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    names = []
    for n in range(nodes.GetNumberOfItems()):
        segmentation = nodes.GetItemAsObject(n).GetSegmentation()
        count = segmentation.GetNumberOfSegments()
        names += [segmentation.GetNthSegment(i).GetName() for i in range(count)]
    return names


def started(host) -> list[str]:
    return [name for _, name in host.starts]


def poll_until(host, condition) -> None:
    deadline = time.monotonic() + 300
    while not condition() and time.monotonic() < deadline:
        host.onPollJob()
        time.sleep(0.05)
    assert condition(), "timed out"


def ids(seeds, *indices) -> set[str]:
    return {seeds.GetNthControlPointID(i) for i in indices}


def test_a_task_change_mid_batch_stops_the_points_placed_for_the_old_task(
    run_control, logic, chest_scene, sphere_model
):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    nodule = host.currentModel()
    place(host, seeds, NODULE_RAS)  # F-1 runs
    place(host, seeds, NODULE_RAS, NODULE_RAS)  # F-2, F-3 queued for the nodule model
    host.currentModel = lambda: ModelManifest.load(sphere_model)  # another task, F-1 running
    settle(host)
    assert started(host) == ["Point 'F-1'"], host.starts  # not with the sphere model
    text = (
        "Not run: 'F-2', 'F-3'; the task is now 'sphere-test' (was 'lung-nodule-ct') since "
        "they were placed. They stay placed: choose the task and volume they were placed for "
        "and click Segment to segment them."
    )
    assert text in host.ui.statusLabel.text.splitlines(), host.ui.statusLabel.text
    assert text in host.log and errors == []
    assert segments(scene) == ["nodule 1"] and seeds.GetNumberOfControlPoints() == 3
    assert segmented_ids(seeds) == ids(seeds, 0)  # on the list: only F-1 has its segment

    host.currentModel = lambda: nodule  # back to the nodule task: Segment runs F-2 and F-3
    host.onSegmentButton()
    settle(host)
    assert started(host)[1:] == ["Point 'F-2' (2 of 3)", "Point 'F-3' (3 of 3)"]
    assert len(segments(scene)) == 3 and segmented_ids(seeds) == ids(seeds, 0, 1, 2)


def test_a_volume_change_mid_batch_runs_only_the_points_placed_for_the_new_volume(
    run_control, logic, chest_scene
):
    run_control, errors = run_control
    scene, node, seeds = chest_scene
    other = add_volume(scene, volume_to_sitk(chest()), "chest 2")
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)  # F-1 runs on 'chest'
    place(host, seeds, NODULE_RAS)  # F-2 queued for 'chest'
    host.inputVolumes = lambda _manifest: [other]  # the user picks 'chest 2', F-1 running
    place(host, seeds, NODULE_RAS)  # F-3 queued for 'chest 2'
    settle(host)
    assert started(host) == ["Point 'F-1'", "Point 'F-3' (3 of 3)"], host.starts
    status = host.ui.statusLabel.text
    assert status.startswith("Done: depth 1 on cpu"), status
    assert (
        "Not run: 'F-2'; the input volume is now 'chest 2' (was 'chest') since they were placed."
        in status
    ), status
    assert "Point 'F-2' not run: the input volume is now 'chest 2' (was 'chest')" in "\n".join(
        host.log
    )
    # each nodule on the volume its point was placed on
    outputs = scene.GetNodesByClass("vtkMRMLSegmentationNode")
    references = sorted(
        outputs.GetItemAsObject(i).GetNodeReference("referenceImageGeometryRef").GetName()
        for i in range(outputs.GetNumberOfItems())
    )
    assert references == ["chest", "chest 2"] and len(segments(scene)) == 2
    assert segmented_ids(seeds) == ids(seeds, 0, 2) and errors == []


def test_cancel_says_which_points_were_segmented_and_kept(run_control, logic, chest_scene):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)  # F-1 runs
    place(host, seeds, AIR_RAS, NODULE_RAS, NODULE_RAS, NODULE_RAS)  # F-2 (refused), F-3..F-5
    poll_until(host, lambda: len(host.starts) == 3)  # F-1 done, F-2 refused, F-3 running
    host.onSegmentButton()  # Cancel
    settle(host)
    assert host._job.state == "cancelled" and not host._points and errors == []
    lines = host.ui.statusLabel.text.splitlines()
    assert lines[0] == (
        "Cancelled: 1 of 5 points was segmented and kept ('F-1'); 1 refused ('F-2'); "
        "3 not run ('F-3', 'F-4', 'F-5')."
    ), lines
    assert lines[1] == "The points not segmented stay placed; Segment runs them."
    assert lines[-1].startswith(f"Not segmented: Point 'F-2' (2 of 5) {IN_AIR}"), lines
    # what the status says is what the scene holds: F-1's nodule in the output node
    output = host._parameterNode.outputSegmentation
    assert output is not None and segments(scene) == ["nodule 1"]
    assert output.GetSegmentation().GetNumberOfSegments() == 1
    assert segmented_ids(seeds) == ids(seeds, 0) and seeds.GetNumberOfControlPoints() == 5
    assert any(line.startswith(lines[0]) for line in host.log), host.log


def test_a_refused_point_after_a_segmented_one_says_the_segment_stays(
    run_control, logic, chest_scene
):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)  # F-1 runs
    place(host, seeds, AIR_RAS)  # F-2 queued: refused
    settle(host)
    lines = host.ui.statusLabel.text.splitlines()
    assert lines[0].startswith("Done: depth "), lines  # F-1's status stays first
    failed = "Failed; nothing was written for this point. Kept: the segments of 'F-1'."
    assert lines.count(failed) == 1, lines
    assert lines[-1].startswith(f"Not segmented: Point 'F-2' (2 of 2) {IN_AIR}"), lines
    assert segments(scene) == ["nodule 1"] and len(errors) == 1


@pytest.mark.parametrize("persistent", [True, False], ids=["engine-server", "one-shot"])
def test_each_engine_error_is_logged_once(run_control, chest_scene, persistent):
    run_control, errors = run_control
    scene, node, seeds = chest_scene
    logic = SegmentationLogic(persistent=persistent)
    try:
        host = clicks(run_control, logic, chest_scene)
        place(host, seeds, AIR_RAS)  # refused by the engine
        settle(host)
        logged = [line for line in host.log if line.startswith("error: ")]
        assert len(errors) == 1 and IN_AIR in errors[0]
        assert logged == [f"error: {errors[0]}"], host.log
        # a failure the engine did not say (the result cannot be written): logged once too
        place(host, seeds, NODULE_RAS)
        scene.RemoveNode(node)
        settle(host)
        gone = [line for line in host.log if "is no longer in the scene" in line]
        assert gone == ["error: Volume 'chest' is no longer in the scene."], host.log
    finally:
        logic.shutdown()


def test_each_training_error_is_logged_once(tmp_path):
    """The one-shot `unetpp train` says its error on stderr and in its JSON: one log event."""
    from UNetPlusPlusLib.adapter.training_job import TrainingJob

    job = TrainingJob(tmp_path / "no-cases", labels=["liver"], plan_only=True, device="cpu")
    events = job.start().wait(timeout=300)
    assert job.state == "failed", job.log
    logged = [e.message for e in events if e.kind == "log" and e.message.startswith("error: ")]
    assert logged == [f"error: {job.error}"], logged


def test_points_placed_with_automatic_off_are_landmarks_until_segment(
    run_control, logic, chest_scene
):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    host._parameterNode.interactive = False
    place(host, seeds, NODULE_RAS, AIR_RAS)  # F-1, F-2: nothing runs
    assert host.starts == [] and not host._points
    host._parameterNode.interactive = True
    place(host, seeds, NODULE_RAS)  # F-3: only the point placed after turning it on
    settle(host)
    assert started(host) == ["Point 'F-3' (3 of 3)"] and segments(scene) == ["nodule 1"]

    host.onSegmentButton()  # the placed points without a segment: F-1, F-2 (refused)
    settle(host)
    assert started(host)[1:] == ["Point 'F-1' (1 of 3)", "Point 'F-2' (2 of 3)"]
    assert segments(scene) == ["nodule 1", "nodule 2"] and len(errors) == 1
    assert seeds.GetAttribute(SEGMENTED_ATTRIBUTE) is not None  # saved with the scene
    assert segmented_ids(seeds) == ids(seeds, 0, 2)

    seeds.RemoveNthControlPoint(1)  # F-2 deleted: every placed point has its segment
    host.onSegmentButton()
    assert host.starts[3:] == [(None, None)]  # no point to run; no ROI either
    assert errors[-1].startswith("Every placed point has its nodule segment already")
    assert host.ui.statusLabel.text == "Not started; nothing was written."
    assert segments(scene) == ["nodule 1", "nodule 2"]


def test_the_segmented_record_follows_the_points_and_the_scene_file(run_control, chest_scene):
    """Deleted or unplaced points leave the record (Slicer gives a deleted point's ID to the
    next point placed: a new point, to segment); the record is saved with the scene."""
    run_control, _errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, SegmentationLogic(persistent=True), chest_scene)
    host._parameterNode.interactive = False
    place(host, seeds, NODULE_RAS, NODULE_RAS, NODULE_RAS)
    mark_segmented(seeds, ids(seeds, 0, 1, 2))  # as three runs would
    seeds.RemoveNthControlPoint(2)
    seeds.UnsetNthControlPointPosition(1)
    assert segmented_ids(seeds) == ids(seeds, 0)
    place(host, seeds, NODULE_RAS)  # the deleted F-3's ID again
    assert seeds.GetNthControlPointID(2) not in segmented_ids(seeds)

    scene.SetSaveToXMLString(1)
    scene.Commit()
    loaded = slicer.vtkMRMLScene()
    loaded.SetLoadFromXMLString(1)
    loaded.SetSceneXMLString(scene.GetSceneXMLString())
    loaded.Import()
    again = loaded.GetNodeByID(seeds.GetID())
    assert again is not None and segmented_ids(again) == ids(seeds, 0)

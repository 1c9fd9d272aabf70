"""Nodule points in the panel (widget/point_queue.py, widget/run_control.py), on real MRML
(slicer-core) with real runs of the shipped nodule model through `unetpp serve` (the stand-ins
of test_run_control_warnings.py: 3D Slicer's GUI cannot run here).

- "Segmented" means the point's segment is still there: a point whose segment was deleted
  (Segment Editor) or whose segmentation node was removed runs again on Segment. Before, the
  record held point IDs only and Segment said "Every placed point has its nodule segment
  already". A record of before (a JSON list of point IDs) still reads.
- A point placed while the panel says "Cancelling..." was not part of what the user cancelled:
  it runs once the cancel completes. Before, it was dropped with the cancelled points.
"""

from __future__ import annotations

import json

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_point_batch import ids, segments, started  # noqa: E402
from test_run_control_queue import AIR_RAS, NODULE_RAS, clicks, place, settle  # noqa: E402
from UNetPlusPlusLib.widget.segmented_points import (  # noqa: E402
    ROLE_PREFIX,
    SEGMENTED_ATTRIBUTE,
    segmented_ids,
)


def nodule_ids(scene) -> list[str]:
    """The segment IDs of the one segmentation node of ``scene``."""
    node = scene.GetFirstNodeByClass("vtkMRMLSegmentationNode")
    segmentation = node.GetSegmentation()
    return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]


def test_a_point_whose_segment_was_deleted_runs_again(run_control, logic, chest_scene):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)
    settle(host)
    assert segments(scene) == ["nodule 1"] and segmented_ids(seeds) == ids(seeds, 0)
    record = json.loads(seeds.GetAttribute(SEGMENTED_ATTRIBUTE))
    output = host._parameterNode.outputSegmentation
    role = f"{ROLE_PREFIX}1"  # a node reference to the output: Slicer keeps it up to date
    assert record == {seeds.GetNthControlPointID(0): [role, *nodule_ids(scene)]}
    assert seeds.GetNodeReference(role) is output

    # renamed in the Segment Editor: still its segment
    output.GetSegmentation().GetNthSegment(0).SetName("right upper lobe nodule")
    assert segmented_ids(seeds) == ids(seeds, 0)
    host.onSegmentButton()
    assert host.starts[1] == (None, None)  # refused before it started: no point to run
    assert errors[-1].startswith("Every placed point has its nodule segment already")

    # deleted (the Segment Editor's Remove): the point is Segment's to run again
    output.GetSegmentation().RemoveSegment(nodule_ids(scene)[0])
    assert segmented_ids(seeds) == set()
    host.onSegmentButton()
    settle(host)
    assert started(host)[-1] == "Point 'F-1'" and segments(scene) == ["nodule 1"]
    assert segmented_ids(seeds) == ids(seeds, 0) and len(errors) == 1, errors

    # its segmentation node removed from the scene: the same
    scene.RemoveNode(output)
    assert segmented_ids(seeds) == set()
    host._parameterNode.outputSegmentation = None
    host.onSegmentButton()
    settle(host)
    assert started(host)[3:] == ["Point 'F-1'"] and segments(scene) == ["nodule 1"]
    assert segmented_ids(seeds) == ids(seeds, 0) and len(errors) == 1, errors


def test_a_record_of_before_still_reads(run_control, logic, chest_scene):
    """Scenes saved before hold a JSON list of point IDs: those points stay segmented (which
    segment is not known), and the record follows deleted points as before."""
    _scene, _node, seeds = chest_scene
    for position in (NODULE_RAS, NODULE_RAS):
        seeds.AddControlPoint(*position)
    first, second = seeds.GetNthControlPointID(0), seeds.GetNthControlPointID(1)
    seeds.SetAttribute(SEGMENTED_ATTRIBUTE, json.dumps([first, second]))
    assert segmented_ids(seeds) == {first, second}
    seeds.RemoveNthControlPoint(1)
    host = clicks(run_control[0], logic, chest_scene)  # observing the list prunes the record
    assert host is not None and segmented_ids(seeds) == {first}
    seeds.SetAttribute(SEGMENTED_ATTRIBUTE, "not json")  # edited by hand: as if none had
    assert segmented_ids(seeds) == set()


def test_a_point_placed_while_cancelling_runs_after_the_cancel(run_control, logic, chest_scene):
    run_control, errors = run_control
    scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)  # F-1 runs
    place(host, seeds, AIR_RAS, NODULE_RAS)  # F-2, F-3 queued
    host.onSegmentButton()  # Cancel: F-1's run and the queue
    assert host.ui.statusLabel.text == "Cancelling..."
    place(host, seeds, NODULE_RAS)  # F-4, placed while it stops
    settle(host)
    assert started(host) == ["Point 'F-1'", "Point 'F-4' (4 of 4)"]
    cancelled = (
        "Cancelled; the scene was not changed: none of 3 points was segmented; 3 not run "
        "('F-1', 'F-2', 'F-3')."
    )
    assert any(line.startswith(cancelled) for line in host.log), host.log
    assert "Placed after Cancel, now run: 'F-4'." in host.log
    status = host.ui.statusLabel.text.splitlines()
    assert status[0].startswith("Done: "), status
    assert any(line.startswith(cancelled) for line in status[1:]), status  # not only the log
    assert segments(scene) == ["nodule 1"] and segmented_ids(seeds) == ids(seeds, 3)
    assert errors == []

    # Cancel pressed again while it stops: the points placed in between are cancelled too
    place(host, seeds, NODULE_RAS)  # F-5 runs
    host.onSegmentButton()
    place(host, seeds, NODULE_RAS)  # F-6
    host.onSegmentButton()  # Cancel again: F-6 with it
    settle(host)
    assert started(host)[2:] == ["Point 'F-5' (5 of 5)"] and not host._points
    assert "'F-5', 'F-6'" in host.ui.statusLabel.text.splitlines()[0], host.ui.statusLabel.text

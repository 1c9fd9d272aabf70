"""A refused nodule point keeps the last result's status in the panel (widget/point_batch.py,
run_control.py), on real MRML (slicer-core) with real background runs of the shipped nodule
model; the stand-ins are those of test_run_control_warnings.py.

Before, a point refused after a result (off the image, before its run: PointRefusedError; in
the air, by the engine) set the status text to "Failed; the scene was not changed." and its
reason: the result's status (its volumes, depth, device and warnings), still in the scene, was
gone from the panel. Now it stays first, and the refusal follows it, as the batch's refused
points follow the last result's status when a later point succeeds.
"""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_run_control_queue import (  # noqa: E402
    AIR_RAS,
    IN_AIR,
    NODULE_RAS,
    OFF_RAS,
    clicks,
    place,
    settle,
)

OFF = "Point 'F-2' (2 of 2) at (500.0, 3.0, 4.0) mm RAS lies outside the image"


def test_a_refused_point_keeps_the_last_results_status(run_control, logic, chest_scene):
    run_control, errors = run_control
    _scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, NODULE_RAS)  # F-1: segmented
    settle(host)
    result = host.ui.statusLabel.text
    assert result.startswith("Done: depth ") and "ml" in result, result

    place(host, seeds, OFF_RAS)  # F-2: refused before its run
    settle(host)
    status = host.ui.statusLabel.text
    assert status.startswith(result + "\n"), status  # the result's status, whole, first
    later = status[len(result) + 1 :].splitlines()
    assert later[0] == "Failed; the scene was not changed.", status
    assert later[1].startswith(f"Not segmented: {OFF}"), status
    assert len(errors) == 1 and errors[0].startswith(OFF)

    place(host, seeds, AIR_RAS)  # F-3: refused by the engine (its run fails)
    settle(host)
    status = host.ui.statusLabel.text
    assert status.startswith(result + "\n"), status  # still F-1's, once, not F-2's refusal
    assert "'F-2'" not in status, status
    assert f"\nNot segmented: Point 'F-3' (3 of 3) {IN_AIR}" in status, status
    assert len(errors) == 2


def test_without_an_earlier_result_a_refusal_is_the_status(run_control, logic, chest_scene):
    """No result yet, or one for another input volume: the refusal alone, as before."""
    run_control, _errors = run_control
    _scene, node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    place(host, seeds, OFF_RAS)
    settle(host)
    assert host.ui.statusLabel.text.startswith("Failed; the scene was not changed.\n")

    host._lastResult = (host.pointContext(), "Done: depth 3 on cpu. nodule 0.1 ml")
    other = slicer.vtkMRMLScalarVolumeNode()  # the panel's input volume is now another
    other.SetName("other")
    node.GetScene().AddNode(other)
    host.inputVolumes = lambda _manifest: [other]
    host.ui.statusLabel.text = ""
    assert host.pointFailedText() == "Failed; the scene was not changed."

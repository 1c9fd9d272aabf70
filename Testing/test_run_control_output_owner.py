"""The panel never adds one patient's nodules to another patient's segmentation
(widget/run_control.py ``releaseOtherVolumesOutput``, adapter/segmentation_binding.py).

After a nodule click succeeds, the output segmentation stays selected so that the next clicks
add to it. Before, switching the input to another patient's volume kept it selected, and the
next click added its nodule to the first patient's node in silence. Now a change of input
volume (or task) selects "Create new segmentation" when the output is bound to another volume,
and says so once; the click goes to a new node bound to the new volume, the old node is left
exactly as it was. Clicks on the same volume still add to the same node.

Real MRML (slicer-core) and real runs of the shipped nodule model through `unetpp serve`, with
the stand-ins of test_run_control_warnings.py (3D Slicer's GUI cannot run here).
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_adapter_logic import add_volume  # noqa: E402
from test_adapter_output_owner import node_state, reference_of  # noqa: E402
from test_click_check import NODULE, chest  # noqa: E402
from test_run_control_queue import NODULE_RAS, clicks, place, settle  # noqa: E402
from UNetPlusPlusLib.adapter import segmentation_writer  # noqa: E402
from UNetPlusPlusLib.engine.volume import Volume, volume_to_sitk  # noqa: E402

SHIFT_LPS = (50.0, -30.0, 20.0)  # patient B's origin: another place, another (cropped) grid
NODULE_B_RAS = (-(NODULE[0] + SHIFT_LPS[0]), -(NODULE[1] + SHIFT_LPS[1]), NODULE[2] + SHIFT_LPS[2])


@pytest.fixture()
def two_patients():
    """Volume 'patient A' (the test chest) and 'patient B': the chest cropped to 120 columns
    with its origin moved, so another grid and another origin; a point list."""
    scene = slicer.vtkMRMLScene()
    a = chest()
    a_node = add_volume(scene, volume_to_sitk(a), "patient A")
    b = Volume(a.array[..., :120].copy(), a.spacing, SHIFT_LPS, np.eye(3), ("CT",))
    b_node = add_volume(scene, volume_to_sitk(b), "patient B")
    seeds = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(seeds)
    return scene, a_node, b_node, seeds


def released_text(a_output, b_node) -> str:
    return (
        f"Output is now 'Create new segmentation': segmentation '{a_output.GetName()}' is not "
        f"for input volume '{b_node.GetName()}' (it was made for volume 'patient A'); it is "
        "left unchanged."
    )


def test_a_click_on_another_patient_goes_to_a_new_node(run_control, logic, two_patients):
    run_control, errors = run_control
    scene, a_node, b_node, seeds = two_patients
    host = clicks(run_control, logic, (scene, a_node, seeds))
    place(host, seeds, NODULE_RAS, NODULE_RAS)  # two clicks on patient A: one node
    settle(host)
    a_output = host._parameterNode.outputSegmentation
    assert segmentation_writer.segment_names(a_output) == ["nodule 1", "nodule 2"]
    before = node_state(a_output)

    host.inputVolumes = lambda _manifest: [b_node]  # the user picks patient B
    place(host, seeds, NODULE_B_RAS)
    settle(host)

    b_output = host._parameterNode.outputSegmentation
    assert b_output is not a_output and reference_of(b_output) is b_node
    assert segmentation_writer.segment_names(b_output) == ["nodule 1"]
    assert node_state(a_output) == before  # patient A's node: same segments, extents, voxels
    assert reference_of(a_output) is a_node and errors == []
    status = host.ui.statusLabel.text
    assert status.startswith("Done: ") and f"\nWarning: {released_text(a_output, b_node)}" in status
    assert host.log.count(f"warning: {released_text(a_output, b_node)}") == 1  # said once

    place(host, seeds, NODULE_B_RAS)  # patient B again: adds to B's node, nothing to say
    settle(host)
    assert host._parameterNode.outputSegmentation is b_output
    assert segmentation_writer.segment_names(b_output) == ["nodule 1", "nodule 2"]
    assert "Output is now" not in host.ui.statusLabel.text and node_state(a_output) == before


def test_a_volume_change_releases_the_output_at_once_and_says_so_once(
    run_control, logic, two_patients
):
    run_control, errors = run_control
    scene, a_node, b_node, seeds = two_patients
    host = clicks(run_control, logic, (scene, a_node, seeds))
    place(host, seeds, NODULE_RAS)
    settle(host)
    a_output = host._parameterNode.outputSegmentation
    assert host.releaseOtherVolumesOutput() is None  # same volume: the node stays chosen
    assert host._parameterNode.outputSegmentation is a_output

    host.inputVolumes = lambda _manifest: [b_node]  # as the panel's parameter-node observer
    assert host.releaseOtherVolumesOutput() == released_text(a_output, b_node)
    assert host._parameterNode.outputSegmentation is None
    assert host.ui.statusLabel.text == released_text(a_output, b_node)
    assert host.releaseOtherVolumesOutput() is None  # once
    assert len([line for line in host.log if "Output is now" in line]) == 1
    # a node the user then chooses on purpose stays chosen (the Logic writes a new node and
    # warns: test_adapter_output_owner.py)
    host._parameterNode.outputSegmentation = a_output
    assert host.releaseOtherVolumesOutput() is None
    assert host._parameterNode.outputSegmentation is a_output and errors == []

"""A labelmap volume node (vtkMRMLLabelMapVolumeNode: label values, such as a segmentation
exported to a labelmap) passed from a script as an input channel is refused, naming the channel
and the node, before any run (adapter/panel.py ``channel_input_problem``, which the Logic and
the panel share; the panel's selectors never list labelmaps). Before, its label values were
segmented as if they were the image (HU for a CT model), and a result was written without a
word. Real MRML (slicer-core), the tiny sphere model; the scene is untouched, no job starts."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from test_adapter_logic import scene_state  # noqa: E402
from test_adapter_point_prechecks import node_times  # noqa: E402
from test_adapter_prechecks import ball, refused  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.panel import channel_input_problem  # noqa: E402

REFUSAL = (
    "Volume 'ball-label' chosen for CT is a labelmap (label values, not an image the model "
    "can read); choose the image volume for CT."
)


def labelmap_of(scene, node, name: str):
    """A labelmap volume node with ``node``'s voxels and grid (as a script makes one)."""
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    image = vtk.vtkImageData()
    image.DeepCopy(node.GetImageData())
    labelmap.SetAndObserveImageData(image)
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    labelmap.SetIJKToRASMatrix(matrix)
    return labelmap


def test_a_labelmap_as_an_input_channel_is_refused_naming_it(sphere_model):
    scene = slicer.vtkMRMLScene()
    node = ball(scene, 2.0, "ball")
    labelmap = labelmap_of(scene, node, "ball-label")
    logic = SegmentationLogic(persistent=False)
    before, times = scene_state(scene), node_times(scene)
    try:
        for action in (
            lambda: logic.check_inputs([labelmap], sphere_model),
            lambda: logic.start_job([labelmap], sphere_model, device="cpu"),
            lambda: logic.segment([labelmap], sphere_model, device="cpu"),
        ):
            assert refused(action) == REFUSAL
        assert not logic._jobs
        assert scene_state(scene) == before and node_times(scene) == times
        assert logic.check_inputs([node], sphere_model) == []  # the image itself: accepted
    finally:
        logic.shutdown()


def test_each_channel_is_named():
    scene = slicer.vtkMRMLScene()
    node = ball(scene, 2.0, "T1")
    labelmap = labelmap_of(scene, node, "tumour labels")
    assert channel_input_problem(["T1", "FLAIR"], [node, node]).startswith(
        "Channels T1 and FLAIR use the same volume 'T1'"
    )
    assert channel_input_problem(["T1", "FLAIR"], [node, labelmap]) == (
        "Volume 'tumour labels' chosen for FLAIR is a labelmap (label values, not an image the "
        "model can read); choose the image volume for FLAIR."
    )
    assert channel_input_problem(["T1"], [node]) is None

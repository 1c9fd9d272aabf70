"""A sheared volume in Slicer gets the remedy that fits its cause (polish 6): under a shearing
linear transform, resample it through the transform (hardening keeps the shear: checked here
with the node's own ApplyTransformMatrix, what Harden transform does for a linear transform);
a grid sheared in the node itself, resample it; a non-linear transform, harden it (which
resamples). The engine's "resample it (for example in 3D Slicer)" said neither."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
import vtk  # noqa: E402
from test_adapter_logic import add_volume  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.registry import find_model  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402


def _scene():
    scene = slicer.vtkMRMLScene()
    array = np.full((20, 30, 30), -1000, dtype=np.int16)
    array[5:15, 8:22, 8:22] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.0, 1.0, 2.0))
    return scene, add_volume(scene, image, "CT")


def _shear() -> vtk.vtkMatrix4x4:
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 1, 0.3)  # x moves with y: axes 16.7 degrees from perpendicular
    return matrix


def _refusal(node) -> str:
    with pytest.raises(UNetPlusPlusError) as caught:
        SegmentationLogic().check_inputs([node], find_model("liver"))
    return str(caught.value)


def test_a_shearing_transform_says_resample_through_it_not_harden():
    scene, node = _scene()
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Tilt")
    transform.SetMatrixTransformToParent(_shear())
    node.SetAndObserveTransformNodeID(transform.GetID())
    message = _refusal(node)
    assert "'CT' is under the transform 'Tilt', which shears it" in message, message
    assert "Resample Scalar/Vector/DWI Volume" in message and "keeps the shear" in message
    assert "for example in 3D Slicer" not in message, message
    node.SetAndObserveTransformNodeID(None)
    assert SegmentationLogic().check_inputs([node], find_model("liver")) is not None


def test_a_grid_sheared_in_the_node_itself_says_resample_it():
    _, node = _scene()
    node.ApplyTransformMatrix(_shear())  # as Harden transform does: the shear stays
    message = _refusal(node)
    assert "'CT' has a sheared voxel grid" in message, message
    assert "harden" not in message.lower() and "Crop Volume" in message, message
    assert "for example in 3D Slicer" not in message, message


def test_a_zero_spacing_is_named_as_such_not_as_a_shear():
    """Before, a spacing of 0 along k (or a transform that flattens the volume) was refused as
    "a sheared voxel grid (axes nan degrees from perpendicular)", with numpy's divide warnings."""
    scene, node = _scene()
    node.SetSpacing(1.0, 1.0, 0.0)
    assert _refusal(node).startswith("Volume 'CT' has a voxel spacing of 1 x 1 x 0 mm: a zero")
    node.SetSpacing(1.0, 1.0, 2.0)
    flatten = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "Flatten")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(2, 2, 0.0)
    flatten.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(flatten.GetID())
    assert _refusal(node).startswith(
        "Volume 'CT' under transform 'Flatten' has a voxel spacing of 1 x 1 x 0 mm"
    )

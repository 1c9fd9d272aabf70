"""A volume cropped or resampled in place after a segmentation was made for it
(adapter/segmentation_binding.py, segmentation_writer.write_segments), on real MRML
(slicer-core), an oblique volume, no model run (cheap).

The volume node is the same, so the segmentation's reference still names it, but its grid is
new while the segmentation's reference geometry (the grid its segments are edited and exported
on) is the old one. Before, new segments went into that node on the new grid, beside a
reference geometry that no longer matched; now the result goes into a new node bound to the
volume's grid now, with the reason, and the old node is left exactly as it was.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from helpers import rotation_matrix  # noqa: E402
from test_adapter_output_owner import node_state, reference_of  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_binding import (  # noqa: E402
    other_volume_binding,
    reference_grid,
    volume_grid,
)
from UNetPlusPlusLib.adapter.segmentation_writer import write_segments  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume  # noqa: E402

SPACING, DIRECTION = (1.5, 1.0, 2.0), rotation_matrix((20.0, -15.0, 30.0))


def labels_on(volume: Volume, labels) -> LabelVolume:
    """A 3-voxel-radius ball of label 1 at the centre of ``volume``'s grid."""
    z, y, x = np.indices(volume.array.shape[1:])
    centre = [(n - 1) / 2 for n in volume.array.shape[1:]]
    ball = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 9
    return LabelVolume(ball.astype(np.uint8), volume.spacing, volume.origin, DIRECTION, labels)


def test_a_volume_cropped_in_place_gets_a_new_segmentation_node(sphere_model):
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole = Volume(np.zeros((1, 12, 14, 16), np.float32), SPACING, (10.0, -20.0, 30.0), DIRECTION)
    node = geometry.volume_node_from_volume(scene, whole, "chest")
    first = write_segments(labels_on(whole, labels), node)
    again = write_segments(labels_on(whole, labels), node, first, replace_existing=True)
    assert again is first  # the same grid: the node takes the volume's segments
    before = node_state(first)

    # cropped in place: the same node, voxels [2:10, 3:12, 4:14] (z, y, x) of the oblique grid
    offset = DIRECTION @ (np.array(SPACING) * (4, 3, 2))
    cropped = Volume(
        whole.array[:, 2:10, 3:12, 4:14].copy(), SPACING, tuple(whole.origin + offset), DIRECTION
    )
    new = geometry.volume_node_from_volume(slicer.vtkMRMLScene(), cropped, "crop")
    ijk_to_ras = vtk.vtkMatrix4x4()
    new.GetIJKToRASMatrix(ijk_to_ras)
    node.SetAndObserveImageData(new.GetImageData())
    node.SetIJKToRASMatrix(ijk_to_ras)

    rebound: list = []
    second = write_segments(
        labels_on(cropped, labels), node, first, replace_existing=True, rebound=rebound
    )
    assert second is not first and node_state(first) == before  # the old node as it was
    assert rebound == [
        (
            first.GetName(),
            "it was made for volume 'chest' on another grid (16 x 14 x 12 voxels from "
            f"({', '.join(f'{v:.1f}' for v in geometry.lps_to_ras(whole.origin))}) mm RAS); "
            "the volume was cropped or resampled since",
        )
    ], rebound
    # the new node: bound to the volume's grid now, its segment on exactly those voxels
    assert reference_of(second) is node
    matrix, counts = reference_grid(second)
    own_matrix, own_counts = volume_grid(node)
    assert counts == own_counts == (10, 9, 8) and np.allclose(matrix, own_matrix, atol=1e-9)
    segmentation = second.GetSegmentation()
    image = segmentation.GetSegment(segmentation.GetNthSegmentID(0)).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    )
    assert np.allclose(geometry.image_to_world_matrix(image), own_matrix, atol=1e-9)
    mask = geometry.array_from_oriented_image(image, cropped.array.shape[1:])
    assert np.array_equal(mask == 1, labels_on(cropped, labels).array == 1)


def test_a_volume_moved_since_is_said_to_be_moved_not_cropped(sphere_model):
    """The same voxels elsewhere: a volume put under a transform (a registration) after its
    segmentation was made, or its origin edited, is said to be moved (by that transform), not
    "cropped or resampled" as before; the node is still another grid's, and left as it was."""
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole = Volume(np.zeros((1, 12, 14, 16), np.float32), SPACING, (10.0, -20.0, 30.0), DIRECTION)
    node = geometry.volume_node_from_volume(scene, whole, "chest")
    first = write_segments(labels_on(whole, labels), node)
    before = node_state(first)
    origin = ", ".join(f"{v:.1f}" for v in geometry.lps_to_ras(whole.origin))
    old = "it was made for volume 'chest' on another grid (16 x 14 x 12 voxels from "
    old += f"({origin}) mm RAS); "

    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    moved = vtk.vtkMatrix4x4()
    for row, (r, t) in enumerate(zip(rotation_matrix((0.0, 0.0, 10.0)), (12.5, -3.0, 4.0))):
        for column in range(3):
            moved.SetElement(row, column, r[column])
        moved.SetElement(row, 3, t)
    transform.SetMatrixTransformToParent(moved)
    node.SetAndObserveTransformNodeID(transform.GetID())
    assert other_volume_binding(first, node) == (
        old + "the volume was moved by transform 'registration' since"
    )
    rebound: list = []
    second = write_segments(labels_on(whole, labels), node, first, rebound=rebound)
    assert second is not first and node_state(first) == before
    assert rebound == [
        (first.GetName(), old + "the volume was moved by transform 'registration' since")
    ]

    scene.RemoveNode(second)
    node.SetAndObserveTransformNodeID(None)  # back where it was: the node's again
    assert other_volume_binding(first, node) is None
    node.SetOrigin(*(np.array(node.GetOrigin()) + (0.0, 0.0, 7.5)))  # its origin edited
    assert other_volume_binding(first, node) == (
        old + "the volume was moved since (its origin or axes were changed)"
    )
    transform.SetMatrixTransformToParent(vtk.vtkMatrix4x4())  # under an identity transform
    node.SetAndObserveTransformNodeID(transform.GetID())
    assert other_volume_binding(first, node) == (
        old + "the volume was moved since (it is under transform 'registration')"
    )

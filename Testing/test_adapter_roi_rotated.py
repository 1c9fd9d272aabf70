"""A rotated markups ROI (adapter/roi.py ``oriented_box``, ``clear_outside``) on real MRML
(slicer-core), with the tiny sphere model: the background run (the panel's) and the blocking one.

The engine runs on the ROI's axis-aligned world box. Before, for an ROI rotated with its handles
that box's corners were segmented too: a ball 17 mm outside the rotated ROI came back as a
segment, though "everything outside [the ROI] stays background" (docs/SLICER.md). Now voxels
outside the ROI are background; those inside are segmented as before.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import SimpleITK as sitk  # noqa: E402
import vtk  # noqa: E402
from helpers import make_sphere_image, sphere_mask  # noqa: E402
from test_adapter_job import mask_of  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

TIMEOUT_S = 180
INSIDE_RAS, OUTSIDE_RAS = (0.0, 0.0, 30.0), (30.0, 30.0, 30.0)


def two_balls(scene):
    """Ball A (6 mm) at the ROI's centre; ball B (5 mm) 42 mm from it along the ROI's x axis,
    17 mm outside the rotated ROI but inside its axis-aligned world box."""
    image = make_sphere_image((48, 48, 16), (2.0, 2.0, 2.0), (-48.0, -48.0, 14.0), np.eye(3),
                              center_lps=(0.0, 0.0, 30.0), radius_mm=6.0)  # fmt: skip
    array = sitk.GetArrayFromImage(image)
    array[sphere_mask(image, (-30.0, -30.0, 30.0), 5.0)] = array.max()  # B at RAS (30, 30, 30)
    ball_b = sitk.GetImageFromArray(array)
    ball_b.CopyInformation(image)
    return geometry.volume_node_from_volume(scene, volume_from_sitk([ball_b]), "CT")


def rotated_roi(scene):
    roi = slicer.vtkMRMLMarkupsROINode()
    scene.AddNode(roi)
    transform = vtk.vtkTransform()
    transform.Translate(*INSIDE_RAS)
    transform.RotateZ(45)  # about S, as with the ROI's rotation handle
    roi.SetAndObserveObjectToNodeMatrix(transform.GetMatrix())
    roi.SetSize(50.0, 50.0, 20.0)
    return roi


def labelled_at(node, ras) -> bool:
    segmentation = node.GetSegmentation()
    labels = segmentation.GetSegment(segmentation.GetNthSegmentID(0)).GetRepresentation(
        "Binary labelmap"
    )
    matrix = vtk.vtkMatrix4x4()
    labels.GetImageToWorldMatrix(matrix)
    to_ijk = np.linalg.inv([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    i, j, k = np.round(to_ijk @ (*ras, 1.0))[:3].astype(int)
    x0, _, y0, _, z0, _ = labels.GetExtent()
    array = mask_of(node)
    inside = 0 <= k - z0 < array.shape[0] and 0 <= j - y0 < array.shape[1]
    return bool(inside and 0 <= i - x0 < array.shape[2] and array[k - z0, j - y0, i - x0])


def test_a_rotated_roi_leaves_its_axis_aligned_corners_background(sphere_model, logic):
    scene = slicer.vtkMRMLScene()
    volume, roi = two_balls(scene), rotated_roi(scene)
    bounds = [0.0] * 6
    roi.GetRASBounds(bounds)
    assert bounds[1] > OUTSIDE_RAS[0] + 5 and bounds[3] > OUTSIDE_RAS[1] + 5  # B in the box

    running = logic.start_job([volume], sphere_model, device="cpu", roi_node=roi)
    running.wait(timeout=TIMEOUT_S)
    assert running.state == "succeeded", running.error
    blocking = logic.segment([volume], sphere_model, device="cpu", roi_node=roi)

    for node in (running.output, blocking):
        assert labelled_at(node, INSIDE_RAS)  # ball A, inside the ROI: segmented
        assert not labelled_at(node, OUTSIDE_RAS)  # ball B, outside it: background


def test_an_inside_out_roi_is_refused_before_any_run(sphere_model, logic):
    """Before, an ROI set to 'Inside out' (its region: everything but its box) was run on its
    box, the very part the user had excluded, without a word."""
    scene = slicer.vtkMRMLScene()
    volume, roi = two_balls(scene), rotated_roi(scene)
    roi.SetInsideOut(True)
    nodes_before = scene.GetNumberOfNodes()
    for run in (logic.start_job, logic.segment):
        with pytest.raises(UNetPlusPlusError, match="ROI 'R' is inside-out"):
            run([volume], sphere_model, device="cpu", roi_node=roi)
    assert scene.GetNumberOfNodes() == nodes_before


def test_a_rotated_roi_that_holds_nothing_says_so(sphere_model, logic):
    """Only ball B, in the corner of the rotated ROI's axis-aligned box: clearing it leaves an
    empty result, which now comes with a warning naming the ROI, not in silence."""
    scene = slicer.vtkMRMLScene()
    image = make_sphere_image((48, 48, 16), (2.0, 2.0, 2.0), (-48.0, -48.0, 14.0), np.eye(3),
                              center_lps=(-30.0, -30.0, 30.0), radius_mm=5.0)  # fmt: skip
    volume = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    roi = rotated_roi(scene)
    roi.SetName("R")
    running = logic.start_job([volume], sphere_model, device="cpu", roi_node=roi)
    running.wait(timeout=TIMEOUT_S)
    assert running.state == "succeeded", running.error
    blocking = logic.segment([volume], sphere_model, device="cpu", roi_node=roi)
    said = "Nothing was found inside ROI 'R': what the model found lies only in the corners"
    assert any(said in w for w in running.result["warnings"]), running.result["warnings"]
    assert any(said in w for w in logic.warnings), logic.warnings
    for node in (running.output, blocking):
        assert not mask_of(node).any()


def test_clear_outside_is_the_rotated_roi_in_world_ras_on_an_oblique_grid():
    """``oriented_box`` hands the engine an LPS box (centre, unit axes, half sizes in mm); what
    it clears on an oblique label grid is what lies outside the ROI in world RAS, reckoned here
    from SimpleITK's voxel positions and the ROI's own object-to-world matrix, with a parent
    transform that rotates and scales (the ROI's size is in object units)."""
    from helpers import physical_points, rotation_matrix
    from UNetPlusPlusLib.adapter.roi import clear_outside, oriented_box
    from UNetPlusPlusLib.engine.volume import LabelVolume

    scene = slicer.vtkMRMLScene()
    roi = rotated_roi(scene)
    roi.SetSize(30.0, 16.0, 10.0)
    parent = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(parent)
    to_parent = vtk.vtkTransform()
    to_parent.Translate(4.0, -3.0, 2.0)
    to_parent.RotateX(25)
    to_parent.Scale(1.5, 1.0, 0.8)
    parent.SetMatrixTransformToParent(to_parent.GetMatrix())
    roi.SetAndObserveTransformNodeID(parent.GetID())

    image = make_sphere_image((40, 36, 30), (1.5, 1.2, 1.8), (-30.0, -25.0, 5.0),
                              rotation_matrix((10, -25, 35)), radius_mm=1.0)  # fmt: skip
    points_ras = geometry.lps_to_ras(physical_points(image))  # (z, y, x, 3), from SimpleITK
    matrix = roi.GetObjectToWorldMatrix()
    world_to_object = np.linalg.inv([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    local = points_ras @ world_to_object[:3, :3].T + world_to_object[:3, 3]
    inside = np.all(np.abs(local) <= np.array(roi.GetSize()) / 2.0, axis=-1)
    assert 100 < inside.sum() < inside.size / 3

    array = np.full(inside.shape, 2, dtype=np.uint8)
    labels = LabelVolume(array, image.GetSpacing(), image.GetOrigin(), image.GetDirection())
    box = oriented_box(roi)
    assert box is not None
    assert clear_outside(labels, box) == int((~inside).sum())
    np.testing.assert_array_equal(labels.array, np.where(inside, 2, 0))

    roi.SetAndObserveTransformNodeID(None)
    roi.SetAndObserveObjectToNodeMatrix(vtk.vtkMatrix4x4())  # axis-aligned: nothing to clear
    assert oriented_box(roi) is None
    assert clear_outside(labels, None) == 0

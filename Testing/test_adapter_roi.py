"""The ROI (issue 10, defect 9) on real MRML: an ROI as the panel's selector creates it is empty;
"Fit ROI to volume" makes it hold the whole (oblique) volume, so Segment no longer reports "ROI
is empty", and a run inside the fitted ROI segments the sphere."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import make_sphere_image, rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.roi import fit_if_empty, fit_roi_to_volume, roi_is_empty  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402


@pytest.fixture()
def scene_and_volume():
    scene = slicer.vtkMRMLScene()
    image = make_sphere_image(
        (24, 20, 16), (1.7, 2.1, 2.6), (-15.0, 22.0, 40.0), rotation_matrix((12, -8, 25)),
        radius_mm=9.0,
    )  # fmt: skip
    return scene, geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")


def new_roi_like_the_selector(scene):
    """What qMRMLNodeComboBox's "Create new ROI" adds: a markups ROI without control points."""
    roi = slicer.vtkMRMLMarkupsROINode()
    roi.SetName(scene.GenerateUniqueName("UNet++ ROI"))
    scene.AddNode(roi)
    return roi


def test_a_new_roi_is_empty_and_the_engine_box_refuses_it(scene_and_volume):
    scene, _volume = scene_and_volume
    roi = new_roi_like_the_selector(scene)
    assert roi_is_empty(roi)
    with pytest.raises(UNetPlusPlusError, match="is empty"):
        geometry.roi_corners_ras(roi)


def test_fit_roi_to_volume_holds_every_voxel_centre(scene_and_volume):
    scene, volume = scene_and_volume
    roi = new_roi_like_the_selector(scene)
    fit_roi_to_volume(roi, volume)
    assert not roi_is_empty(roi)
    low, high = geometry.roi_corners_ras(roi)  # no "ROI is empty" any more
    ijk_to_ras = geometry.world_ijk_to_ras(volume)
    nx, ny, nz = volume.GetImageData().GetDimensions()
    corners = np.array(
        [[i, j, k, 1.0] for i in (0, nx - 1) for j in (0, ny - 1) for k in (0, nz - 1)]
    )
    ras = (ijk_to_ras @ corners.T).T[:, :3]
    assert np.all(ras >= low - 1e-6) and np.all(ras <= high + 1e-6)


def test_segment_inside_the_fitted_roi_finds_the_sphere(scene_and_volume, sphere_model):
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    scene, volume = scene_and_volume
    roi = new_roi_like_the_selector(scene)
    fit_roi_to_volume(roi, volume)
    node = SegmentationLogic().segment([volume], sphere_model, depth=1, device="cpu", roi_node=roi)
    segmentation = node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName("liver")
    labelmap = segmentation.GetSegment(segment_id).GetRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName()
    )
    assert geometry.array_from_oriented_image(labelmap).sum() > 100


def test_segment_fits_an_unplaced_roi_and_leaves_a_placed_one(scene_and_volume):
    """What Segment does first (UNetPlusPlusPanel.fitEmptyRoi): the selector's new ROI is
    fitted; an ROI the user placed keeps its box."""
    scene, volume = scene_and_volume
    unplaced = new_roi_like_the_selector(scene)
    assert fit_if_empty(unplaced, volume) is True
    geometry.roi_corners_ras(unplaced)  # no "ROI is empty"
    placed = new_roi_like_the_selector(scene)
    placed.SetCenterWorld(-10.0, 20.0, 40.0)
    placed.SetSizeWorld(8.0, 9.0, 10.0)
    before = geometry.roi_corners_ras(placed)
    assert fit_if_empty(placed, volume) is False
    assert all(np.allclose(a, b) for a, b in zip(before, geometry.roi_corners_ras(placed)))
    assert fit_if_empty(None, volume) is False

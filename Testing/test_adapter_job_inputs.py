"""Background jobs write each input volume in its own voxel type; the engine process casts."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import SimpleITK as sitk  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.volume import volume_from_sitk  # noqa: E402


def test_an_int16_ct_is_written_as_int16_and_segments_as_the_blocking_run(sphere_model):
    image = sitk.Cast(
        make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (3.0, -4.0, 5.0), np.eye(3), 9.0),
        sitk.sitkInt16,
    )
    scene = slicer.vtkMRMLScene()
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    # volume_node_from_volume stores float32: give the node int16 voxels, as a CT from DICOM has
    from vtkmodules.util import numpy_support

    voxels = sitk.GetArrayFromImage(image).ravel()
    node.GetImageData().GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels, deep=True))
    assert geometry.array_from_volume_node(node).dtype == np.int16
    logic = SegmentationLogic()

    running = logic.start_job([node], sphere_model, device="cpu")
    written = sitk.ReadImage(str(running.workdir / "input_0.nrrd"))
    assert written.GetPixelID() == sitk.sitkInt16  # no float32 copy, half the bytes
    assert np.array_equal(sitk.GetArrayFromImage(written), sitk.GetArrayFromImage(image))
    running.wait(timeout=180)

    assert running.state == job.SUCCEEDED, running.error
    blocking = logic.segment([node], sphere_model, device="cpu")
    ours = running.output.GetSegmentation()
    theirs = blocking.GetSegmentation()
    name = "liver"
    a = ours.GetSegment(ours.GetSegmentIdBySegmentName(name))
    b = theirs.GetSegment(theirs.GetSegmentIdBySegmentName(name))
    labelmap = "Binary labelmap"
    mask_a = geometry.array_from_oriented_image(a.GetRepresentation(labelmap))
    mask_b = geometry.array_from_oriented_image(b.GetRepresentation(labelmap))
    assert mask_a.sum() > 100 and np.array_equal(mask_a > 0, mask_b > 0)

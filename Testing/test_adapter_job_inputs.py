"""Background jobs write each input volume in its own voxel type; the engine process casts."""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")

import SimpleITK as sitk  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402


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

    running = logic.start_job([node], sphere_model, device="cpu", persistent=False)
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


def _int16_node(scene, image: sitk.Image):
    from vtkmodules.util import numpy_support

    node = geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")
    voxels = sitk.GetArrayFromImage(sitk.Cast(image, sitk.sitkInt16)).ravel()
    node.GetImageData().GetPointData().SetScalars(numpy_support.numpy_to_vtk(voxels, deep=True))
    assert geometry.array_from_volume_node(node).dtype == np.int16
    return node


def test_input_checks_on_an_int16_ct_make_no_float_copy_and_decide_as_the_engine(sphere_model):
    """The Logic's input sanity reads the node's int16 voxels as they are (issue 10, defect 6):
    its peak allocation stays far below one float32 copy of the volume, and it refuses and
    warns exactly as the engine's check_volume does on the float32 volume."""
    import tracemalloc

    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.sanity import check_volume
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    manifest = ModelManifest.load(sphere_model)
    modalities = [c.modality for c in manifest.channels]
    big = sitk.Image([160, 160, 120], sitk.sitkInt16)
    big.SetSpacing((1.0, 1.0, 2.0))
    big = big + 40  # soft tissue everywhere ...
    big[20:60, 20:60, 10:50] = 300  # ... and a bright block: a valid input for this model
    scene = slicer.vtkMRMLScene()
    node = _int16_node(scene, big)
    logic = SegmentationLogic()

    tracemalloc.start()
    try:
        warnings = logic.check_inputs([node], manifest)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    float_copy = 160 * 160 * 120 * 4
    assert peak < float_copy / 4, f"{peak} bytes traced: a float32 copy is {float_copy}"
    assert warnings == check_volume(volume_from_sitk([big]), modalities)

    constant = _int16_node(scene, big * 0 + 7)
    with pytest.raises(UNetPlusPlusError, match=r"'CT' is constant \(every voxel 7\)"):
        logic.check_inputs([constant], manifest)
    with pytest.raises(UNetPlusPlusError, match=r"is constant \(every voxel 7\)"):
        check_volume(volume_from_sitk([big * 0 + 7]), modalities)


def test_a_volume_node_without_image_data_is_one_clear_error_before_any_start(sphere_model):
    """start_job on a volume node whose image data is gone (a failed load, a scene saved
    without its file) raised AttributeError ("'NoneType' object has no attribute 'GetMTime'")
    from the input cache key, where the blocking run says 'has no image data' (tester 12)."""
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    scene = slicer.vtkMRMLScene()
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("Lost")
    scene.AddNode(node)
    logic = SegmentationLogic()
    try:
        for run in (logic.segment, logic.start_job):
            with pytest.raises(UNetPlusPlusError, match="Volume 'Lost' has no image data"):
                run([node], sphere_model, device="cpu")
        assert not logic._jobs  # nothing was started
    finally:
        logic.shutdown()

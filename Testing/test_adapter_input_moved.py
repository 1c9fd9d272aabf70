"""An input volume moved, cropped, resampled or its voxels edited while its background run goes
on (adapter/logic.py ``start_job``, segmentation_binding.changed_during_run), on real MRML
(slicer-core).

Before, the result was written where the volume's voxels were when the run started: a volume put
under a registration transform (or its origin edited) during the run got its liver 25 mm off,
and the job said "Segmentation finished." with no warning. Now the job fails with one message
naming the change, and the scene is as it was. Likewise for voxels edited in place
(``arrayFromVolume(node)[...] = ...; arrayFromVolumeModified(node)``: the same grid): before,
the result of the old voxels was written as if it were that of the new ones.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, job  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_binding import (  # noqa: E402
    changed_during_run,
    volume_grid,
)
from UNetPlusPlusLib.adapter.voxel_version import voxels_version  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402

TIMEOUT_S = 180


def ball_volume(scene):
    image = make_sphere_image((20, 18, 14), (2.0, 2.0, 2.5), (-15.0, 22.0, 40.0), np.eye(3))
    return geometry.volume_node_from_volume(scene, volume_from_sitk([image]), "CT")


def test_a_volume_moved_by_a_transform_during_the_run_gets_no_misplaced_result(sphere_model, logic):
    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    running = logic.start_job([volume], sphere_model, device="cpu")
    # the user registers the volume while the engine runs: 25 mm to the right
    transform = slicer.vtkMRMLLinearTransformNode()
    transform.SetName("registration")
    scene.AddNode(transform)
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 25.0)
    transform.SetMatrixTransformToParent(matrix)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    nodes_before = scene.GetNumberOfNodes()

    events = running.wait(timeout=TIMEOUT_S)

    assert running.state == job.FAILED and running.output is None
    assert events[-1].state == job.FAILED
    assert running.error.startswith(
        "Volume 'CT' changed during the run: the volume was moved by transform 'registration' "
        "since the run started; its result, for where its voxels were then, was not written"
    )
    assert scene.GetNumberOfNodes() == nodes_before  # no segmentation node


def test_an_edited_origin_or_a_crop_is_a_change_and_a_rename_is_not():
    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    grids = [volume_grid(volume)]
    volume.SetName("renamed")
    assert changed_during_run([volume], grids) is None

    volume.SetOrigin(np.add(volume.GetOrigin(), (0.5, 0.0, 0.0)))
    assert "moved since the run started (its origin or axes were changed)" in changed_during_run(
        [volume], grids
    )

    volume.SetOrigin(np.add(volume.GetOrigin(), (-0.5, 0.0, 0.0)))
    crop = vtk.vtkExtractVOI()
    crop.SetInputData(volume.GetImageData())
    crop.SetVOI(2, 17, 0, 17, 0, 13)
    crop.Update()
    volume.SetAndObserveImageData(crop.GetOutput())
    assert "cropped or resampled since the run started" in changed_during_run([volume], grids)

    scene.RemoveNode(volume)  # the writer's own error ("no longer in the scene")
    assert changed_during_run([volume], grids) is None


EDITED = (
    "Volume 'CT' changed during the run: its voxels were edited since the run started; its "
    "result, for its voxels then, was not written and the scene is as it was. Click Segment to "
    "segment it as it is now."
)


def test_voxels_edited_in_place_during_the_run_get_no_result(sphere_model, logic):
    from slicer.util import arrayFromVolume, arrayFromVolumeModified

    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    running = logic.start_job([volume], sphere_model, device="cpu")
    voxels = arrayFromVolume(volume)  # a script (or an editor) changes the CT in place
    voxels[voxels.shape[0] // 2 :] = -1000
    arrayFromVolumeModified(volume)
    edited = voxels.copy()
    nodes_before = scene.GetNumberOfNodes()

    events = running.wait(timeout=TIMEOUT_S)

    assert running.state == job.FAILED and running.output is None, running.log
    assert events[-1].state == job.FAILED
    assert running.error == EDITED
    assert scene.GetNumberOfNodes() == nodes_before  # no segmentation node
    assert np.array_equal(arrayFromVolume(volume), edited)  # the user's edit stays

    again = logic.start_job([volume], sphere_model, device="cpu")  # as it is now: written
    again.wait(timeout=TIMEOUT_S)
    assert again.state == job.SUCCEEDED and again.output is not None, again.log


def test_a_voxel_edit_is_a_change_and_display_or_name_changes_are_not():
    from slicer.util import arrayFromVolume, arrayFromVolumeModified

    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    volume.CreateDefaultDisplayNodes()
    grids, times = [volume_grid(volume)], [voxels_version(volume)]
    volume.SetName("CT")
    volume.GetDisplayNode().SetAutoWindowLevel(False)
    volume.GetDisplayNode().SetWindowLevel(400.0, 40.0)
    volume.GetImageData().GetScalarRange()  # what the display computes (cached, no edit)
    assert changed_during_run([volume], grids, times) is None

    arrayFromVolume(volume)[0, 0, 0] += 1  # one voxel
    arrayFromVolumeModified(volume)
    assert changed_during_run([volume], grids, times) == EDITED
    assert changed_during_run([volume], grids) is None  # without times: the grid only

    times = [voxels_version(volume)]
    replaced = vtk.vtkImageData()  # new image data on the same grid, one voxel changed
    replaced.DeepCopy(volume.GetImageData())
    replaced.GetPointData().GetScalars().SetTuple1(7, -999.0)
    volume.SetAndObserveImageData(replaced)
    assert changed_during_run([volume], grids, times) == EDITED


def test_what_slicer_does_with_a_volume_during_a_run_is_not_an_edit(tmp_path):
    """What Slicer (and this module) does with the input volume while a run goes on reads its
    voxels and changes the node, not the image data: its display (slice views reslice it, the
    automatic window/level takes its histogram), a segmentation made on it (the run's output),
    a scene save writing it, Segment Editor's copy of it as the source volume. None of these
    is refused as a voxel edit (the node's own modification time, which they advance, would
    refuse a run for each)."""
    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    grids, times = [volume_grid(volume)], [voxels_version(volume)]
    node_time = volume.GetMTime()

    volume.CreateDefaultDisplayNodes()
    reslice = vtk.vtkImageReslice()  # a slice view
    reslice.SetInputConnection(volume.GetImageDataConnection())
    reslice.SetOutputExtent(0, 9, 0, 9, 0, 0)
    reslice.Update()
    statistics = vtk.vtkImageHistogramStatistics()  # the automatic window/level
    statistics.SetInputConnection(volume.GetImageDataConnection())
    statistics.Update()
    output = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "output")
    output.SetReferenceImageGeometryParameterFromVolumeNode(volume)
    output.CreateDefaultDisplayNodes()
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()  # a scene save
    storage.SetFileName(str(tmp_path / "CT.nrrd"))
    assert storage.WriteData(volume)
    source = slicer.vtkOrientedImageData()  # Segment Editor's source volume
    source.DeepCopy(volume.GetImageData())

    assert volume.GetMTime() != node_time  # the node did change (its display node)
    assert changed_during_run([volume], grids, times) is None


def test_a_modified_call_that_changes_no_voxel_is_not_an_edit():
    """Before, the refusal keyed on the image data's modification time alone: a script calling
    ``arrayFromVolumeModified`` after only reading, ``updateVolumeFromArray`` with the same
    voxels, ``GetImageData().Modified()``, or the same voxels set as new image data, each
    refused the run as "its voxels were edited". Now the content decides (voxel_version.py)."""
    from slicer.util import arrayFromVolume, arrayFromVolumeModified, updateVolumeFromArray

    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    volume.CreateDefaultDisplayNodes()
    grids, versions = [volume_grid(volume)], [voxels_version(volume)]
    time = volume.GetImageData().GetMTime()

    volume.Modified()
    volume.SetAttribute("reviewed", "yes")
    volume.GetDisplayNode().SetWindowLevel(300.0, 30.0)
    arrayFromVolumeModified(volume)  # read, not changed
    updateVolumeFromArray(volume, arrayFromVolume(volume).copy())
    volume.GetImageData().Modified()
    same = vtk.vtkImageData()
    same.DeepCopy(volume.GetImageData())
    volume.SetAndObserveImageData(same)
    assert volume.GetImageData().GetMTime() != time  # what the refusal keyed on before
    assert changed_during_run([volume], grids, versions) is None

    voxels = arrayFromVolume(volume)
    voxels[3, 4, 5] += 1  # one voxel edited, then set back: the run's voxels again
    arrayFromVolumeModified(volume)
    assert changed_during_run([volume], grids, versions) == EDITED
    voxels[3, 4, 5] -= 1
    arrayFromVolumeModified(volume)
    assert changed_during_run([volume], grids, versions) is None


def test_a_run_touched_by_modified_calls_without_a_voxel_change_is_written(sphere_model, logic):
    """The same on a background run: ``arrayFromVolumeModified`` with no voxel changed while
    the engine runs (as a script or another module may call it) does not refuse its result."""
    from slicer.util import arrayFromVolumeModified

    scene = slicer.vtkMRMLScene()
    volume = ball_volume(scene)
    running = logic.start_job([volume], sphere_model, device="cpu")
    arrayFromVolumeModified(volume)
    volume.GetImageData().Modified()

    running.wait(timeout=TIMEOUT_S)

    assert running.state == job.SUCCEEDED and running.output is not None, running.error
    assert running.output.GetSegmentation().GetNumberOfSegments() > 0

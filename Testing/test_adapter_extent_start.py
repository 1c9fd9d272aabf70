"""A volume whose image extent does not start at IJK index 0 (a voxel-based crop kept in the
input's index space, as Crop Volume made it before ``ShiftImageDataExtentToZeroStart`` and
as a script's vtkImageConstantPad / vtkExtractVOI makes it) is the same voxels as that crop
indexed from 0: the grid logic decides alike and the result lands on the same voxels. On real
MRML (slicer-core), an oblique volume, the grids set by Slicer's own
vtkSlicerSegmentationGeometryLogic; no model run (cheap).

Slicer's IJK-to-RAS matrix is at index (0, 0, 0), not at the first voxel
(vtkSegmentationConverter::SerializeImageGeometry keeps the extent; "Specify geometry"
rounds extents from index 0: ``ceil(factor * extent start)``). Before, a "Specify geometry"
grid of such a volume (isotropic, or oversampled by a factor that does not divide its
extent start) was taken as another grid's (the result went into a new node, "the volume was
cropped or resampled since"), and the labelmap was written indexed from the first voxel,
another index space than the segmentation's reference geometry (Slicer resamples such a
labelmap whenever it is edited).
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from helpers import crop_in_index_space  # noqa: E402
from test_adapter_binding_grid import labels_on  # noqa: E402
from test_adapter_user_geometry import chest, labelmap, move_by, on_lattice, specify_geometry  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_binding import (  # noqa: E402
    other_volume_binding,
    reference_grid,
    user_grid,
)
from UNetPlusPlusLib.adapter.segmentation_writer import (  # noqa: E402
    new_segmentation_node,
    write_segments,
)
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402

CROP = (3, 14, 2, 12, 1, 10)  # (i0, i1, j0, j1, k0, k1) of the 16 x 14 x 12 chest


def cropped_in_index_space(scene, whole_node, name: str = "crop"):
    """``helpers.crop_in_index_space`` of ``whole_node`` to :data:`CROP`."""
    return crop_in_index_space(scene, whole_node, CROP, name)


def crop_pair(scene):
    """The crop indexed from :data:`CROP`'s start, and the same crop indexed from 0."""
    whole, node = chest(scene)
    kept = cropped_in_index_space(scene, node, "crop")
    shifted = cropped_in_index_space(scene, node, "crop from 0")
    shifted.ShiftImageDataExtentToZeroStart()
    assert shifted.GetImageData().GetExtent()[0::2] == (0, 0, 0)
    return whole, kept, shifted


GRIDS = {  # "Specify geometry" options; the chest's spacing is (1.5, 1, 2) mm
    "isotropic": dict(isotropic=True),
    "oversampled x1.5": dict(oversampling=1.5),
    "isotropic, oversampled x2": dict(oversampling=2.0, isotropic=True),
}


@pytest.mark.parametrize("options", GRIDS.values(), ids=GRIDS.keys())
def test_a_grid_the_user_chose_is_theirs_whatever_the_extent_start(sphere_model, options):
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    _, kept, shifted = crop_pair(scene)
    for node in (kept, shifted):  # the user's own node (no UNet++ record)
        seg = new_segmentation_node(scene, node, f"{node.GetName()} mine")
        specify_geometry(seg, node, **options)
        assert user_grid(seg, node), node.GetName()
        assert other_volume_binding(seg, node) is None, other_volume_binding(seg, node)
        result = labels_on(geometry.volume_from_nodes([node]), labels)
        rebound: list = []
        again = write_segments(result, node, seg, rebound=rebound)
        assert again is seg and rebound == []
        assert on_lattice(labelmap(seg), reference_grid(seg))
        move_by(node, (0.3, 0.0, 0.0))  # moved by a fraction of a voxel: another grid's now
        assert not user_grid(seg, node) and other_volume_binding(seg, node) is not None


def test_the_labelmap_is_indexed_as_the_volume_and_on_the_same_voxels(sphere_model):
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    _, kept, shifted = crop_pair(scene)
    centres = []
    for node in (kept, shifted):
        seg = write_segments(labels_on(geometry.volume_from_nodes([node]), labels), node)
        image = labelmap(seg)
        name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
        reference = slicer.vtkOrientedImageData()
        text = seg.GetSegmentation().GetConversionParameter(name)
        assert slicer.vtkSegmentationConverter.DeserializeImageGeometry(text, reference, False)
        # the reference geometry's index space and matrix: Slicer need not resample it
        assert image.GetExtent() == node.GetImageData().GetExtent()
        assert slicer.vtkOrientedImageDataResample.DoGeometriesMatch(reference, image)
        # the labelled voxels' centres in world RAS
        voxels = geometry.array_from_oriented_image(image)
        k, j, i = np.nonzero(voxels)
        start = np.array(image.GetExtent()[0::2])
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        ijk = np.c_[i + start[0], j + start[1], k + start[2], np.ones(i.size)]
        world = geometry._numpy_from_vtk_matrix(matrix) @ ijk.T
        centres.append(np.sort(world[:3].T.round(6), axis=0))
        assert i.size > 0
    assert np.array_equal(centres[0], centres[1])  # the same voxels, whatever the index

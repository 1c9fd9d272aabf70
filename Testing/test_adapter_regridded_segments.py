"""A segment Segment Editor's "Specify geometry" only re-gridded (its voxels resampled onto a
finer grid) is not a user edit: a replacing rerun replaces it; one voxel painted or erased on
that grid is an edit, kept as "(edited)" (adapter/segment_fingerprint ``is_regridded``). On
real MRML (slicer-core), an oblique volume, the grid set by Slicer's own
vtkSlicerSegmentationGeometryLogic; no model run.

Before, any change of grid counted as an edit: after "Specify geometry" every rerun kept
"liver (edited)" beside the new "liver", though the user had changed nothing.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from test_adapter_keep_edited_segments import (  # noqa: E402
    DIRECTION,
    ORIGIN,
    SHAPE,
    SPACING,
    make_labels,
    segment_of,
)
from test_adapter_user_geometry import specify_geometry  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segment_fingerprint  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import (  # noqa: E402
    binary_labelmap_name,
    edited_segments,
    segment_names,
    write_segments,
)
from UNetPlusPlusLib.engine.volume import Volume  # noqa: E402

NAMES = ["edema", "enhancing tumor"]
GRIDS = {  # "Specify geometry" options; the volume's spacing is (1, 1.5, 2) mm
    "oversampled x2": dict(oversampling=2.0),
    "isotropic": dict(isotropic=True),  # 1 mm: fine voxel centres on coarse voxel faces (ties)
    "isotropic, oversampled x3": dict(oversampling=3.0, isotropic=True),
}


@pytest.fixture()
def volume_node():
    """An oblique (1, 1.5, 2) mm volume, as test_adapter_keep_edited_segments's."""
    scene = slicer.vtkMRMLScene()
    volume = Volume(np.zeros((1, *SHAPE), np.float32), SPACING, ORIGIN, DIRECTION)
    yield geometry.volume_node_from_volume(scene, volume, "brain")
    scene.Clear(1)


def layer(node, name: str):
    """The segment's labelmap and a writable (z, y, x) view of its voxels."""
    from vtk.util import numpy_support

    image = segment_of(node, name).GetRepresentation(binary_labelmap_name())
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    return image, voxels.reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)


def regridded_node(volume_node, grid: str):
    node = write_segments(make_labels(), volume_node)
    specify_geometry(node, volume_node, **GRIDS[grid])
    image, _ = layer(node, "edema")
    volume_axes = geometry.world_ijk_to_ras(volume_node)[:3, :3]
    assert not np.allclose(geometry.image_to_world_matrix(image)[:3, :3], volume_axes)
    return node


@pytest.mark.parametrize("grid", list(GRIDS))
def test_a_segment_only_regridded_is_replaced(volume_node, grid):
    node = regridded_node(volume_node, grid)
    assert edited_segments(node, NAMES) == []
    kept, regridded = [], []
    new = make_labels(shift=1)
    again = write_segments(new, volume_node, node, True, kept=kept, regridded=regridded)
    assert again is node and kept == [] and segment_names(node) == NAMES
    assert [name for name, _ in regridded] == [node.GetName()]  # written onto the user's grid
    assert edited_segments(node, NAMES) == []  # and stamped there: the next run replaces too


def test_a_regridded_segment_stays_unedited_through_a_seg_nrrd_round_trip(volume_node, tmp_path):
    node = regridded_node(volume_node, "isotropic")
    path = str(tmp_path / "fine.seg.nrrd")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(path)
    assert storage.WriteData(node)
    loaded = slicer.vtkMRMLSegmentationNode()
    volume_node.GetScene().AddNode(loaded)
    reader = slicer.vtkMRMLSegmentationStorageNode()
    reader.SetFileName(path)
    assert reader.ReadData(loaded)
    assert edited_segments(loaded, NAMES) == []


def unseen_voxels(node, name: str, value: int):
    """(z, y, x) indices in the segment's labelmap, next to or inside the segment, where a
    voxel set to ``value`` changes nothing once resampled back onto the grid it was written
    on: edits that a comparison on the written grid alone would miss."""
    image, voxels = layer(node, name)
    segment = segment_of(node, name)
    tag, grid = vtk.reference(""), vtk.reference("")
    assert segment.GetTag(segment_fingerprint.TAG, tag)
    assert segment.GetTag(segment_fingerprint.GRID_TAG, grid)
    written = segment_fingerprint.grid_from_text(str(grid))
    label = segment.GetLabelValue()
    inside = np.argwhere(voxels == label)
    centre = inside[len(inside) // 2]
    for offset in np.ndindex(5, 5, 5):
        index = tuple(centre + np.array(offset) - 2)
        if voxels[index] not in (0, label) or (voxels[index] == label) == (value == label):
            continue
        old, voxels[index] = voxels[index], value
        image.Modified()
        mask = segment_fingerprint._mask_image(image, label)
        back = segment_fingerprint._resampled(mask, written)
        voxels[index] = old
        image.Modified()
        if segment_fingerprint.labelmap_fingerprint(back, 1) == str(tag):
            yield index


@pytest.mark.parametrize("grid", ["oversampled x2", "isotropic"])
@pytest.mark.parametrize("edit", ["paint", "erase"])
def test_one_voxel_painted_or_erased_on_the_finer_grid_is_an_edit(volume_node, grid, edit):
    node = regridded_node(volume_node, grid)
    image, voxels = layer(node, "edema")
    value = 1 if edit == "paint" else 0
    index = next(unseen_voxels(node, "edema", value))  # invisible on the written grid
    voxels[index] = value
    image.Modified()
    mine = voxels == 1
    assert edited_segments(node, NAMES) == ["edema"]
    kept: list = []
    write_segments(make_labels(shift=1), volume_node, node, True, kept=kept)
    assert kept == [("edema", "edema (edited)")]
    _, voxels = layer(node, "edema (edited)")
    assert np.array_equal(voxels == 1, mine)  # the user's voxels, on the user's grid


def test_a_coarser_grid_or_a_segment_written_without_its_grid_counts_as_edited(volume_node):
    """The safe side: a coarser grid loses voxels (the written ones cannot be told from the
    user's), and a segment written before its grid was recorded cannot be resampled back."""
    node = write_segments(make_labels(), volume_node)
    specify_geometry(node, volume_node, oversampling=0.5)
    assert edited_segments(node, NAMES) == NAMES
    node = regridded_node(volume_node, "oversampled x2")
    segment_of(node, "edema").RemoveTag(segment_fingerprint.GRID_TAG)
    assert edited_segments(node, NAMES) == ["edema"]

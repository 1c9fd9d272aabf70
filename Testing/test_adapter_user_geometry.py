"""A segmentation whose geometry the USER changed in Segment Editor ("Specify geometry", e.g. an
oversampled grid for finer editing) while the volume is unchanged takes the next result
(adapter/segmentation_binding.py ``user_grid``, segmentation_writer.write_segments): on real
MRML (slicer-core), an oblique volume, the geometry set by Slicer's own
vtkSlicerSegmentationGeometryLogic as the "Specify geometry" dialog sets it; no model run.

Before, any reference geometry other than the volume's grid sent the result to a NEW node with
"the volume was cropped or resampled since", which was false here. Now the result goes into
the user's node, resampled onto the user's grid (nearest neighbour, as Slicer's segment
modifier resamples on edit), and the caller is told (``regridded``). A volume cropped in place
still gets a new node, whether UNet++ wrote the node before (its recorded grid) or not (the
box moved).
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from test_adapter_binding_grid import DIRECTION, SPACING, labels_on  # noqa: E402
from test_adapter_output_owner import node_state, reference_of  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_binding import (  # noqa: E402
    VOLUME_GRID_ATTRIBUTE,
    other_volume_binding,
    reference_grid,
    user_grid,
)
from UNetPlusPlusLib.adapter.segmentation_writer import (  # noqa: E402
    binary_labelmap_name,
    new_segmentation_node,
    write_segments,
)
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.volume import Volume  # noqa: E402


def specify_geometry(segmentation, source, oversampling=1.0, isotropic=False) -> None:
    """What Segment Editor's "Specify geometry" does on OK (qMRMLSegmentEditorWidget::
    showSegmentationGeometryDialog: setResampleLabelmaps(true))."""
    logic = slicer.vtkSlicerSegmentationGeometryLogic()
    logic.SetInputSegmentationNode(segmentation)
    logic.SetSourceGeometryNode(source)
    logic.SetOversamplingFactor(oversampling)
    logic.SetIsotropicSpacing(isotropic)
    assert logic.CalculateOutputGeometry() == ""
    assert logic.SetReferenceImageGeometryInSegmentationNode()
    assert logic.ResampleLabelmapsInSegmentationNode()


def chest(scene):
    whole = Volume(np.zeros((1, 12, 14, 16), np.float32), SPACING, (10.0, -20.0, 30.0), DIRECTION)
    return whole, geometry.volume_node_from_volume(scene, whole, "chest")


def labelmap(node):
    """The binary labelmap of the node's last segment."""
    segmentation = node.GetSegmentation()
    last = segmentation.GetNthSegmentID(segmentation.GetNumberOfSegments() - 1)
    return segmentation.GetSegment(last).GetRepresentation(binary_labelmap_name())


def crop_in_place(node, whole):
    """The volume node cropped in place to voxels [2:10, 3:12, 4:14] (z, y, x)."""
    offset = DIRECTION @ (np.array(SPACING) * (4, 3, 2))
    cropped = Volume(
        whole.array[:, 2:10, 3:12, 4:14].copy(), SPACING, tuple(whole.origin + offset), DIRECTION
    )
    new = geometry.volume_node_from_volume(slicer.vtkMRMLScene(), cropped, "crop")
    ijk_to_ras = vtk.vtkMatrix4x4()
    new.GetIJKToRASMatrix(ijk_to_ras)
    node.SetAndObserveImageData(new.GetImageData())
    node.SetIJKToRASMatrix(ijk_to_ras)
    return cropped


def on_lattice(image, grid) -> bool:
    """Whether the image's voxels are voxels of ``grid`` (same axes and spacing, origin an
    integer number of voxels away)."""
    matrix = geometry.image_to_world_matrix(image)
    steps = np.linalg.solve(grid[0][:3, :3], matrix[:3, 3] - grid[0][:3, 3])
    return np.allclose(matrix[:3, :3], grid[0][:3, :3], atol=1e-9) and np.allclose(
        steps, np.round(steps), atol=1e-6
    )


@pytest.mark.parametrize("ours", [True, False], ids=["written-by-unetpp", "users-own-node"])
def test_a_finer_grid_the_user_chose_takes_the_result(sphere_model, ours):
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    result = labels_on(whole, labels)
    if ours:
        seg = write_segments(result, node)
        coarse = int(np.count_nonzero(geometry.array_from_oriented_image(labelmap(seg)) == 1))
        assert seg.GetAttribute(VOLUME_GRID_ATTRIBUTE)
    else:  # made in Segment Editor: never written by UNet++, no recorded grid
        seg = new_segmentation_node(scene, node, "mine")
        coarse = int(np.count_nonzero(result.array == 1))
        assert seg.GetAttribute(VOLUME_GRID_ATTRIBUTE) is None
    specify_geometry(seg, node, oversampling=2.0)  # the volume is unchanged
    grid = reference_grid(seg)
    assert grid[1] == (32, 28, 24) and reference_of(seg) is node
    assert other_volume_binding(seg, node) is None

    rebound, regridded, written = [], [], []
    name = labels[0].name
    again = write_segments(
        result, node, seg, replace_existing=True, rebound=rebound, regridded=regridded,
        names={labels[0].value: f"{name} fine"}, written=written,
    )  # fmt: skip
    assert again is seg and rebound == []  # no spurious new node
    assert scene.GetNumberOfNodesByClass("vtkMRMLSegmentationNode") == 1
    spacing = np.array(SPACING) / 2
    assert [n for n, _ in regridded] == [seg.GetName()]
    assert np.allclose(regridded[0][1], spacing)
    image = seg.GetSegmentation().GetSegment(written[0]).GetRepresentation(binary_labelmap_name())
    assert on_lattice(image, grid)  # on the user's grid, not the volume's
    fine = geometry.array_from_oriented_image(image)
    assert np.count_nonzero(fine == 1) == 8 * coarse  # each voxel is 2 x 2 x 2 finer ones
    # and the recorded grid is still the volume's: the next run is no "crop" either
    assert other_volume_binding(seg, node) is None


def test_an_isotropic_grid_the_user_chose_on_their_own_node_takes_the_result(sphere_model):
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    seg = new_segmentation_node(scene, node, "mine")
    specify_geometry(seg, node, isotropic=True)  # 1 mm: the box shrinks by under a voxel
    assert other_volume_binding(seg, node) is None
    again = write_segments(labels_on(whole, labels), node, seg)
    assert again is seg and on_lattice(labelmap(seg), reference_grid(seg))


def test_a_grid_from_an_roi_the_user_chose_takes_the_result(sphere_model):
    """Segment Editor's "Specify geometry" from an ROI sets the reference to the ROI, which
    names no other patient."""
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    seg = write_segments(labels_on(whole, labels), node)
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "R")
    roi.SetCenter(*geometry.lps_to_ras(whole.origin + DIRECTION @ (np.array(SPACING) * 6)))
    roi.SetSize(30.0, 30.0, 30.0)
    specify_geometry(seg, roi)
    assert reference_of(seg) is roi
    rebound: list = []
    again = write_segments(
        labels_on(whole, labels), node, seg, replace_existing=True, rebound=rebound
    )
    assert again is seg and rebound == []


@pytest.mark.parametrize("ours", [True, False], ids=["written-by-unetpp", "users-own-node"])
def test_a_volume_cropped_in_place_still_gets_a_new_node(sphere_model, ours):
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    if ours:
        seg = write_segments(labels_on(whole, labels), node)
        specify_geometry(seg, node, oversampling=2.0)  # the user's grid, then a crop
    else:
        seg = new_segmentation_node(scene, node, "mine")
    before = node_state(seg)
    cropped = crop_in_place(node, whole)
    rebound: list = []
    new = write_segments(labels_on(cropped, labels), node, seg, rebound=rebound)
    assert new is not seg and node_state(seg) == before
    assert [n for n, _ in rebound] == [seg.GetName()]
    assert "the volume was cropped or resampled since" in rebound[0][1]


def test_the_logic_says_the_result_was_resampled_onto_the_users_grid(sphere_model):
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    manifest = ModelManifest.load(sphere_model)
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    seg = write_segments(labels_on(whole, manifest.labels), node)
    specify_geometry(seg, node, oversampling=2.0)
    warnings: list = []
    result = labels_on(whole, manifest.labels)
    again = SegmentationLogic().write_result(result, [node], manifest, seg, True, warnings)
    assert again is seg
    # the segment "Specify geometry" only resampled is not an edit (segment_fingerprint):
    # replaced, not kept as "(edited)"
    assert warnings == [
        f"The result was resampled onto the grid chosen for segmentation '{seg.GetName()}' "
        "(0.75 x 0.5 x 1 mm voxels, not the volume's)."
    ], warnings


def move_by(node, voxels) -> None:
    """Move the volume node by ``voxels`` (i, j, k; fractions of its voxels) along its axes."""
    step = geometry.lps_to_ras(DIRECTION @ (np.array(SPACING) * voxels))
    node.SetOrigin(*(np.array(node.GetOrigin()) + step))


def geometry_text(seg) -> str:
    name = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    return seg.GetSegmentation().GetConversionParameter(name)


@pytest.mark.parametrize(
    "grid, shift",
    [
        ("volume's", (0.4, 0.0, 0.0)),
        ("volume's", (0.0, 0.0, -0.02)),
        ("oversampled", (0.0, -0.3, 0.0)),
        ("isotropic", (0.3, 0.0, 0.0)),
        ("isotropic-oversampled", (0.0, 0.0, -0.2)),
    ],
)
def test_a_volume_moved_by_less_than_a_voxel_is_not_the_users_grid(sphere_model, grid, shift):
    """A node UNet++ never wrote to (no recorded grid) whose reference geometry is the
    volume's grid, or one "Specify geometry" made from it, is the user's grid while the volume
    stays put; once the volume moved, by less than a voxel too, it is another grid's (before,
    any box within one voxel passed, and the result was resampled onto the old, shifted grid)."""
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    seg = new_segmentation_node(scene, node, "mine")
    if grid != "volume's":
        specify_geometry(
            seg, node, oversampling=2.0 if "oversampled" in grid else 1.0,
            isotropic=grid.startswith("isotropic"),
        )  # fmt: skip
        assert user_grid(seg, node) and other_volume_binding(seg, node) is None
    text = geometry_text(seg)
    move_by(node, shift)
    assert not user_grid(seg, node)
    reason = other_volume_binding(seg, node)
    assert reason is not None and "made for volume 'chest' on another grid" in reason, reason
    assert reason.endswith("the volume was moved since (its origin or axes were changed)")
    rebound: list = []
    new = write_segments(labels_on(whole, labels), node, seg, rebound=rebound)
    assert new is not seg and [n for n, _ in rebound] == [seg.GetName()]
    assert geometry_text(seg) == text and seg.GetSegmentation().GetNumberOfSegments() == 0
    move_by(node, -np.array(shift))  # back where it was: the user's (or the volume's) grid again
    assert other_volume_binding(seg, node) is None


@pytest.mark.parametrize("how", ["origin", "transform"])
@pytest.mark.parametrize("ours", [True, False], ids=["written-by-unetpp", "users-own-node"])
def test_a_regridded_nodes_volume_moved_since_is_said_moved_not_cropped(sphere_model, ours, how):
    """A node on a grid the user chose ("Specify geometry": other voxel counts and spacing
    than the volume's) whose volume was then moved, by its origin or by a transform, is
    another grid's, and the reason says "moved" (segmentation_binding.grid_change compares
    the volume with its grid then: UNet++'s record, or the box of the user's grid). Before,
    it said "the volume was cropped or resampled since", which was false."""
    labels = ModelManifest.load(sphere_model).labels
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    seg = write_segments(labels_on(whole, labels), node) if ours else None
    seg = seg or new_segmentation_node(scene, node, "mine")
    specify_geometry(seg, node, oversampling=2.0)
    if how == "origin":
        move_by(node, (5.0, 0.0, -2.0))
        said = "the volume was moved since (its origin or axes were changed)"
    else:
        transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
        matrix = vtk.vtkMatrix4x4()
        matrix.SetElement(0, 3, 12.0)
        transform.SetMatrixTransformToParent(matrix)
        node.SetAndObserveTransformNodeID(transform.GetID())
        said = "the volume was moved by transform 'registration' since"
    reason = other_volume_binding(seg, node)
    assert reason is not None and reason.endswith(said), reason

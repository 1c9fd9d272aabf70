"""A replacing rerun keeps segments the user edited (adapter/segment_fingerprint), on real MRML."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segment_fingerprint, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.engine.manifest import (  # noqa: E402
    LabelSpec,
    standard_terminology,
    terminology_entry_string,
)
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

LABELS = [
    LabelSpec(1, "edema", (0.1, 0.8, 0.2), standard_terminology("edema")),
    LabelSpec(2, "enhancing tumor", (0.9, 0.9, 0.1), standard_terminology("enhancing tumor")),
]
SPACING, ORIGIN, DIRECTION = (1.0, 1.5, 2.0), (3.0, -4.0, 5.0), rotation_matrix((0, 10, 30))
SHAPE = (6, 7, 8)


def make_labels(shift: int = 0) -> LabelVolume:
    array = np.zeros(SHAPE, np.uint8)
    array[1:4, 2 + shift : 5 + shift, 2:6] = 1
    array[2:3, 3:4, 3:5] = 2
    return LabelVolume(array, SPACING, ORIGIN, DIRECTION, LABELS)


@pytest.fixture()
def volume_node():
    scene = slicer.vtkMRMLScene()
    volume = Volume(np.zeros((1, *SHAPE), np.float32), SPACING, ORIGIN, DIRECTION)
    yield geometry.volume_node_from_volume(scene, volume, "brain")
    scene.Clear(1)  # the scene is held until here: MRML nodes keep only a weak reference


def segment_of(node, name: str):
    segmentation = node.GetSegmentation()
    segment_id = segmentation.GetSegmentIdBySegmentName(name)
    assert segment_id, f"no segment {name!r} in {segmentation_writer.segment_names(node)}"
    return segmentation.GetSegment(segment_id)


def mask_of(node, name: str) -> np.ndarray:
    segment = segment_of(node, name)
    image = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    return geometry.array_from_oriented_image(image, SHAPE) == segment.GetLabelValue()


def paint(node, name: str, zyx: tuple[int, int, int]) -> np.ndarray:
    """Add one voxel to a segment the way Segment Editor does: change its labelmap in place."""
    from vtk.util import numpy_support

    segment = segment_of(node, name)
    image = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    voxels = voxels.reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)
    voxels[zyx[0] - z0, zyx[1] - y0, zyx[2] - x0] = segment.GetLabelValue()
    image.Modified()
    return mask_of(node, name).copy()


def test_written_segments_carry_a_fingerprint_that_matches(volume_node):
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    representation = segmentation_writer.binary_labelmap_name()
    for name in ("edema", "enhancing tumor"):
        assert segment_fingerprint.is_unchanged(segment_of(node, name), representation)
    assert segmentation_writer.edited_segments(node, ["edema", "enhancing tumor"]) == []


def test_an_edited_segment_is_kept_beside_the_new_result(volume_node):
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    edited = paint(node, "edema", (5, 0, 0))
    enhancing_id = node.GetSegmentation().GetSegmentIdBySegmentName("enhancing tumor")
    assert segmentation_writer.edited_segments(node, ["edema", "enhancing tumor"]) == ["edema"]

    kept: list = []
    new = make_labels(shift=1)
    result = segmentation_writer.write_segments(
        new, volume_node, node, replace_existing=True, kept=kept
    )

    assert result is node
    assert kept == [("edema", "edema (edited)")]
    assert np.array_equal(mask_of(node, "edema (edited)"), edited)  # the user's voxels
    assert np.array_equal(mask_of(node, "edema"), new.array == 1)
    # the unedited segment is replaced in place, as before
    assert node.GetSegmentation().GetSegmentIdBySegmentName("enhancing tumor") == enhancing_id
    assert np.array_equal(mask_of(node, "enhancing tumor"), new.array == 2)
    # a third run keeps a second edit under its own name
    paint(node, "edema", (0, 0, 0))
    again: list = []
    segmentation_writer.write_segments(make_labels(), volume_node, node, True, kept=again)
    assert again == [("edema", "edema (edited 2)")]


def test_a_segment_the_user_made_with_the_same_name_is_kept(volume_node):
    node = segmentation_writer.write_segments(
        make_labels(), volume_node, values=[2], names={2: "enhancing tumor"}
    )
    mine = node.GetSegmentation().AddEmptySegment("", "edema")
    assert mine
    kept: list = []
    segmentation_writer.write_segments(make_labels(), volume_node, node, True, kept=kept)
    assert kept == [("edema", "edema (edited)")]
    assert segmentation_writer.segment_names(node).count("edema") == 1


def saved_and_loaded(node, path, crop: bool = False):
    """``node`` written to ``path`` (.seg.nrrd) by Slicer's storage node (``crop``: to the
    segments' minimum extent) and read back into a new node of the same scene."""
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetCropToMinimumExtent(crop)
    assert storage.WriteData(node)
    loaded = slicer.vtkMRMLSegmentationNode()
    node.GetScene().AddNode(loaded)
    reader = slicer.vtkMRMLSegmentationStorageNode()
    reader.SetFileName(str(path))
    assert reader.ReadData(loaded)
    return loaded


def test_unedited_segments_still_match_after_a_seg_nrrd_round_trip(volume_node, tmp_path):
    """Slicer crops a labelmap to its content on save: not an edit, so it is replaced."""
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    loaded = saved_and_loaded(node, tmp_path / "result.seg.nrrd", crop=True)

    assert segmentation_writer.edited_segments(loaded, ["edema", "enhancing tumor"]) == []
    kept: list = []
    segmentation_writer.write_segments(make_labels(1), volume_node, loaded, True, kept=kept)
    assert kept == []
    assert segmentation_writer.segment_names(loaded) == ["edema", "enhancing tumor"]


def _source_to_closed_surface(node) -> None:
    node.CreateClosedSurfaceRepresentation()
    segmentation = node.GetSegmentation()
    name = slicer.vtkSegmentationConverter.GetClosedSurfaceRepresentationName()
    if hasattr(segmentation, "SetSourceRepresentationName"):
        segmentation.SetSourceRepresentationName(name)
    else:  # Slicer before 5.4
        segmentation.SetMasterRepresentationName(name)


def test_a_node_whose_source_is_closed_surface_is_one_clear_error_and_left_as_it_was(
    volume_node,
):
    """Tester 13: with the output node's source representation converted to closed surface,
    a replacing rerun renamed both segments to '... (edited)' and then failed with
    RuntimeError("could not add segment 'edema'"): an internal error, the scene changed."""
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    _source_to_closed_surface(node)
    before = segmentation_writer.segment_names(node)
    for replace in (True, False):
        with pytest.raises(UNetPlusPlusError, match="closed surface.*Create new segmentation"):
            segmentation_writer.write_segments(make_labels(1), volume_node, node, replace)
        assert segmentation_writer.segment_names(node) == before
    empty = segmentation_writer.new_segmentation_node(volume_node.GetScene(), volume_node, "e")
    _source_to_closed_surface(empty)  # nothing to lose: it takes the labelmap
    segmentation_writer.write_segments(make_labels(), volume_node, empty)
    assert np.array_equal(mask_of(empty, "edema"), make_labels().array == 1)


def test_a_renamed_segment_counts_as_edited(volume_node):
    """Tester 13: the user deleted 'edema' and renamed 'enhancing tumor' to 'edema'; its voxels
    still matched the fingerprint, so a replacing rerun replaced it without a word."""
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    segmentation = node.GetSegmentation()
    segmentation.RemoveSegment(segmentation.GetSegmentIdBySegmentName("edema"))
    segment_of(node, "enhancing tumor").SetName("edema")
    mine = mask_of(node, "edema").copy()
    kept: list = []
    segmentation_writer.write_segments(make_labels(1), volume_node, node, True, kept=kept)
    assert kept == [("edema", "edema (edited)")]
    assert np.array_equal(mask_of(node, "edema (edited)"), mine)
    assert sorted(segmentation_writer.segment_names(node)) == [
        "edema", "edema (edited)", "enhancing tumor"
    ]  # fmt: skip


def test_a_recoloured_or_recoded_segment_counts_as_edited(volume_node, tmp_path):
    """Segment Editor changes a segment's colour, or its terminology (what it is: "edema" coded
    as another structure), without touching its voxels. Before, a replacing rerun replaced such
    a segment with the manifest's colour and code, without a word: the user's choice was lost.
    Now it is kept as "... (edited)", as a renamed one is; a segment only saved and loaded
    again (.seg.nrrd) is still replaced."""
    tag = slicer.vtkSegment.GetTerminologyEntryTagName()
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    segment_of(node, "edema").SetColor(0.0, 0.0, 1.0)
    liver = LabelSpec(1, "edema", LABELS[0].color, standard_terminology("liver"))
    recoded = terminology_entry_string(liver)  # another code, by the terminology dialog
    segment_of(node, "enhancing tumor").SetTag(tag, recoded)
    names = ["edema", "enhancing tumor"]
    assert segmentation_writer.edited_segments(node, names) == names

    kept: list = []
    segmentation_writer.write_segments(make_labels(1), volume_node, node, True, kept=kept)
    assert sorted(kept) == [
        ("edema", "edema (edited)"),
        ("enhancing tumor", "enhancing tumor (edited)"),
    ]
    assert segment_of(node, "edema (edited)").GetColor() == (0.0, 0.0, 1.0)
    value = vtk.reference("")
    assert segment_of(node, "enhancing tumor (edited)").GetTag(tag, value)
    assert str(value) == recoded
    assert segment_of(node, "edema").GetColor() == pytest.approx(LABELS[0].color)

    loaded = saved_and_loaded(node, tmp_path / "result.seg.nrrd")  # no edit
    assert segmentation_writer.edited_segments(loaded, names) == []


def test_every_segment_of_a_name_is_checked_not_only_the_first(volume_node):
    """Slicer lets two segments have one name. Before, only the first 'edema' was checked and
    kept; the second, one the user made, was then taken for the one to replace: removed, and
    its ID given to the new result. Now each is checked, and each edited one is kept."""
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    painted = paint(node, "edema", (5, 0, 0))
    segmentation = node.GetSegmentation()
    paint_id = segmentation.GetSegmentIdBySegmentName("edema")
    mine = segmentation.AddEmptySegment("", "edema")  # the user's own 'edema', second
    assert mine and paint_id != mine

    kept: list = []
    new = make_labels(shift=1)
    segmentation_writer.write_segments(new, volume_node, node, True, kept=kept)

    assert sorted(kept) == [("edema", "edema (edited 2)"), ("edema", "edema (edited)")]
    names = {segmentation.GetSegment(i).GetName() for i in (paint_id, mine)}  # both still there
    assert names == {"edema (edited)", "edema (edited 2)"}
    assert np.array_equal(mask_of(node, segmentation.GetSegment(paint_id).GetName()), painted)
    assert segmentation_writer.segment_names(node).count("edema") == 1
    assert np.array_equal(mask_of(node, "edema"), new.array == 1)

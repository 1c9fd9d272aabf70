"""adapter/segmentation_writer: engine labels -> segments, against real MRML segmentations."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402
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


def labelmap_name() -> str:
    return segmentation_writer.binary_labelmap_name()


def make_labels(seed: int = 0) -> LabelVolume:
    array = np.zeros((6, 7, 8), np.uint8)
    array[1:4, 2:5, 2:6] = 1
    array[2:3, 3:4, 3:5] = 2
    array[5, seed % 7, seed % 8] = 1
    return LabelVolume(array, SPACING, ORIGIN, DIRECTION, LABELS)


@pytest.fixture()
def scene_and_volume():
    scene = slicer.vtkMRMLScene()
    volume = Volume(np.zeros((1, 6, 7, 8), np.float32), SPACING, ORIGIN, DIRECTION)
    return scene, geometry.volume_node_from_volume(scene, volume, "brain")


def segment_array(node, name: str) -> np.ndarray:
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
    image = segment.GetRepresentation(labelmap_name())
    return geometry.array_from_oriented_image(image) == segment.GetLabelValue()


def test_new_node_has_named_coloured_coded_segments_on_the_volume_grid(scene_and_volume):
    scene, volume_node = scene_and_volume
    labels = make_labels()

    node = segmentation_writer.write_segments(labels, volume_node, node_name="result")

    segmentation = node.GetSegmentation()
    assert node.GetScene() is scene and node.GetName() == "result"
    assert segmentation_writer.segment_names(node) == ["edema", "enhancing tumor"]
    assert segmentation.GetNumberOfLayers() == 1  # one shared labelmap
    for spec in LABELS:
        segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(spec.name))
        assert np.allclose(segment.GetColor(), spec.color)
        assert segment.GetLabelValue() == spec.value
        tag = vtk.reference("")
        assert segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
        assert str(tag) == terminology_entry_string(spec)
        assert spec.terminology["type"]["code"] in str(tag)
        assert np.array_equal(segment_array(node, spec.name), labels.array == spec.value)
        image = segment.GetRepresentation(labelmap_name())
        assert np.allclose(
            geometry.image_to_world_matrix(image), geometry.world_ijk_to_ras(volume_node)
        )
    reference = segmentation.GetConversionParameter(
        slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    )
    assert reference  # Segment Editor edits at the volume's resolution
    role = node.GetReferenceImageGeometryReferenceRole()
    assert node.GetNodeReferenceID(role) == volume_node.GetID()


def test_same_names_without_replace_go_to_a_new_node(scene_and_volume):
    scene, volume_node = scene_and_volume
    first = segmentation_writer.write_segments(make_labels(0), volume_node)
    before = segment_array(first, "edema").copy()
    nodes = scene.GetNumberOfNodes()

    second = segmentation_writer.write_segments(make_labels(3), volume_node, first)

    assert second is not first
    assert scene.GetNumberOfNodes() > nodes
    assert np.array_equal(segment_array(first, "edema"), before)
    assert np.array_equal(segment_array(second, "edema"), make_labels(3).array == 1)


def test_replace_keeps_ids_and_order_and_other_segments(scene_and_volume):
    _, volume_node = scene_and_volume
    node = segmentation_writer.write_segments(make_labels(0), volume_node)
    segmentation = node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    enhancing = segment_array(node, "enhancing tumor").copy()

    only_edema = make_labels(5)
    result = segmentation_writer.write_segments(
        only_edema, volume_node, node, replace_existing=True, values=[1]
    )

    assert result is node
    assert [segmentation.GetNthSegmentID(i) for i in range(2)] == ids
    assert np.array_equal(segment_array(node, "edema"), only_edema.array == 1)
    assert np.array_equal(segment_array(node, "enhancing tumor"), enhancing)


def test_numbered_names_add_to_the_chosen_node(scene_and_volume):
    _, volume_node = scene_and_volume
    node = segmentation_writer.write_segments(
        make_labels(), volume_node, names={1: "nodule 1"}, values=[1]
    )
    assert segmentation_writer.next_numbered_name(node, "nodule") == "nodule 2"
    again = segmentation_writer.write_segments(
        make_labels(2), volume_node, node, names={1: "nodule 2"}, values=[1]
    )
    assert again is node
    assert segmentation_writer.segment_names(node) == ["nodule 1", "nodule 2"]
    assert segmentation_writer.next_numbered_name(node, "nodule") == "nodule 3"


def test_transformed_output_node_is_refused(scene_and_volume):
    scene, volume_node = scene_and_volume
    node = segmentation_writer.write_segments(make_labels(), volume_node)
    transform = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(transform)
    node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(UNetPlusPlusError, match="is under a transform"):
        segmentation_writer.write_segments(make_labels(), volume_node, node)


def other_patient(scene, name: str = "other patient"):
    """A volume on another grid: other size, spacing and origin."""
    array = np.zeros((1, 5, 9, 10), np.float32)
    volume = Volume(array, (0.8, 0.8, 3.0), (40.0, 9.0, -60.0), np.eye(3))
    return geometry.volume_node_from_volume(scene, volume, name)


def node_state(node) -> list:
    """Every segment's name, label value and labelmap (extent and voxels)."""
    segmentation, state = node.GetSegmentation(), []
    for name in segmentation_writer.segment_names(node):
        segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
        image = segment.GetRepresentation(labelmap_name())
        voxels = geometry.array_from_oriented_image(image).tobytes()
        state.append((name, segment.GetLabelValue(), tuple(image.GetExtent()), voxels))
    return state


def test_a_node_of_another_volume_is_left_untouched(scene_and_volume):
    scene, brain = scene_and_volume
    other = other_patient(scene)
    theirs = segmentation_writer.write_segments(make_labels(), other, names={1: "nodule 1"})
    before, rebound = node_state(theirs), []

    ours = segmentation_writer.write_segments(
        make_labels(), brain, theirs, names={1: "nodule 2"}, rebound=rebound
    )

    assert ours is not theirs and node_state(theirs) == before  # not one segment added
    assert rebound == [(theirs.GetName(), "it was made for volume 'other patient'")]
    role = ours.GetReferenceImageGeometryReferenceRole()
    assert ours.GetNodeReferenceID(role) == brain.GetID()
    assert segmentation_writer.segment_names(ours) == ["nodule 2", "enhancing tumor"]


def test_another_grid_is_caught_without_the_reference(scene_and_volume):
    """A node whose only binding is its reference geometry (a .seg.nrrd loaded without its
    volume keeps it): another grid is another volume's; the same grid is this one's."""
    scene, brain = scene_and_volume
    other = other_patient(scene)
    theirs = segmentation_writer.write_segments(make_labels(), other)
    theirs.RemoveNodeReferenceIDs(theirs.GetReferenceImageGeometryReferenceRole())
    before, rebound = node_state(theirs), []

    ours = segmentation_writer.write_segments(make_labels(), brain, theirs, rebound=rebound)

    assert ours is not theirs and node_state(theirs) == before
    assert rebound[0][1].startswith("its reference geometry is another grid (10 x 9 x 5 voxels")
    mine = segmentation_writer.write_segments(make_labels(), brain, node_name="mine")
    mine.RemoveNodeReferenceIDs(mine.GetReferenceImageGeometryReferenceRole())
    again = segmentation_writer.write_segments(
        make_labels(), brain, mine, names={1: "edema 2", 2: "tumor 2"}, rebound=rebound
    )
    assert again is mine and len(rebound) == 1 and len(node_state(mine)) == 4


def test_an_unbound_empty_node_is_bound_to_the_volume(scene_and_volume):
    scene, brain = scene_and_volume
    empty = slicer.vtkMRMLSegmentationNode()
    scene.AddNode(empty)
    rebound = []
    node = segmentation_writer.write_segments(make_labels(), brain, empty, rebound=rebound)
    assert node is empty and rebound == []
    assert node.GetNodeReferenceID(node.GetReferenceImageGeometryReferenceRole()) == brain.GetID()

"""The record of which nodule points have their segment (widget/segmented_points.py) survives a
scene imported into a scene that has nodes already, on real MRML (slicer-core), files and all.

Slicer gives imported nodes new IDs where they clash and updates node references, not
attributes. The record held segmentation node IDs in a JSON attribute: after an import it named
the scene's own node of that ID, so the imported points counted as segmented in another node
(or, without the segment there, ran again and duplicated their segments). It now links by node
references, one role per segmentation node; records of before still read.
"""

from __future__ import annotations

import json

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from UNetPlusPlusLib.widget.segmented_points import (  # noqa: E402
    ROLE_PREFIX,
    SEGMENTED_ATTRIBUTE,
    keep_segmented,
    mark_segmented,
    point_segmentation,
    segmented_ids,
)


def segmentation_with(scene, name: str, segment_id: str):
    """A segmentation node in ``scene`` holding one 2x2x2-voxel segment ``segment_id``."""
    node = slicer.vtkMRMLSegmentationNode()
    node.SetName(name)
    scene.AddNode(node)
    node.SetSourceRepresentationToBinaryLabelmap()
    image = slicer.vtkOrientedImageData()
    image.SetExtent(0, 1, 0, 1, 0, 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.GetPointData().GetScalars().Fill(1)
    segment = slicer.vtkSegment()
    segment.SetName(segment_id)
    segment.AddRepresentation(
        slicer.vtkSegmentationConverter.GetBinaryLabelmapRepresentationName(), image
    )
    node.GetSegmentation().AddSegment(segment, segment_id)
    return node


def save(scene, folder) -> str:
    """Write every storable node's file and the scene (.mrml) into ``folder``."""
    for node in (scene.GetNthNodeByClass(i, "vtkMRMLStorableNode") for i in range(100)):
        if node is None:
            break
        markups = node.IsA("vtkMRMLMarkupsNode")  # CreateDefaultStorageNode needs them registered
        storage = (
            slicer.vtkMRMLMarkupsJsonStorageNode() if markups else node.CreateDefaultStorageNode()
        )
        scene.AddNode(storage)
        node.SetAndObserveStorageNodeID(storage.GetID())
        storage.SetFileName(
            str(folder / f"{node.GetID()}.{storage.GetDefaultWriteFileExtension()}")
        )
        assert storage.WriteData(node), node.GetID()
    scene.SetRootDirectory(str(folder))
    scene.SetURL(str(folder / "scene.mrml"))
    assert scene.Commit()
    return str(folder / "scene.mrml")


def last_node(scene, class_name: str):
    nodes = scene.GetNodesByClass(class_name)
    return nodes.GetItemAsObject(nodes.GetNumberOfItems() - 1)


def test_imported_points_stay_segmented_in_their_own_node(tmp_path):
    saved = slicer.vtkMRMLScene()
    output = segmentation_with(saved, "nodules", "nodule_1")
    seeds = slicer.vtkMRMLMarkupsFiducialNode()
    saved.AddNode(seeds)
    seeds.AddControlPoint(1.0, 2.0, 3.0)
    seeds.AddControlPoint(4.0, 5.0, 6.0)
    first, second = seeds.GetNthControlPointID(0), seeds.GetNthControlPointID(1)
    mark_segmented(seeds, [first], output, ["nodule_1"])
    path = save(saved, tmp_path)

    # a scene with nodes of the same IDs already, one a segmentation with a segment of that ID
    scene = slicer.vtkMRMLScene()
    scene.RegisterNodeClass(slicer.vtkMRMLMarkupsJsonStorageNode())  # Slicer's Markups module's
    own = segmentation_with(scene, "the other patient's", "nodule_1")
    scene.AddNode(slicer.vtkMRMLMarkupsFiducialNode())
    assert own.GetID() == output.GetID()
    scene.SetURL(path)
    assert scene.Import()

    imported = last_node(scene, "vtkMRMLSegmentationNode")
    points = last_node(scene, "vtkMRMLMarkupsFiducialNode")
    assert imported.GetID() != output.GetID() and points.GetID() != seeds.GetID()  # renumbered
    assert points.GetNumberOfControlPoints() == 2 and points.GetNthControlPointID(0) == first
    assert segmented_ids(points) == {first}
    assert point_segmentation(points, first) is imported  # not the scene's node of that ID
    assert point_segmentation(points, second) is None

    scene.RemoveNode(imported)  # its segmentation gone: the point is Segment's to run again
    assert segmented_ids(points) == set() and point_segmentation(points, first) is None
    assert own.GetSegmentation().GetSegment("nodule_1") is not None


def test_links_follow_the_record_and_records_of_before_still_read():
    scene = slicer.vtkMRMLScene()
    a = segmentation_with(scene, "a", "nodule_1")
    b = segmentation_with(scene, "b", "nodule_1")
    seeds = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(seeds)
    for position in ((1.0, 2.0, 3.0), (4.0, 5.0, 6.0), (7.0, 8.0, 9.0)):
        seeds.AddControlPoint(*position)
    p1, p2, p3 = (seeds.GetNthControlPointID(i) for i in range(3))

    # a record of before: node IDs in the attribute; it reads, and becomes a reference at the
    # next write
    seeds.SetAttribute(SEGMENTED_ATTRIBUTE, json.dumps({p1: [a.GetID(), "nodule_1"]}))
    assert segmented_ids(seeds) == {p1} and point_segmentation(seeds, p1) is a
    mark_segmented(seeds, [p2], b, ["nodule_1"])
    record = json.loads(seeds.GetAttribute(SEGMENTED_ATTRIBUTE))
    assert record == {p1: [f"{ROLE_PREFIX}1", "nodule_1"], p2: [f"{ROLE_PREFIX}2", "nodule_1"]}
    assert seeds.GetNodeReference(f"{ROLE_PREFIX}1") is a
    assert seeds.GetNodeReference(f"{ROLE_PREFIX}2") is b

    mark_segmented(seeds, [p3], b, ["nodule_1"])  # the same node: the same role
    assert json.loads(seeds.GetAttribute(SEGMENTED_ATTRIBUTE))[p3][0] == f"{ROLE_PREFIX}2"

    scene.RemoveNode(a)  # p1's node gone; a node linked later never takes its role
    assert segmented_ids(seeds) == {p2, p3}
    c = segmentation_with(scene, "c", "nodule_1")
    mark_segmented(seeds, [p2], c, ["nodule_1"])
    assert json.loads(seeds.GetAttribute(SEGMENTED_ATTRIBUTE))[p2][0] == f"{ROLE_PREFIX}3"
    assert segmented_ids(seeds) == {p2, p3} and point_segmentation(seeds, p1) is None

    keep_segmented(seeds, {p2})  # p3 deleted: b is linked by no record, its reference goes
    assert seeds.GetNodeReferenceID(f"{ROLE_PREFIX}2") is None
    assert seeds.GetNodeReference(f"{ROLE_PREFIX}3") is c and segmented_ids(seeds) == {p2}

"""adapter/training_export: one training case written from real MRML nodes, or refused with
nothing written (the volume, its segmentation and the folder untouched)."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.image_read import read_volume  # noqa: E402
from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export  # noqa: E402

LABELS = [LabelSpec(1, "liver", (0.8, 0.4, 0.3), standard_terminology("liver"))]
SPACING, ORIGIN, DIRECTION = (1.0, 1.5, 2.0), (3.0, -4.0, 5.0), rotation_matrix((0, 10, 30))
SHAPE = (6, 7, 8)


@pytest.fixture()
def case():
    """A CT node (a ramp, so a swapped axis shows) and its one-segment segmentation node."""
    scene = slicer.vtkMRMLScene()
    voxels = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(1, *SHAPE) - 100
    volume = geometry.volume_node_from_volume(
        scene, Volume(voxels, SPACING, ORIGIN, DIRECTION), "CT"
    )
    mask = np.zeros(SHAPE, np.uint8)
    mask[1:4, 2:5, 2:6] = 1
    labels = LabelVolume(mask, SPACING, ORIGIN, DIRECTION, LABELS)
    segmentation = segmentation_writer.write_segments(labels, volume, node_name="CT liver")
    yield scene, volume, segmentation, voxels[0], mask
    scene.Clear(1)


def test_the_case_is_written_with_its_geometry_and_the_logic_delegates(case, tmp_path):
    slicerio = pytest.importorskip("slicerio")
    scene, volume, segmentation, voxels, mask = case
    nodes_before = scene.GetNumberOfNodes()

    written = export_training_case([volume], segmentation, tmp_path / "a", "case1")

    assert [p.name for p in written] == ["case1.nrrd", "case1.seg.nrrd"]
    assert scene.GetNumberOfNodes() == nodes_before  # storage nodes stay out of the scene
    image = read_volume(written[0])
    assert np.array_equal(image.array[0], voxels)
    assert np.allclose(image.spacing, SPACING) and np.allclose(image.origin, ORIGIN)
    assert np.allclose(image.direction, DIRECTION)
    seg = slicerio.read_segmentation(str(written[1]))
    assert [s["name"] for s in seg["segments"]] == ["liver"]
    assert np.array_equal(np.transpose(seg["voxels"], (2, 1, 0)) > 0, mask > 0)  # (i, j, k)

    # the Logic's method (the panel's "Export training case") writes the same case
    again = SegmentationLogic.export_training_case([volume], segmentation, tmp_path / "b", "case1")
    assert [p.name for p in again] == ["case1.nrrd", "case1.seg.nrrd"]
    assert np.array_equal(read_volume(again[0]).array, image.array)


def test_refusals_write_nothing_and_leave_the_nodes_as_they_were(case, tmp_path):
    scene, volume, segmentation, _, _ = case
    out = tmp_path / "out"
    empty = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    empty.SetName("Empty")
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    refusals = [
        (([], segmentation, "case1"), "Select the input volume"),
        (([volume], None, "case1"), "Select the segmentation"),
        (([volume], empty, "case1"), "Segmentation 'Empty' is empty"),
        (([volume], segmentation, "../case1"), "not a valid file name"),
        (([volume], segmentation, " "), "not a valid file name"),
    ]
    for (nodes, seg, name), match in refusals:
        with pytest.raises(UNetPlusPlusError, match=match):
            export_training_case(nodes, seg, out, name)
    volume.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(UNetPlusPlusError, match="under different transforms; harden"):
        export_training_case([volume], segmentation, out, "case1")
    volume.SetAndObserveTransformNodeID(None)
    assert not out.exists()
    assert segmentation_writer.segment_names(segmentation) == ["liver"]

    export_training_case([volume], segmentation, out, "case1")
    before = {p.name: p.read_bytes() for p in out.iterdir()}  # the case and its record
    with pytest.raises(UNetPlusPlusError, match=r"Case 'case1' already exists .*overwrite=True"):
        export_training_case([volume], segmentation, out, "case1")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_case_already_in_the_folder_is_not_written_twice(case, tmp_path):
    """The same image and labels under another case name (a second 'Add current case'): refused,
    nothing written; the same image with corrected labels replaces that case's labels (no
    same-image pair to train on both masks or to split across training and validation); another
    image is new; a case whose files were changed by hand since (its record not trusted) is read
    back: the same image still, or another one."""
    from UNetPlusPlusLib.adapter.training_cases import check_cases
    from UNetPlusPlusLib.adapter.training_export import DuplicateCaseError

    scene, volume, segmentation, _, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 ") as found:
        export_training_case([volume], segmentation, out, "case002")
    assert found.value.case == "case001"
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before

    corrected = mask.copy()
    corrected[4, 2, 2] = 1  # one voxel painted in Segment Editor
    labels = LabelVolume(corrected, SPACING, ORIGIN, DIRECTION, LABELS)
    fixed = segmentation_writer.write_segments(labels, volume, node_name="CT liver (corrected)")
    written = export_training_case([volume], fixed, out, "case002")
    assert written.replaced and written.case == "case001"
    assert [p.name for p in written] == ["case001.seg.nrrd"]
    # the replaced labels are kept (never lose a user's edits), where training does not read
    assert written.kept.parent == out / ".replaced"
    assert re.fullmatch(r"case001-\d{8}T\d{6}Z\.seg\.nrrd", written.kept.name)
    assert written.kept.read_bytes() == before["case001.seg.nrrd"]
    dataset = describe_slicer_export(out)
    assert [c.case_id for c in find_cases(dataset)] == ["case001"]
    again = export_training_case([volume], segmentation, out, "case002")  # back to the first
    assert again.kept != written.kept and again.kept.parent == out / ".replaced"
    corrected_bytes = again.kept.read_bytes()  # the corrected labels, kept
    # the backup of the first labels is the same bytes as the labels now: removed, none lost
    assert list((out / ".replaced").iterdir()) == [again.kept] and not written.kept.exists()
    assert (out / "case001.seg.nrrd").read_bytes() == before["case001.seg.nrrd"]
    assert re.search(
        r"\(1 earlier version\(s\) of case001 kept in \.replaced, \d+ kB;", again.message
    )
    written = export_training_case([volume], fixed, out, "case002")
    assert (out / "case001.seg.nrrd").read_bytes() == corrected_bytes
    assert sorted(p.name for p in out.glob("*.nrrd")) == ["case001.nrrd", "case001.seg.nrrd"]
    assert (out / "case001.nrrd").read_bytes() == before["case001.nrrd"]  # the image untouched
    seg = pytest.importorskip("slicerio").read_segmentation(str(out / "case001.seg.nrrd"))
    assert np.array_equal(np.transpose(seg["voxels"], (2, 1, 0)) > 0, corrected > 0)
    with pytest.raises(DuplicateCaseError, match="as case001 "):  # its record follows
        export_training_case([volume], fixed, out, "case002")
    assert [c.name for c in check_cases(out).cases] == ["case001"]  # the record is no case

    geometry.array_from_volume_node(volume, copy=False)[0, 0, 0] += 1  # another image
    volume.GetImageData().GetPointData().GetScalars().Modified()
    assert not export_training_case([volume], fixed, out, "case002").replaced
    stat = (out / "case002.nrrd").stat()  # re-saved by hand (later: whatever the clock's tick)
    os.utime(out / "case002.nrrd", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DuplicateCaseError, match="as case002 "):  # read back: the same image
        export_training_case([volume], fixed, out, "case003")
    (out / "case002.nrrd").write_bytes((out / "case001.nrrd").read_bytes())  # another image
    os.utime(out / "case002.nrrd", ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    assert export_training_case([volume], fixed, out, "case003").case == "case003"

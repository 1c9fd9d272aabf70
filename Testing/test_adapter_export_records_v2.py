"""A folder exported by the previous version (identity records of method v2), exported into
again after the v2 -> v3 change (adapter/case_identity.py: the image's matrix at its first
voxel, the segments' voxels where they are). Real MRML (slicer-core), an oblique volume whose
extent does not start at 0 (where the v2 record was wrong) and one that starts at 0.

A v2 record is not trusted; the case is read back from its files once. The same image and
labels must still be refused as a duplicate (nothing written, the case's files untouched, its
record now v3), and corrected labels must replace the case's labels with the old ones kept in
``.replaced/``: never a second case of the same image, never labels lost.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
import vtk.util.numpy_support  # noqa: E402
from test_adapter_export_extent_start import (  # noqa: E402
    DIRECTION,
    ORIGIN,
    SPACING,
    index_space_crop,
    with_labels,
)
from UNetPlusPlusLib.adapter import case_identity, case_records, geometry  # noqa: E402
from UNetPlusPlusLib.adapter.segment_fingerprint import segment_fingerprint  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import binary_labelmap_name  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.volume import Volume  # noqa: E402
from UNetPlusPlusLib.errors import DuplicateCaseError  # noqa: E402

V2 = "voxels-ijk2ras1e-4-segments-sha256/v2"


def v2_identity(node, segmentation) -> tuple[str, str]:
    """The (image, labels) identity the previous version recorded (one volume): the node's
    IJK-to-RAS matrix at index 0 and the segments' edit fingerprints."""
    voxels = geometry.array_from_volume_node(node, copy=False)
    digest = hashlib.sha256(f"{voxels.dtype.str};{'x'.join(map(str, voxels.shape))};".encode())
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    ijk_to_ras = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    digest.update(np.round(ijk_to_ras, 4).astype("<f8").tobytes())
    digest.update(np.ascontiguousarray(voxels).data)
    image = hashlib.sha256(f"{V2};1;".encode())
    image.update(f";{digest.hexdigest()};".encode())
    labels = hashlib.sha256(f"{V2};".encode())
    for index in range(segmentation.GetSegmentation().GetNumberOfSegments()):
        segment = segmentation.GetSegmentation().GetNthSegment(index)
        print_ = segment_fingerprint(segment, binary_labelmap_name()) or ""
        labels.update(f"{segment.GetName()};{print_};".encode())
    return image.hexdigest(), labels.hexdigest()


def as_v2(out, case: str, node, segmentation) -> None:
    """Make ``case``'s record the one the previous version wrote (same file stamps)."""
    path = case_identity.record_path(out, case)
    record = json.loads(path.read_text(encoding="utf-8"))
    record["method"] = V2
    record["image"], record["labels"] = v2_identity(node, segmentation)
    path.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def folder_files(out) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}


@pytest.fixture(params=["extent starts at (2, 1, 3)", "extent starts at 0"])
def exported(request, tmp_path):
    """(scene, volume, its segmentation, the export folder holding them as case001 with a v2
    record)."""
    scene = slicer.vtkMRMLScene()
    ramp = np.arange(10 * 9 * 8, dtype=np.float32).reshape(1, 8, 9, 10) - 200
    whole = geometry.volume_node_from_volume(
        scene, Volume(ramp, SPACING, ORIGIN, DIRECTION), "whole"
    )
    node = index_space_crop(scene, whole, "kept")
    if request.param == "extent starts at 0":
        node.ShiftImageDataExtentToZeroStart()
    segmentation = with_labels(node, "liver")
    out = tmp_path / "cases"
    export_training_case([node], segmentation, out, "case001")
    as_v2(out, "case001", node, segmentation)
    yield scene, node, segmentation, out
    scene.Clear(1)


def test_the_same_case_exported_again_after_a_v2_record_is_a_duplicate(exported):
    _scene, node, segmentation, out = exported
    before = folder_files(out)
    stamps = {name: (out / name).stat().st_mtime_ns for name in before}
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([node], segmentation, out, "case002")
    after = folder_files(out)
    assert sorted(after) == sorted(before)  # no case002, nothing in .replaced/
    for name in ("case001.nrrd", "case001.seg.nrrd"):
        assert after[name] == before[name]
        assert (out / name).stat().st_mtime_ns == stamps[name]
    record = json.loads((out / "case001.export.json").read_text(encoding="utf-8"))
    assert record["method"] == case_identity.METHOD  # read back once, recorded anew
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([node], segmentation, out, "case002")  # from the v3 record
    assert folder_files(out) == after


def test_corrected_labels_after_a_v2_record_replace_the_case_labels_and_keep_them(exported):
    _scene, node, segmentation, out = exported
    old_labels = (out / "case001.seg.nrrd").read_bytes()
    image = (out / "case001.nrrd").read_bytes()
    segment = segmentation.GetSegmentation().GetNthSegment(0)
    labelmap = segment.GetRepresentation(binary_labelmap_name())
    voxels = vtk.util.numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
    voxels[np.flatnonzero(voxels == segment.GetLabelValue())[0]] = 0  # one voxel erased
    labelmap.Modified()

    written = export_training_case([node], segmentation, out, "case002")

    assert written.replaced and written.case == "case001"
    assert not list(out.glob("case002*"))
    assert (out / "case001.nrrd").read_bytes() == image
    assert (out / "case001.seg.nrrd").read_bytes() != old_labels
    kept = list((out / ".replaced").glob("case001-*.seg.nrrd"))
    assert len(kept) == 1 and kept[0].read_bytes() == old_labels


def finer_segment(scene, node, segmentation) -> None:
    """Add to ``segmentation`` a segment whose labelmap lies on a grid of half ``node``'s
    spacing (added by a script, or copied from a segmentation made on a finer grid): the
    .seg.nrrd holds it resampled onto the segmentation's common grid."""
    import vtk.util.numpy_support as numpy_support

    image = slicer.vtkOrientedImageData()
    image.SetExtent(0, 11, 0, 9, 0, 7)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    voxels[:] = 0
    voxels[150:600] = 1
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    for row in range(3):
        for column in range(3):
            matrix.SetElement(row, column, matrix.GetElement(row, column) * 0.5)
    image.SetImageToWorldMatrix(matrix)
    segment = slicer.vtkSegment()
    segment.SetName("fine")
    segment.AddRepresentation(binary_labelmap_name(), image)
    segmentation.GetSegmentation().AddSegment(segment, "fine")


def test_a_segment_on_another_grid_is_a_duplicate_not_a_replacement(tmp_path):
    """The case's identity from its nodes is that of its files read back, also for a segment
    whose labelmap is on another grid than the one the .seg.nrrd holds (the writer merges the
    labelmaps into layers, then resamples them). Before, the first export after the v2 -> v3
    change (its segmentation made again in a new session) read the case back, found "other
    labels" and replaced them by the same ones ("The old labels are kept in .replaced/...", a
    file tidied away at once as identical)."""
    scene = slicer.vtkMRMLScene()
    ramp = np.arange(10 * 9 * 8, dtype=np.float32).reshape(1, 8, 9, 10) - 200
    node = geometry.volume_node_from_volume(scene, Volume(ramp, SPACING, ORIGIN, DIRECTION), "ct")
    first = with_labels(node, "liver")
    finer_segment(scene, node, first)
    out = tmp_path / "cases"
    export_training_case([node], first, out, "case001")
    as_v2(out, "case001", node, first)

    again = with_labels(node, "liver again")  # the same segments, made again
    finer_segment(scene, node, again)
    extents = [again.GetSegmentation().GetNthSegment(i).GetRepresentation(
        binary_labelmap_name()).GetExtent() for i in range(2)]  # fmt: skip
    (case,) = case_records.folder_cases(out)
    from_files = case_records.identity_from_files(case)
    assert from_files is not None
    assert from_files.labels == case_identity.labels_identity(again)
    assert extents == [again.GetSegmentation().GetNthSegment(i).GetRepresentation(
        binary_labelmap_name()).GetExtent() for i in range(2)]  # untouched  # fmt: skip

    before = folder_files(out)
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([node], again, out, "case002")
    after = folder_files(out)
    assert sorted(after) == sorted(before) and not (out / ".replaced").exists()
    assert after["case001.seg.nrrd"] == before["case001.seg.nrrd"]
    scene.Clear(1)


def test_an_empty_segment_of_default_geometry_has_the_identity_of_its_file(tmp_path):
    """An empty segment added by a script (a labelmap of VTK's default geometry: 1 mm, axis
    aligned) is written on the common grid: its identity from the nodes, before the export, is
    that of the file read back (before, it differed: the case exported again was "replaced")."""
    scene = slicer.vtkMRMLScene()
    ramp = np.arange(10 * 9 * 8, dtype=np.float32).reshape(1, 8, 9, 10) - 200
    node = geometry.volume_node_from_volume(scene, Volume(ramp, SPACING, ORIGIN, DIRECTION), "ct")
    segmentation = with_labels(node, "liver")
    image = slicer.vtkOrientedImageData()
    image.SetExtent(0, -1, 0, -1, 0, -1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    segment = slicer.vtkSegment()
    segment.SetName("to do")
    segment.AddRepresentation(binary_labelmap_name(), image)
    segmentation.GetSegmentation().AddSegment(segment, "to do")
    identity = case_identity.labels_identity(segmentation)
    out = tmp_path / "cases"
    export_training_case([node], segmentation, out, "case001")
    (case,) = case_records.folder_cases(out)
    from_files = case_records.identity_from_files(case)
    assert from_files is not None and from_files.labels == identity
    scene.Clear(1)

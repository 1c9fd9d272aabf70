"""adapter/case_records and replaced_labels on real MRML (slicer-core): cases exported before
their record existed are recognised (read back once, their record written), an overwrite never
puts the same image twice in a folder nor loses the labels it replaces, and ``.replaced/`` keeps
each distinct version once, its count and size said."""

from __future__ import annotations

import re

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import test_adapter_training_export as base  # noqa: E402
from UNetPlusPlusLib.adapter import case_records, geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume  # noqa: E402
from UNetPlusPlusLib.errors import DuplicateCaseError  # noqa: E402

case = base.case  # the fixture: a CT ramp node and its one-segment segmentation


def files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def labels_of(volume, mask, name):
    labels = LabelVolume(mask, base.SPACING, base.ORIGIN, base.DIRECTION, base.LABELS)
    return segmentation_writer.write_segments(labels, volume, node_name=name)


def counted_reads(monkeypatch):
    """The cases case_records reads back from their files (the real reader, counted)."""
    reads = []
    real = case_records.identity_from_files

    def counting(folder_case):
        reads.append(folder_case.name)
        return real(folder_case)

    monkeypatch.setattr(case_records, "identity_from_files", counting)
    return reads


def test_cases_exported_before_records_are_recognised_and_read_once(case, tmp_path, monkeypatch):
    """Before, a case without ``.export.json`` was invisible: the same image exported again was
    written as a second case. Now it is read back once (its record written); a case of another
    shape is not read at all; channel files are matched by name, and one volume's node name,
    which its file does not keep, does not matter."""
    scene, volume, segmentation, voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    small = geometry.volume_node_from_volume(
        scene, Volume(voxels[None, :3], base.SPACING, base.ORIGIN, base.DIRECTION), "small"
    )
    export_training_case([small], labels_of(small, mask[:3], "s"), out, "case002")
    for record in out.glob("*.export.json"):
        record.unlink()  # exported before records existed
    reads = counted_reads(monkeypatch)
    before = files(out)

    volume.SetName("CT renamed")
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([volume], segmentation, out, "case003")
    assert reads == ["case001"]  # case002 (another shape): its header sufficed
    assert set(files(out)) == set(before) | {"case001.export.json"}  # its record, no case
    with pytest.raises(DuplicateCaseError, match="as case001 "):
        export_training_case([volume], segmentation, out, "case003")
    assert reads == ["case001"]  # its record now: not read again

    other = geometry.volume_node_from_volume(
        scene, Volume(voxels[None] * 2, base.SPACING, base.ORIGIN, base.DIRECTION), "T2"
    )
    pair = tmp_path / "pair"
    export_training_case([volume, other], segmentation, pair, "p1", ["T1", "T2"])
    (pair / "p1.export.json").unlink()
    with pytest.raises(DuplicateCaseError, match="as p1 "):  # the channels in another order
        export_training_case([other, volume], segmentation, pair, "p2", ["T2", "T1"])
    assert not list(pair.glob("p2*"))


def test_an_overwrite_never_duplicates_an_image_nor_loses_labels(case, tmp_path):
    """``overwrite=True``: before, re-exporting a corrected case under its own name wrote over its
    labels with no backup, and beside a copy made before records the image stayed twice
    unsaid. Now its labels are replaced as any correction (the old ones kept), the same image
    named as another case replaces that case's labels and says so, and copies are named."""
    scene, volume, segmentation, voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    first = files(out)
    corrected = mask.copy()
    corrected[4, 2, 2] = 1
    fixed = labels_of(volume, corrected, "fixed")

    written = export_training_case([volume], fixed, out, "case001", overwrite=True)
    assert written.replaced and written.case == "case001"
    assert [p.name for p in written] == ["case001.seg.nrrd"]
    assert written.kept.read_bytes() == first["case001.seg.nrrd"]  # not lost
    assert (out / "case001.nrrd").read_bytes() == first["case001.nrrd"]
    assert written.message.startswith(
        "The image is already in the dataset as case001: its labels were replaced by the current "
        f"segmentation. The old labels are kept in {written.kept} (1 earlier version(s)"
    )
    now = files(out)  # overwritten with the same case: the same files, no backup
    again = export_training_case([volume], fixed, out, "case001", overwrite=True)
    assert not again.replaced and again.kept is None
    assert {k: v for k, v in files(out).items() if "export.json" not in k} == {
        k: v for k, v in now.items() if "export.json" not in k
    }
    with pytest.raises(DuplicateCaseError, match="as case001 "):  # under another name
        export_training_case([volume], fixed, out, "case005")

    another = geometry.volume_node_from_volume(
        scene, Volume(voxels[None] + 1, base.SPACING, base.ORIGIN, base.DIRECTION), "B"
    )
    export_training_case([another], segmentation, out, "case002")
    case002 = {k: v for k, v in files(out).items() if k.startswith("case002")}
    for suffix in (".nrrd", ".seg.nrrd"):  # a copy of case001 made before records existed
        (out / f"case003{suffix}").write_bytes((out / f"case001{suffix}").read_bytes())
    written = export_training_case([volume], segmentation, out, "case002", overwrite=True)
    assert written.replaced and written.case == "case001" and written.also == ["case003"]
    assert {k: v for k, v in files(out).items() if k.startswith("case002")} == case002
    assert "as case001: its labels were replaced" in written.message
    assert written.message.startswith(
        "The image is already in the dataset as case001: its labels were replaced by the current "
        "segmentation, and nothing was saved as case002 (the same image twice would be trained "
        "on twice)."
    )
    assert "The same image is also there as case003: training counts each" in written.message
    with pytest.raises(DuplicateCaseError, match="also there as case003: ") as found:
        export_training_case([volume], segmentation, out, "case004")
    assert found.value.case == "case001" and found.value.also == ["case003"]

    third = geometry.volume_node_from_volume(
        scene, Volume(voxels[None] + 2, base.SPACING, base.ORIGIN, base.DIRECTION), "C"
    )
    written = export_training_case([third], fixed, out, "case002", overwrite=True)
    assert not written.replaced and [p.name for p in written] == [
        "case002.nrrd",
        "case002.seg.nrrd",
    ]
    assert written.kept.read_bytes() == case002["case002.seg.nrrd"]  # another image over it
    assert f"The old labels are kept in {written.kept} (1 earlier" in written.message


def test_replaced_labels_keep_each_distinct_version_once(case, tmp_path):
    """Back and forth between two masks kept one more file per export, without bound; now a
    backup the same as the current labels or a newer backup is removed (nothing lost) and the
    message counts the versions kept and their size."""
    scene, volume, segmentation, voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    masks = []
    for voxel in (4, 5):
        corrected = mask.copy()
        corrected[voxel, 2, 2] = 1
        masks.append(labels_of(volume, corrected, f"fixed {voxel}"))
    for node in [masks[0], segmentation] * 3:
        written = export_training_case([volume], node, out, "case002")
    assert len(list((out / ".replaced").iterdir())) == 1  # masks[0]'s labels, once
    assert "(1 earlier version(s) of case001" in written.message
    written = export_training_case([volume], masks[1], out, "case002")
    kept = sorted((out / ".replaced").iterdir())
    assert len(kept) == 2 and written.kept in kept  # two distinct earlier versions
    size = sum(p.stat().st_size for p in kept)
    assert written.versions.count == 2 and written.versions.bytes == size
    assert re.search(
        r"\(2 earlier version\(s\) of case001 kept in \.replaced, \d+ kB;", written.message
    )
    assert np.array_equal(
        geometry.array_from_volume_node(volume), base.read_volume(out / "case001.nrrd").array[0]
    )

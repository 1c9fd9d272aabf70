"""adapter/case_records, case_identity and training_export on real MRML (slicer-core): the
cases of the folder are found as training finds them (sub-folders too) and told from the image
being exported without reading them back, a record is not trusted for a file replaced under the
same size and time, and an overwrite with another image keeps the old image."""

from __future__ import annotations

import os
import re
import shutil

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import test_adapter_training_export as base  # noqa: E402
from test_adapter_export_records import counted_reads, files, labels_of  # noqa: E402
from UNetPlusPlusLib.adapter import case_identity, geometry  # noqa: E402
from UNetPlusPlusLib.adapter.case_files import CaseFiles  # noqa: E402
from UNetPlusPlusLib.adapter.nrrd_voxels import same_voxels  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.volume import Volume  # noqa: E402
from UNetPlusPlusLib.errors import DuplicateCaseError, UNetPlusPlusError  # noqa: E402
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export  # noqa: E402

case = base.case  # the fixture: a CT ramp node and its one-segment segmentation


def node(scene, voxels, name):
    return geometry.volume_node_from_volume(
        scene, Volume(voxels[None], base.SPACING, base.ORIGIN, base.DIRECTION), name
    )


def unrecord(folder):
    for record in folder.rglob("*.export.json"):
        record.unlink()  # exported before records existed, or copied in by hand


def test_unrecorded_cases_of_other_images_are_not_read_back(case, tmp_path, monkeypatch):
    """Before, every unrecorded case of the image's shape was read back whole with Slicer's
    storage nodes, in the main thread (about 0.6 s per BraTS case): here case002 and case003
    too. Now their voxels are compared as they are decompressed, up to the first difference
    (case003's is its last voxel); only case001, the same image, is read back."""
    scene, volume, segmentation, voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    export_training_case([node(scene, voxels + 1, "B")], segmentation, out, "case002")
    late = voxels.copy()
    late[-1, -1, -1] += 1
    export_training_case([node(scene, late, "C")], segmentation, out, "case003")
    unrecord(out)
    assert same_voxels(out / "case001.nrrd", voxels) is True  # Slicer's own files, understood
    assert same_voxels(out / "case003.nrrd", voxels) is False
    reads = counted_reads(monkeypatch)

    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([volume], segmentation, out, "case004")
    assert reads == ["case001"]
    assert sorted(p.name for p in out.glob("*.export.json")) == ["case001.export.json"]


def test_a_case_in_a_sub_folder_is_found_as_training_finds_it(case, tmp_path):
    """Training reads sub-folders (not hidden ones); the duplicate check read the top folder
    only, so a copy in ``sub/`` was written again at the top, and trained on twice. Now it is
    found (named ``sub/case001``, as training names it), and a corrected mask replaces its labels
    there, the old ones kept in ``sub/.replaced/``; ``.replaced/`` itself is not a case."""
    scene, volume, segmentation, voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out / "sub", "case001")
    shutil.copytree(out / "sub", out / ".old")  # hidden: training does not read it
    unrecord(out)
    before = files(out)

    with pytest.raises(DuplicateCaseError, match="already in the dataset as sub/case001 "):
        export_training_case([volume], segmentation, out, "case002")
    assert set(files(out)) == set(before) | {"sub/case001.export.json"}  # nothing written
    found = find_cases(describe_slicer_export(out), "train")
    assert [c.case_id for c in found] == ["sub/case001"]

    corrected = mask.copy()
    corrected[4, 2, 2] = 1
    written = export_training_case([volume], labels_of(volume, corrected, "fixed"), out, "case002")
    assert written.replaced and written.case == "sub/case001"
    assert written.kept.parent == out / "sub" / ".replaced"
    assert written.kept.read_bytes() == before["sub/case001.seg.nrrd"]  # not lost
    assert written.versions.count == 1
    assert not list(out.glob("case002*"))


def test_a_record_is_not_trusted_for_a_file_replaced_with_the_same_size_and_time(tmp_path):
    """Before, size and modification time were the whole stamp: a file replaced by another of
    the same size with its time restored (``cp -p``, ``rsync -t``, an unzip) kept its record, so
    an image now in the folder was not seen. The status-change time and inode tell it now."""
    image, other = tmp_path / "a.nrrd", tmp_path / "other.nrrd"
    image.write_bytes(b"NRRD0004\n" + b"1" * 100)
    other.write_bytes(b"NRRD0004\n" + b"2" * 100)
    identity = case_identity.CaseIdentity("image", "labels")
    case_identity.write_record(tmp_path, "a", identity, [image])
    assert case_identity.trusted_identity(tmp_path, "a", [image]) == identity
    times = image.stat().st_atime_ns, image.stat().st_mtime_ns
    shutil.copyfile(other, image)  # the same size, written in place (the same inode)
    os.utime(image, ns=times)  # and its time restored
    assert case_identity.trusted_identity(tmp_path, "a", [image]) is None


def test_an_overwrite_with_another_image_keeps_the_old_image(case, tmp_path, monkeypatch):
    """Before, an overwrite with another image kept the old labels in ``.replaced/`` but deleted
    the old image; and a one-volume case overwritten with channels left its ``<case>.nrrd``
    beside them, which training takes instead. Now the old image files go to ``.replaced/``
    with its labels, named as a case, and the message says where."""
    scene, volume, segmentation, voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case002")
    first = files(out)
    other = node(scene, voxels + 2, "B")
    written = export_training_case([other], segmentation, out, "case002", overwrite=True)
    assert not written.replaced
    assert [p.name for p in written] == ["case002.nrrd", "case002.seg.nrrd"]
    [image] = written.images
    assert re.fullmatch(r"case002-\d{8}T\d{6}Z\.nrrd", image.name)
    assert image.read_bytes() == first["case002.nrrd"]  # not lost
    assert written.kept == image.with_name(image.name.replace(".nrrd", ".seg.nrrd"))
    assert written.kept.read_bytes() == first["case002.seg.nrrd"]  # kept whole, though the same
    assert f"The image that case002 held before is kept in {image}." in written.message

    second = files(out)
    pair = [node(scene, voxels + 3, "T1"), node(scene, voxels + 4, "T2")]
    written = export_training_case(pair, segmentation, out, "case002", ["T1", "T2"], True)
    assert not (out / "case002.nrrd").exists()  # training would take it as the one channel
    [image] = written.images
    assert image.read_bytes() == second["case002.nrrd"]
    assert sorted(p.name for p in out.glob("case002*.nrrd")) == [
        "case002.seg.nrrd",
        "case002_T1.nrrd",
        "case002_T2.nrrd",
    ]

    # the new files cannot be renamed into place: the old case is put back, byte for byte
    before = files(out)

    def failing(self):
        raise UNetPlusPlusError("Could not write ...; nothing was written.")

    monkeypatch.setattr(CaseFiles, "commit", failing)
    with pytest.raises(UNetPlusPlusError, match="nothing was written"):
        export_training_case([volume], segmentation, out, "case002", overwrite=True)
    assert files(out) == before

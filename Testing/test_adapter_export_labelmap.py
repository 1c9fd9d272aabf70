"""An export leaves one label file per case: a labelmap of the case (``<case>-label.nrrd`` and
the other names training reads, with its colour table) beside the ``.seg.nrrd`` it writes, left
by an older export or saved by hand, is moved to ``.replaced/`` (nothing deleted) and the
message says so (adapter/replaced_labels.py ``labelmaps``). Before, it stayed: the folder held
two label files for one case, and training silently took the ``.seg.nrrd``. Real MRML
(slicer-core), the 6 x 7 x 8 case of test_adapter_training_export."""

from __future__ import annotations

import re

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import test_adapter_training_export as base  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export  # noqa: E402

case = base.case  # the fixture: a CT ramp node and its one-segment segmentation
STAMP = r"\d{8}T\d{6}Z"


def write_labelmap(folder, name: str, mask: np.ndarray) -> bytes:
    """A labelmap ``name`` on the grid of ``<folder>/case1.nrrd``; returns its bytes."""
    image = sitk.ReadImage(str(folder / "case1.nrrd"))
    labels = sitk.GetImageFromArray(mask.astype(np.uint8))
    labels.CopyInformation(image)
    sitk.WriteImage(labels, str(folder / name))
    return (folder / name).read_bytes()


def label_files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "label" in p.name or ".seg." in p.name)


def test_a_labelmap_case_relabelled_keeps_one_label_file(case, tmp_path):
    """An older export of case1 as image + labelmap (with its colour table); the same image
    exported again with corrected labels replaces case1's labels as a .seg.nrrd."""
    _scene, volume, segmentation, _voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case1")
    old = mask.copy()
    old[0] = 1  # another mask than the segmentation's: a correction since
    labelmap = write_labelmap(out, "case1-label.nrrd", old)
    (out / "case1-label.ctbl").write_text("0 background 0 0 0 0\n1 liver 200 100 80 255\n")
    (out / "case1.seg.nrrd").unlink()
    (out / "case1.export.json").unlink()  # exported before records existed

    written = export_training_case([volume], segmentation, out, "case2")

    assert written.replaced and written.case == "case1"
    assert label_files(out) == ["case1.seg.nrrd"]  # one label file: the labelmap moved
    kept = {original.name: backup for original, backup in written.labelmaps}
    assert sorted(kept) == ["case1-label.ctbl", "case1-label.nrrd"]
    assert all(backup.parent == out / ".replaced" for backup in kept.values())
    assert re.fullmatch(rf"case1-{STAMP}-label\.nrrd", kept["case1-label.nrrd"].name)
    assert kept["case1-label.nrrd"].read_bytes() == labelmap  # nothing the user made is lost
    assert "The older labelmap of case1 (case1-label.nrrd, case1-label.ctbl) was moved to " in (
        written.message
    )
    assert "one label file, case1.seg.nrrd" in written.message
    cases = find_cases(describe_slicer_export(out))
    assert [(c.case_id, c.label.name) for c in cases] == [("case1", "case1.seg.nrrd")]


def test_a_new_case_moves_a_stray_labelmap_of_its_name(case, tmp_path):
    """A labelmap saved by hand as case1_label.nrrd (no image beside it: no case yet)."""
    _scene, volume, segmentation, _voxels, mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case1")
    labelmap = write_labelmap(out, "case1_label.nrrd", mask)
    for name in ("case1.nrrd", "case1.seg.nrrd", "case1.export.json"):
        (out / name).unlink()
    (out / "case10-label.nrrd").write_bytes(labelmap)  # another case's: stays

    written = export_training_case([volume], segmentation, out, "case1")

    assert [p.name for p in written] == ["case1.nrrd", "case1.seg.nrrd"] and not written.replaced
    assert label_files(out) == ["case1.seg.nrrd", "case10-label.nrrd"]
    ((original, backup),) = written.labelmaps
    assert original.name == "case1_label.nrrd" and backup.read_bytes() == labelmap
    assert re.fullmatch(rf"case1-{STAMP}_label\.nrrd", backup.name)
    assert "The older labelmap of case1 (case1_label.nrrd) was moved to" in written.message

"""The export's message names only files that exist after the export (adapter/training_export,
replaced_labels), on real MRML (slicer-core) and a real folder.

Before, when the labels an export replaced were byte-for-byte the labels it wrote,
``replaced_labels.tidy`` deleted their backup in ``.replaced/`` and the message still said
"The old labels are kept in .replaced/case001-<time>.seg.nrrd (0 earlier version(s) ...)":
a file that was gone. Reproduced with a case whose image is a ``.nii.gz`` (a case added by
hand; training reads it): its labels' backup was not seen as lying beside an image, so it was
deleted, and the image kept in ``.replaced/`` lost its labels; and with a case whose image file
was deleted by hand, exported again with ``overwrite``.
"""

from __future__ import annotations

import re

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import SimpleITK as sitk  # noqa: E402
import test_adapter_training_export as base  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.volume import Volume  # noqa: E402

case = base.case  # the fixture: a CT ramp node and its one-segment segmentation
PATH = re.compile(r"(/[^\s,()]+?)(?=[\s,()]|\.(?:\s|$))")


def named_paths(message: str) -> list[str]:
    """The absolute paths a message names."""
    return PATH.findall(message)


def test_a_nii_gz_case_replaced_by_another_image_keeps_its_labels_beside_it(case, tmp_path):
    scene, volume, segmentation, voxels, _mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    image = sitk.ReadImage(str(out / "case001.nrrd"))
    sitk.WriteImage(image, str(out / "case001.nii.gz"))  # the case as added by hand
    (out / "case001.nrrd").unlink()
    old_labels = (out / "case001.seg.nrrd").read_bytes()
    other = geometry.volume_node_from_volume(
        scene, Volume(voxels[None] + 1, base.SPACING, base.ORIGIN, base.DIRECTION), "B"
    )

    written = export_training_case([other], segmentation, out, "case001", overwrite=True)

    backups = sorted(p.name for p in (out / ".replaced").iterdir())
    assert len(backups) == 2, backups  # the old image with its labels: a case, kept whole
    assert backups[0].endswith(".nii.gz") and backups[1].endswith(".seg.nrrd")
    assert written.kept is not None and written.kept.read_bytes() == old_labels
    paths = named_paths(written.message)
    assert str(written.kept) in paths and len(paths) == 2, written.message
    assert all((tmp_path / p).exists() for p in paths), written.message
    assert "(1 earlier version(s) of case001" in written.message


def test_labels_identical_to_the_ones_written_are_not_named_as_kept(case, tmp_path):
    _scene, volume, segmentation, _voxels, _mask = case
    out = tmp_path / "cases"
    export_training_case([volume], segmentation, out, "case001")
    (out / "case001.nrrd").unlink()  # the image deleted by hand: the labels alone

    written = export_training_case([volume], segmentation, out, "case001", overwrite=True)

    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "case001.export.json",
        "case001.nrrd",
        "case001.seg.nrrd",
    ]
    assert not list(out.glob(".replaced/*"))  # the same bytes as case001.seg.nrrd: no copy
    assert written.kept is None
    assert all((tmp_path / p).exists() for p in named_paths(written.message)), written.message
    assert ".replaced" not in written.message
    assert "were the same as the labels written" in written.message, written.message

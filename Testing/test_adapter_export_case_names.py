"""Export for training (adapter/training_export.py) with case names training would misread, on
real MRML (slicer-core), no model run.

Before, "case-label", "case_label" or "liver.seg" were written as "<name>.nrrd", which training
takes for the labels of case "case" (or "liver"): it then refused the whole folder ("Case
'case': no image beside case-label.nrrd"); ".x" was written as hidden files training skips (a
case silently left out); a tab or a line break went into file names (a line break made the
.seg.nrrd unreadable); and a 300-character name was an OSError traceback. Now each is one clear
refusal before anything is written; a name with spaces and accents is written and read back.
Also: "Add current case" numbering beside other cases' files, a segmentation made for another
patient's volume, and two exports of one name into one folder at once.
"""

from __future__ import annotations

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import test_adapter_training_export as base  # noqa: E402
import vtk  # noqa: E402
from helpers import load_with_storage_node  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, training_export  # noqa: E402
from UNetPlusPlusLib.adapter.training_cases import next_case_name  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.volume import Volume  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402
from UNetPlusPlusLib.training.dataset import find_cases  # noqa: E402
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export  # noqa: E402

case = base.case  # the fixture: a volume and its segmentation


@pytest.mark.parametrize(
    "name, match",
    [
        (
            "case-label",
            "gives an image file whose name ends in '-label.nrrd', which training takes for labels",
        ),
        ("Case_LABEL", "ends in '_label.nrrd'"),
        ("x.label", "ends in '.label.nrrd'"),
        ("liver.seg", "ends in '.seg.nrrd'"),
        (".hidden", "begins with '.': training skips hidden files"),
        ("..", "begins with '.'"),
        # the rule as it is (spaces and accents are fine): it said "use letters, digits, - or _"
        ("tab\tname", "not a valid file name: leave out / .* tabs and line breaks"),
        ("new\nline", "not a valid file name"),
        ("é" * 101, r"too long for a file name \(202 bytes in UTF-8; at most 200"),
    ],
)
def test_a_case_name_training_would_misread_is_refused_before_any_file(case, tmp_path, name, match):
    scene, volume, segmentation, _, _ = case
    out = tmp_path / "out"
    with pytest.raises(UNetPlusPlusError, match=match):
        export_training_case([volume], segmentation, out, name)
    assert not out.exists()


def test_a_channel_named_label_is_refused(case, tmp_path):
    scene, volume, segmentation, _, _ = case
    with pytest.raises(
        UNetPlusPlusError,
        match="Channel name 'label' gives an image file whose name ends in '_label.nrrd'",
    ):
        export_training_case([volume, volume], segmentation, tmp_path, "c", ["flair", "label"])
    assert list(tmp_path.iterdir()) == []


def test_a_name_with_spaces_and_accents_is_read_back_as_that_case(case, tmp_path):
    scene, volume, segmentation, _, _ = case
    export_training_case([volume], segmentation, tmp_path, "lé foie 1")
    cases = find_cases(describe_slicer_export(tmp_path))
    assert [(c.case_id, [p.name for p in c.images], c.label.name) for c in cases] == [
        ("lé foie 1", ["lé foie 1.nrrd"], "lé foie 1.seg.nrrd")
    ]


def test_a_path_too_long_for_the_system_is_one_clear_error(case, tmp_path):
    scene, volume, segmentation, _, _ = case
    deep = tmp_path
    while len(str(deep).encode()) < 4096 - 60:  # PATH_MAX 4096 (Linux): the folder fits
        deep = deep / ("d" * 50)
    deep.mkdir(parents=True)
    with pytest.raises(UNetPlusPlusError, match="Could not export case 'c+' .*nothing was written"):
        export_training_case([volume], segmentation, deep, "c" * 190)  # a name that fits
    assert list(deep.iterdir()) == []


def test_add_current_case_never_picks_a_name_another_case_holds(case, tmp_path):
    """Before, only ``caseNNN.seg.nrrd`` counted: beside a labelmap case (case002.nrrd with
    case002-label.nrrd) or an image without labels, "Add current case" picked case002 and every
    click was refused ("Case 'case002' already exists ... pass overwrite=True")."""
    scene, volume, segmentation, _, _ = case
    export_training_case([volume], segmentation, tmp_path, "case001")
    for name in ("case002.nrrd", "case002-label.nrrd", "case004_FLAIR.nrrd", "case01x.nrrd"):
        (tmp_path / name).write_bytes(b"")  # other cases' files (their voxels do not matter)
    assert next_case_name(tmp_path) == "case005"
    assert next_case_name(tmp_path / "not yet made") == "case001"


def test_a_segmentation_on_another_volumes_grid_is_refused_before_any_file(case, tmp_path):
    """Before, volume B was written with the segmentation made for volume 'CT' 100 mm away (or
    for 'CT' before a crop), and training refused the case only when it ran ("the geometry of
    the label ... does not match its image"). Another volume node on the same grid (a filtered
    copy) is still exported with it."""
    scene, volume, segmentation, voxels, _ = case
    origin = (base.ORIGIN[0] + 100.0, *base.ORIGIN[1:])
    other = geometry.volume_node_from_volume(
        scene, Volume(voxels[None], base.SPACING, origin, base.DIRECTION), "B"
    )
    with pytest.raises(
        UNetPlusPlusError,
        match="'CT liver' was made for volume 'CT', on another grid than volume 'B'",
    ):
        export_training_case([other], segmentation, tmp_path / "a", "c")
    assert not (tmp_path / "a").exists()
    other.SetAndObserveImageData(None)  # no voxels: that error, not a traceback
    with pytest.raises(UNetPlusPlusError, match="Volume 'B' has no image data"):
        export_training_case([other], segmentation, tmp_path / "a", "c")

    copy = geometry.volume_node_from_volume(
        scene, Volume(voxels[None] + 1, base.SPACING, base.ORIGIN, base.DIRECTION), "filtered"
    )
    written = export_training_case([copy], segmentation, tmp_path / "b", "c")
    assert [p.name for p in written] == ["c.nrrd", "c.seg.nrrd"]
    moved = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")  # both moved, as one
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 30.0)
    moved.SetMatrixTransformToParent(matrix)
    for node in (volume, segmentation):
        node.SetAndObserveTransformNodeID(moved.GetID())
    written = export_training_case([volume], segmentation, tmp_path / "c", "c")
    assert [p.name for p in written] == ["c.nrrd", "c.seg.nrrd"]


def test_an_export_that_takes_the_name_meanwhile_is_kept(case, tmp_path, monkeypatch):
    """Two Slicers adding "case001" to one shared folder: before, the later commit moved the
    earlier export's files aside and deleted them, and both reported success. The other export
    runs here, for real, while this one writes its image (the slow part)."""
    scene, volume, segmentation, voxels, _ = case
    other = geometry.volume_node_from_volume(
        scene, Volume(voxels[None] + 7, base.SPACING, base.ORIGIN, base.DIRECTION), "other"
    )
    write_volume = training_export.write_volume_file

    def meanwhile(snapshot, path):
        monkeypatch.setattr(training_export, "write_volume_file", write_volume)
        export_training_case([other], segmentation, tmp_path, "case001")  # the other Slicer
        return write_volume(snapshot, path)

    monkeypatch.setattr(training_export, "write_volume_file", meanwhile)
    with pytest.raises(UNetPlusPlusError, match="'case001' was written to .* by another export"):
        export_training_case([volume], segmentation, tmp_path, "case001")
    image = geometry.array_from_volume_node(
        load_with_storage_node(scene, tmp_path / "case001.nrrd", "back")
    )
    assert np.array_equal(image, voxels + 7)  # the other export's case, as it wrote it
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "case001.export.json", "case001.nrrd", "case001.seg.nrrd"
    ]  # fmt: skip

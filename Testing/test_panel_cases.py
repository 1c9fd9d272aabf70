"""The panel's "Cases" check (adapter/training_cases.py) lists the cases that ``unetpp train``
uses, as the trainer finds them (training/dataset_slicer.py): cases in sub-folders, labelmap
cases, NIfTI files; with the trainer's own message, one line each, for what it refuses or skips.
Before, the panel counted only top-level ``<case>.seg.nrrd`` files by rules of its own."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from UNetPlusPlusLib.adapter.training_cases import cases_summary, check_cases
from UNetPlusPlusLib.engine.manifest import ChannelSpec
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cases import read_case
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export

SHAPE = (4, 5, 6)  # (z, y, x): a few hundred voxels, headers are what count here
CT = [ChannelSpec("CT", "CT", {"kind": "ct", "window": [-1000.0, 1000.0]})]


def image(path: Path, value: int = -1000) -> None:
    """A tiny int16 CT-like volume (NRRD or NIfTI by the name's suffix)."""
    array = np.full(SHAPE, value, np.int16)
    array[1:3, 1:4, 2:5] = 60
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing((1.5, 1.5, 2.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume, str(path))


def segmentation(path: Path, names=("liver",)) -> None:
    """A ``.seg.nrrd`` with one segment per name."""
    seg = slicerio.create_segmentation(SHAPE[::-1], np.diag([1.5, 1.5, 2.0, 1.0]))
    mask = np.zeros(SHAPE[::-1], np.uint8)
    mask[2:5, 1:4, 1:3] = 1
    for i, name in enumerate(names):
        slicerio.add_segment(seg, mask, {"id": f"Segment_{i + 1}", "name": name})
    path.parent.mkdir(parents=True, exist_ok=True)
    slicerio.write_segmentation(str(path), seg)


def trainer(folder: Path, **options) -> tuple[list, list[str], list[str]]:
    """What ``unetpp train folder`` finds before reading voxels: its cases, the cases it
    refuses (messages) and its warnings."""
    problems: list[str] = []
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        cases = find_cases(describe_slicer_export(folder, **options), problems)
    return cases, problems, [str(w.message) for w in said]


def test_sub_folders_labelmaps_and_an_unlabelled_image_as_training_finds_them(tmp_path):
    image(tmp_path / "a.nrrd")
    segmentation(tmp_path / "a.seg.nrrd")
    image(tmp_path / "sub" / "b.nii.gz")  # a NIfTI labelmap case in a sub-folder
    image(tmp_path / "sub" / "b-label.nii.gz", value=0)
    (tmp_path / "sub" / "b-label.ctbl").write_text("0 background 0 0 0 0\n60 liver 220 80 60 255\n")
    image(tmp_path / "deep" / "er" / "c.nrrd")
    segmentation(tmp_path / "deep" / "er" / "c.seg.nrrd")
    image(tmp_path / "orphan.nrrd")  # an image without labels: skipped, said
    segmentation(tmp_path / ".replaced" / "a-20261202T000000Z.seg.nrrd")  # hidden: no case

    found = check_cases(tmp_path)
    cases, refused, said = trainer(tmp_path, modality="CT")
    assert [(c.name, c.images, c.label) for c in found.cases] == [
        (c.case_id, c.images, c.label) for c in cases
    ]
    assert [c.name for c in found.cases] == ["a", "deep/er/c", "sub/b"]
    assert found.cases[2].images == [tmp_path / "sub" / "b.nii.gz"]
    assert found.cases[0].segments == found.cases[2].segments == ["liver"]
    assert found.refused == refused == [] and found.warnings == said
    assert len(said) == 1 and "orphan.nrrd" in said[0]
    assert cases_summary(found).splitlines() == ["3 case(s) to train on", said[0]]


def test_refused_cases_and_a_second_label_file_say_the_trainers_words(tmp_path):
    image(tmp_path / "a.nrrd")
    segmentation(tmp_path / "a.seg.nrrd")
    image(tmp_path / "a-label.nrrd", value=0)  # two label files for case a
    segmentation(tmp_path / "sub" / "nothing.seg.nrrd")  # labels without an image
    image(tmp_path / "two_T1.nrrd")  # two channels, the model takes one
    image(tmp_path / "two_T2.nrrd")
    segmentation(tmp_path / "two.seg.nrrd")

    found = check_cases(tmp_path, CT, ["liver"])
    cases, refused, said = trainer(tmp_path, labels=["liver"], channels=CT)
    assert [c.name for c in found.cases] == [c.case_id for c in cases] == ["a"]
    assert found.refused == refused and found.warnings == said
    assert refused[0].startswith("Case 'sub/nothing': no image beside nothing.seg.nrrd")
    assert refused[1].startswith("Case 'two' has 0 of the 1 channels (CT)")
    assert said == [
        "Case 'a' has two label files: training reads a.seg.nrrd, not a-label.nrrd; remove or "
        "rename the one that does not hold the case's labels."
    ]
    lines = cases_summary(found).splitlines()
    assert lines == ["1 case(s) to train on, 2 refused", *refused, *said]


def test_a_case_without_the_models_label_is_refused_as_training_refuses_it(tmp_path):
    """The label names are checked from the headers, with the trainer's rule and message (its
    case reading says the same after reading the voxels)."""
    image(tmp_path / "a.nrrd")
    segmentation(tmp_path / "a.seg.nrrd", ("Liver", "spleen"))
    image(tmp_path / "b.nrrd")
    segmentation(tmp_path / "b.seg.nrrd", ("spleen",))
    image(tmp_path / "c.nrrd")
    image(tmp_path / "c-label.nrrd", value=0)  # a labelmap without a colour table: no names

    found = check_cases(tmp_path, CT, ["liver"])
    assert [c.name for c in found.cases] == ["a"] and found.cases[0].segments == ["Liver", "spleen"]
    dataset = describe_slicer_export(tmp_path, labels=["liver"], channels=CT)
    said = []
    for case in find_cases(dataset)[1:]:
        with pytest.raises(UNetPlusPlusError) as error:
            read_case(case, dataset)
        said.append(str(error.value))
    assert found.refused == said
    assert said[0].startswith("Case 'b': segment 'liver' not found in b.seg.nrrd")
    assert said[1].startswith("Case 'c': segment 'liver' not found in c-label.nrrd, which has")


def test_a_folder_training_refuses_whole_is_one_line_and_an_empty_one_is_no_case_yet(tmp_path):
    assert check_cases(tmp_path / "nowhere").cases == []
    assert cases_summary(check_cases(tmp_path)).startswith("No exported case in this folder yet")
    image(tmp_path / "lonely.nrrd")
    found = check_cases(tmp_path)
    with pytest.raises(UNetPlusPlusError) as error:
        describe_slicer_export(tmp_path)
    assert found.cases == [] and found.refused == [str(error.value)]
    assert cases_summary(found).splitlines() == ["0 case(s) to train on, 1 refused", *found.refused]


def test_cases_of_the_same_name_in_two_folders_each_keep_their_image(tmp_path):
    """``case001`` and ``sub/case001``: each case's image was taken for the other case's and
    left out, so training refused both as having no image."""
    for folder in (tmp_path, tmp_path / "sub"):
        image(folder / "case001.nrrd")
        segmentation(folder / "case001.seg.nrrd")
    cases, refused, _ = trainer(tmp_path, modality="CT")
    assert refused == [] and [(c.case_id, c.images) for c in cases] == [
        ("case001", [tmp_path / "case001.nrrd"]),
        ("sub/case001", [tmp_path / "sub" / "case001.nrrd"]),
    ]
    assert [c.name for c in check_cases(tmp_path).cases] == ["case001", "sub/case001"]


def test_the_check_is_done_again_when_a_file_of_the_folder_changes(tmp_path):
    """The panel checks on every change of its parameters; the last check is reused only while
    the folder's files are unchanged."""
    image(tmp_path / "a.nrrd")
    segmentation(tmp_path / "a.seg.nrrd")
    first = check_cases(tmp_path, CT, ["liver"])
    assert check_cases(tmp_path, CT, ["liver"]) is first and [c.name for c in first.cases] == ["a"]
    image(tmp_path / "sub" / "b.nrrd")
    assert [c.name for c in check_cases(tmp_path, CT, ["liver"]).cases] == ["a"]  # no labels yet
    segmentation(tmp_path / "sub" / "b.seg.nrrd")
    assert [c.name for c in check_cases(tmp_path, CT, ["liver"]).cases] == ["a", "sub/b"]
    segmentation(tmp_path / "sub" / "b.seg.nrrd", ("spleen", "kidney"))  # rewritten in place
    found = check_cases(tmp_path, CT, ["liver"])
    assert [c.name for c in found.cases] == ["a"]
    assert found.refused[0].startswith("Case 'sub/b': segment 'liver' not found")


def test_no_voxel_is_read(tmp_path):
    """Names, NRRD headers and colour tables only (the Qt main thread, a big folder): images
    that are empty files and a segmentation cut after its header are listed all the same
    (training refuses them when it reads them)."""
    (tmp_path / "a.nrrd").write_bytes(b"")
    segmentation(tmp_path / "a.seg.nrrd")
    header = (tmp_path / "a.seg.nrrd").read_bytes().split(b"\n\n", 1)[0] + b"\n\n"
    (tmp_path / "a.seg.nrrd").write_bytes(header)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.nii.gz").write_bytes(b"")
    (tmp_path / "sub" / "b-label.nii.gz").write_bytes(b"")
    (tmp_path / "sub" / "b-label.ctbl").write_text("1 liver 220 80 60 255\n")
    found = check_cases(tmp_path, CT, ["liver"])
    assert [c.name for c in found.cases] == ["a", "sub/b"] and found.refused == []
    assert found.cases[0].segments == found.cases[1].segments == ["liver"]

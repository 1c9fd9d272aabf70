"""adapter/case_records.folder_cases finds the cases and image files that training's own case
discovery (training/dataset_slicer.py) finds, in sub-folders too, from one listing per folder."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("slicer")  # case_records reads cases back with Slicer's storage nodes
from UNetPlusPlusLib.adapter.case_records import folder_cases  # noqa: E402
from UNetPlusPlusLib.training import dataset_slicer  # noqa: E402

FILES = [
    "a.nrrd",
    "a.seg.nrrd",
    "a_extra.nrrd",  # beside a.nrrd: a has one channel
    "case_1.nrrd",
    "case_1.seg.nrrd",
    "case_1_b.nrrd",  # the image of case_1_b, not a channel of case_1
    "case_1_b.seg.nrrd",
    "mr_flair.nii.gz",
    "mr_t1.mha",
    "mr.seg.nrrd",
    "lm.nii",
    "lm-label.nrrd",  # a labelmap case
    "orphan.nrrd",
    "sub/deep/c.nrrd",
    "sub/deep/c.seg.nrrd",
    "sub/x_T1.nrrd",
    "sub/x_T2.nrrd",
    "sub/x.seg.nrrd",
    ".replaced/a-20261202T000000Z.nrrd",  # hidden: not cases
    ".replaced/a-20261202T000000Z.seg.nrrd",
    "sub/.replaced/x-20261202T000000Z.seg.nrrd",
]


def test_the_cases_and_images_are_those_training_finds(tmp_path):
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    labels = dataset_slicer.case_label_files(tmp_path)
    expected = {}
    for stem, label in labels.items():
        others = [Path(other).name for other in labels if other != stem]
        images = dataset_slicer.images_for(tmp_path / stem, label, others)
        expected[stem] = {"": images[""]} if "" in images else images

    found = {case.name: case.images for case in folder_cases(tmp_path)}
    assert found == expected
    assert sorted(found) == ["a", "case_1", "case_1_b", "lm", "mr", "sub/deep/c", "sub/x"]
    assert found["sub/x"] == {"T1": tmp_path / "sub/x_T1.nrrd", "T2": tmp_path / "sub/x_T2.nrrd"}
    assert found["case_1"] == {"": tmp_path / "case_1.nrrd"}
    assert found["mr"] == {"flair": tmp_path / "mr_flair.nii.gz", "t1": tmp_path / "mr_t1.mha"}

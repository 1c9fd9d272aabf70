"""The patient regex (``--patient-regex``, dataset.json's ``patient_regex``) that splits training
from validation by patient: one that matches no case id at all is one error before any case is
read (each case was silently its own patient: no split by patient at all); a group that takes no
part in a match falls back to the case id (it was None: ``^LIDC-IDRI-(0001)?`` ended in
'internal error (TypeError: '<' not supported between NoneType and str)' after the dataset
fingerprint had read every case); an empty ``--patient-regex`` is refused when parsed (it was
ignored in silence, the dataset.json's regex applying instead)."""

from __future__ import annotations

import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export
from UNetPlusPlusLib.training.dataset_types import patient_id
from UNetPlusPlusLib.training.split import split_cases


@pytest.mark.parametrize(
    "case_id, regex, patient",
    [
        ("LIDC-IDRI-0001_R_1", r"^LIDC-IDRI-(0001)?", "0001"),
        ("LIDC-IDRI-0003_R_2", r"^LIDC-IDRI-(0001)?", "LIDC-IDRI-0003_R_2"),
        ("LIDC-IDRI-0003_R_2", r"(?P<patient>Q)?", "LIDC-IDRI-0003_R_2"),
        ("LIDC-IDRI-0003_R_2", r"LIDC-IDRI-(\d+)", "0003"),
        ("LIDC-IDRI-0003_R_2", r"nomatch(\d+)", "LIDC-IDRI-0003_R_2"),
    ],
)
def test_patient_is_the_group_or_the_case_id(case_id, regex, patient):
    assert patient_id(case_id, regex) == patient


def _cases(tmp_path, regex):
    dataset = describe_slicer_export(write_slicer_dataset(tmp_path / "data"), labels=["tumor"])
    dataset.patient_regex = regex
    return dataset


def test_a_group_that_takes_no_part_splits_without_error(tmp_path):
    cases = find_cases(_cases(tmp_path, r"^case(00)?"))
    assert [c.patient_id for c in cases] == ["00", "case01", "case02", "case03"]
    training, validation = split_cases(cases, 0.25, 0)
    assert len(validation) == 1 and len(training) == 3


def test_a_regex_that_matches_no_case_is_an_error(tmp_path):
    dataset = _cases(tmp_path, r"patient-(\d+)")
    with pytest.raises(UNetPlusPlusError, match=r"patient-\(\\d\+\).*matches none of the 4"):
        find_cases(dataset)


def test_train_refuses_a_regex_matching_no_case_before_reading_cases(tmp_path, capsys):
    data = write_slicer_dataset(tmp_path / "data")
    out = tmp_path / "out"
    args = ["train", str(data), "-o", str(out), "--labels", "tumor", "--modality", "CT"]
    assert main([*args, "--patient-regex", r"patient-(\d+)", "--plan-only"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "matches none of the 4 case ids" in error, error
    assert "internal error" not in error and not out.exists()


def test_train_refuses_an_empty_patient_regex(tmp_path, capsys):
    args = ["train", str(tmp_path / "no-data"), "-o", str(tmp_path / "out")]
    assert main([*args, "--patient-regex", ""]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: argument --patient-regex: ") and "empty" in error, error
    assert not (tmp_path / "out").exists()

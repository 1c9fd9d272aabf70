"""Labelmap folders without ``--labels`` learn the union of every training case's values.

Before, only the first case's values were learnt: a later case's other structure (0/1/2 after
a 0/1 case) was trained as background without a word, and an all-zero first labelmap refused
the whole dataset although later cases had labels (tester 23).
"""

from __future__ import annotations

import numpy as np
import pytest
from test_training_dataset import ball
from test_training_labelmaps import _write
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cases import read_case
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export

M1, M2 = ball((12, 12, 12), 5), ball((17, 17, 17), 4)


def _checked(folder):
    dataset = describe_slicer_export(folder)
    return dataset, check_dataset(dataset, channel_check=False)


def test_a_later_case_value_is_learnt_and_the_cases_lacking_it_named(tmp_path):
    _write(tmp_path, "a", np.where(M1, 1, 0))
    _write(tmp_path, "b", np.where(M1, 1, 0) + np.where(M2, 2, 0))
    dataset, warnings = _checked(tmp_path)
    assert dataset.label_names == ["label 1", "label 2"]
    said = [w for w in warnings if "label 'label 2' (value 2) is in 1 of 2 case(s) (b)" in w]
    assert said and "not in a:" in said[0]
    data = read_case([c for c in find_cases(dataset) if c.case_id == "b"][0], dataset)
    assert np.array_equal(data.labels, np.where(M1, 1, 0) + np.where(M2, 2, 0))


def test_a_0_255_mask_among_0_1_ones_is_refused_naming_both_values(tmp_path):
    """All binary masks with different foreground values: one structure saved two ways, not two
    classes each learnt as background in the other cases (a confidently wrong model)."""
    _write(tmp_path, "a", np.where(M1, 1, 0))
    _write(tmp_path, "b", np.where(M1, 1, 0))
    _write(tmp_path, "c", np.where(M1, 255, 0))
    dataset = describe_slicer_export(tmp_path)
    with pytest.raises(UNetPlusPlusError, match=r"has 1 problem") as error:
        check_dataset(dataset, channel_check=False)
    message = str(error.value)
    assert "every labelmap is a binary mask, but their foreground values differ" in message
    assert "value 1 in a, b; value 255 in c" in message and "--labels" in message


def test_a_value_some_cases_lack_beside_a_shared_one_is_learnt_with_a_warning(tmp_path):
    """Not all binary: a case with 1 and 255 makes them two structures, the value 1 meaning
    the same in every case, and 255 a structure only c has (a tumour some livers lack): each
    case trains as it is labelled. Those lacking 255 are named in a warning, since 255 may
    also be a mistake (docs/TRAINING_DATASETS.md)."""
    _write(tmp_path, "a", np.where(M1, 1, 0))
    _write(tmp_path, "b", np.where(M1, 1, 0))
    _write(tmp_path, "c", np.where(M2, 255, np.where(M1, 1, 0)))
    dataset, warnings = _checked(tmp_path)
    assert dataset.label_names == ["label 1", "label 255"]
    assert any(
        "'label 255' (value 255) is in 1 of 3 case(s) (c), not in a, b: a structure those "
        "cases lack" in w
        for w in warnings
    )
    for case in find_cases(dataset):
        expected = (
            np.where(M1, 1, 0) if case.case_id != "c" else np.where(M2, 2, np.where(M1, 1, 0))
        )
        assert np.array_equal(read_case(case, dataset).labels, expected)


def test_a_later_case_value_takes_its_colour_table_name(tmp_path):
    _write(tmp_path, "a", np.where(M1, 1, 0))
    _write(tmp_path, "b", np.where(M1, 1, 0) + np.where(M2, 2, 0))
    table = "0 Background 0 0 0 0\n1 liver 221 130 101 255\n"
    (tmp_path / "a-label.ctbl").write_text(table)
    (tmp_path / "b-label.ctbl").write_text(table + "2 spleen 157 108 162 255\n")
    dataset = describe_slicer_export(tmp_path)
    check_dataset(dataset, channel_check=False)
    assert dataset.label_names == ["liver", "spleen"]


@pytest.mark.parametrize("empty", ["a", "b"])
def test_an_all_zero_case_is_refused_alone_first_or_not(tmp_path, empty):
    """The first case empty is the same one problem as a later one, not the whole dataset."""
    for name in "abc":
        _write(tmp_path, name, np.zeros((24, 24, 24)) if name == empty else np.where(M1, 1, 0))
    dataset = describe_slicer_export(tmp_path)
    with pytest.raises(UNetPlusPlusError, match=r"has 1 problem") as error:
        check_dataset(dataset, channel_check=False)
    assert f"Case '{empty}': the label {empty}-label.nrrd holds no voxel of" in str(error.value)
    assert "the file holds the value(s) 0)" in str(error.value)
    assert dataset.label_names == ["label 1"]


def test_a_hidden_folder_is_no_case(tmp_path):
    """``.replaced/`` keeps the labels an export replaced (adapter/training_export.py): the
    trainer does not read it (before, it was a case with no image, refusing the folder)."""
    _write(tmp_path, "a", np.where(M1, 1, 0))
    (tmp_path / ".replaced").mkdir()
    (tmp_path / ".replaced" / "a-20261201T000000Z-label.nrrd").write_bytes(
        (tmp_path / "a-label.nrrd").read_bytes()
    )
    (tmp_path / ".replaced" / "a-20261201T000000Z.seg.nrrd").write_bytes(b"")
    dataset = describe_slicer_export(tmp_path)
    assert [c.case_id for c in find_cases(dataset)] == ["a"]

"""Slicer-export folders with labelmaps (``<case>-label.nrrd``) and no ``--labels``.

Before, such a folder described no label at all, with or without a colour table: every case was
refused as "holds no voxel of  (empty label)", a plain 0/1 or 0/255 mask included (tester 22).
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import _image, ball
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cases import read_case
from UNetPlusPlusLib.training.dataset import find_cases
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export


def _write(folder, name: str, labels: np.ndarray) -> None:
    ct = np.where(labels > 0, 60, -800).astype(np.int16)
    sitk.WriteImage(_image(ct), str(folder / f"{name}.nrrd"))
    dtype = np.uint8 if labels.max() <= 255 else np.uint16
    sitk.WriteImage(_image(labels.astype(dtype)), str(folder / f"{name}-label.nrrd"))


@pytest.mark.parametrize("value", [1, 255, 1000])
def test_a_mask_without_colour_table_learns_its_value_with_a_warning(tmp_path, value):
    """Learnt by the dataset check's one reading of each case; a value above 255 (uint16
    labelmap) is a class like any other."""
    mask = ball((12, 12, 12), 5)
    _write(tmp_path, "a", np.where(mask, value, 0))
    dataset = describe_slicer_export(tmp_path)
    warnings = check_dataset(dataset, channel_check=False)
    assert dataset.label_names == [f"label {value}"]
    assert any(
        f"a-label.nrrd holds the value(s) {value}; it has no colour table for them: learnt as "
        f"'label {value}'. Name them with a colour table beside it (a-label.ctbl" in w
        for w in warnings
    )
    data = read_case(find_cases(dataset)[0], dataset)
    assert np.array_equal(data.labels, mask.astype(np.uint8))


def test_a_colour_table_names_the_values_present_without_labels(tmp_path, recwarn):
    mask, other = ball((8, 8, 8), 4), ball((17, 17, 17), 4)
    _write(tmp_path, "a", np.where(mask, 3, 0) + np.where(other, 5, 0))
    (tmp_path / "a-label.ctbl").write_text(
        "0 Background 0 0 0 0\n3 liver_tissue 221 130 101 255\n5 spleen 157 108 162 255\n"
        "9 kidney 185 102 83 255\n"  # named by the table but absent from the labelmap
    )
    dataset = describe_slicer_export(tmp_path)
    said = check_dataset(dataset, channel_check=False)
    assert dataset.label_names == ["liver tissue", "spleen"]
    assert dataset.labels[0].color == pytest.approx((221 / 255, 130 / 255, 101 / 255))
    assert not [w for w in recwarn if "colour table" in str(w.message)]
    assert not [w for w in said if "colour table" in w]
    data = read_case(find_cases(dataset)[0], dataset)
    assert np.array_equal(data.labels, np.where(mask, 1, 0) + np.where(other, 2, 0))


@pytest.mark.parametrize("selector", ["255", "label 255"])
def test_labels_picks_a_value_of_a_labelmap_without_colour_table(tmp_path, selector):
    mask = ball((12, 12, 12), 5)
    _write(tmp_path, "a", np.where(mask, 255, 0))
    dataset = describe_slicer_export(tmp_path, labels=[selector])
    data = read_case(find_cases(dataset)[0], dataset)
    assert np.array_equal(data.labels, mask.astype(np.uint8))
    named = describe_slicer_export(tmp_path, labels=["liver"])
    with pytest.raises(UNetPlusPlusError, match=r"by number instead \(--labels 1\)"):
        read_case(find_cases(named)[0], named)


def test_an_all_zero_only_labelmap_is_one_clear_error(tmp_path):
    _write(tmp_path, "a", np.zeros((24, 24, 24)))
    dataset = describe_slicer_export(tmp_path)  # later cases may hold labels: not refused here
    with pytest.raises(UNetPlusPlusError, match=r"has 1 problem") as error:
        check_dataset(dataset, channel_check=False)
    assert (
        "a-label.nrrd holds no voxel of any label (empty label; the file holds the value(s) 0)"
        in (str(error.value))
    )


def test_a_case_whose_mask_uses_another_value_names_the_values_it_holds(tmp_path):
    """A 0/1 mask among 0/255 ones was refused as "empty label", which it is not."""
    mask = ball((12, 12, 12), 5)
    _write(tmp_path, "a", np.where(mask, 255, 0))
    _write(tmp_path, "b", np.where(mask, 1, 0))
    dataset = describe_slicer_export(tmp_path, labels=["label 255"])
    case_b = [c for c in find_cases(dataset) if c.case_id == "b"][0]
    with pytest.raises(
        UNetPlusPlusError, match=r"label 255 \(empty label; the file holds the value\(s\) 0, 1\)"
    ):
        read_case(case_b, dataset)


def test_a_labelmap_saved_as_seg_nrrd_is_refused_naming_the_fix(tmp_path):
    """A plain labelmap named <case>.seg.nrrd (no Segment<N>_ fields) was refused as 'no
    segment or label value (no segment, or all voxels 0)' though it held a mask (fresh user 24)."""
    mask = ball((12, 12, 12), 5).astype(np.uint8)
    sitk.WriteImage(_image(np.where(mask, 60, -800).astype(np.int16)), str(tmp_path / "a.nrrd"))
    sitk.WriteImage(_image(mask), str(tmp_path / "a.seg.nrrd"))
    hint = r"a.seg.nrrd has no segments .*labelmap saved under the .seg.nrrd name.*a-label.nrrd"
    with pytest.raises(UNetPlusPlusError, match=hint):
        describe_slicer_export(tmp_path)
    dataset = describe_slicer_export(tmp_path, labels=["liver"])
    with pytest.raises(UNetPlusPlusError, match=hint):
        read_case(find_cases(dataset)[0], dataset)

"""A case whose image is not of the dataset's modality is refused, naming it and its files
(fresh user 25: a label map, or an MR, exported as the image of one case of a CT folder was only
warned about in train.log, and could land in the validation split, where it corrupts the
reported Dice, or in training). A dataset whose every case is so (synthetic or processed
data) is still only warned about. Tiny 24^3 cases; nothing is trained."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import one_error_line
from test_training_dataset import SPACING, write_slicer_case, write_slicer_dataset
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.dataset_check import check_dataset
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export


def _replace_image(folder, name: str, array: np.ndarray) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((SPACING,) * 3)
    sitk.WriteImage(image, str(folder / f"{name}.nrrd"))


def test_a_label_map_or_an_mr_among_ct_cases_is_refused_naming_it(tmp_path, capsys):
    data = write_slicer_dataset(tmp_path / "data", cases=3)
    mask = write_slicer_case(data, "labelmap", seed=7)
    _replace_image(data, "labelmap", mask.astype(np.int16))  # the case's label as its image
    write_slicer_case(data, "mr", seed=8)
    mr = np.random.default_rng(0).gamma(2.0, 50.0, mask.shape).astype(np.float32)
    _replace_image(data, "mr", mr)
    out = tmp_path / "out"
    assert (
        main([str(data), "-o", str(out), "--labels", "tumor", "--epochs", "1", "--plan-only"]) == 2
    )
    error = one_error_line(capsys)
    assert "has 2 problem(s); nothing was trained or written" in error
    assert "Case 'labelmap': Input 'CT' looks like a label map (2 distinct integer" in error
    assert "Case 'mr': Input 'CT' is not a CT in Hounsfield units" in error
    assert "the other 3 case(s) checked are CT images" in error
    assert "move its files (labelmap.nrrd, labelmap.seg.nrrd) out of the dataset" in error
    assert "move its files (mr.nrrd, mr.seg.nrrd) out of the dataset" in error
    assert not out.exists()


def test_a_dataset_whose_every_case_lacks_air_is_only_warned_about(tmp_path):
    for i in range(2):
        mask = write_slicer_case(tmp_path, f"c{i}", seed=i)
        _replace_image(tmp_path, f"c{i}", np.where(mask, 140, 40).astype(np.int16))
    dataset = describe_slicer_export(tmp_path, labels=["tumor"], modality="CT")
    warnings = check_dataset(dataset)
    said = [w for w in warnings if "looks like a label map" in w]
    assert [w.split(":")[0] for w in said] == ["Case 'c0'", "Case 'c1'"]
    assert not any("move its files" in w for w in warnings)
    write_slicer_case(tmp_path, "c2", seed=2)  # one real CT: the other two are refused
    with pytest.raises(UNetPlusPlusError, match="has 2 problem") as raised:
        check_dataset(describe_slicer_export(tmp_path, labels=["tumor"], modality="CT"))
    assert "the other 1 case(s) checked are CT images" in str(raised.value)

"""The modality of a Slicer-export folder without --modality: a majority of a spread sample of
cases, not the first case alone (fresh user 25: a label map exported as the first case's image
made a CT folder 'MR', and every real CT was then refused as an MR without background)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from test_training_dataset import SPACING, write_slicer_case
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.dataset_images import spread_sample
from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export


def _no_air(folder, name: str) -> None:
    """Case ``name`` whose image is replaced by its 0/1 mask (a label map given as the image)."""
    mask = write_slicer_case(folder, name, seed=7)
    image = sitk.GetImageFromArray(mask.astype(np.int16))
    image.SetSpacing((SPACING,) * 3)
    sitk.WriteImage(image, str(folder / f"{name}.nrrd"))


def test_one_odd_first_case_does_not_decide_the_modality(tmp_path):
    _no_air(tmp_path, "a")  # sorted first
    for i, name in enumerate(("b", "c")):
        write_slicer_case(tmp_path, name, seed=i)
    dataset = describe_slicer_export(tmp_path, labels=["tumor"])
    assert [c.modality for c in dataset.channels] == ["CT"]
    assert dataset.channels[0].normalization["kind"] == "ct"


def test_an_even_split_asks_for_the_modality(tmp_path):
    _no_air(tmp_path, "a")
    write_slicer_case(tmp_path, "b", seed=1)
    with pytest.raises(UNetPlusPlusError, match=r"b look\(s\) like CT .*a like MR.*--modality"):
        describe_slicer_export(tmp_path, labels=["tumor"])
    given = describe_slicer_export(tmp_path, labels=["tumor"], modality="CT")
    assert [c.modality for c in given.channels] == ["CT"]


def test_spread_sample_keeps_the_first_and_the_last():
    assert spread_sample(list(range(3))) == [0, 1, 2]
    assert spread_sample(list(range(101))) == [0, 25, 50, 75, 100]

"""A channel on another grid is refused naming its own size first: 't2 does not share the
geometry of flair (size (T2) vs (FLAIR))' in each reader (whole, streamed, region)."""

import re

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.region_read import read_region
from UNetPlusPlusLib.engine.streamed_checks import check_files
from UNetPlusPlusLib.engine.volume import Box, UNetPlusPlusError


def _write(path, size_xyz, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(np.ones(size_xyz[::-1], np.float32))
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture
def flair_t2(tmp_path):
    flair = _write(tmp_path / "flair.nii", (6, 5, 4), (1.0, 1.0, 1.0))
    t2 = _write(tmp_path / "t2.nii", (8, 5, 4), (2.0, 1.0, 1.0))
    return flair, t2


def _assert_t2_first(message):
    assert "t2.nii does not share the geometry of" in message and "flair.nii" in message
    assert "size (8, 5, 4) vs (6, 5, 4)" in message, message
    assert re.search(r"spacing \(2, 1, 1\) vs \(1, 1, 1\)", message), message


def test_read_volume_names_the_mismatched_file_values_first(flair_t2):
    with pytest.raises(UNetPlusPlusError) as err:
        read_volume(list(flair_t2), ["flair", "t2"])
    _assert_t2_first(str(err.value))


def test_streamed_checks_name_the_mismatched_file_values_first(flair_t2):
    with pytest.raises(UNetPlusPlusError) as err:
        check_files(list(flair_t2), ["MR", "MR"], ["flair", "t2"])
    _assert_t2_first(str(err.value))


def test_region_read_names_the_mismatched_file_values_first(flair_t2):
    with pytest.raises(UNetPlusPlusError) as err:
        read_region(list(flair_t2), Box((0.0, 0.0, 0.0), (3.0, 3.0, 3.0)))
    _assert_t2_first(str(err.value))

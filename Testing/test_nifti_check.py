"""Truncated NIfTI files are refused (ITK's reader would pad them silently)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.volume import read_image
from UNetPlusPlusLib.errors import UNetPlusPlusError


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("fraction", [0.3, 0.999])
def test_truncated_nifti_is_refused(tmp_path, suffix, fraction):
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((12, 13, 14)).astype("f4"))
    path = tmp_path / f"ok{suffix}"
    sitk.WriteImage(image, str(path), True)
    assert read_image(path).GetSize() == (14, 13, 12)
    data = path.read_bytes()
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UNetPlusPlusError, match="broken.nii.*truncated"):
        read_image(broken)


def test_shared_nifti_files_pass_the_check(shared_data):
    for path in sorted((shared_data / "liver" / "totalsegmentator-examples").glob("*.nii.gz")):
        read_image(path)

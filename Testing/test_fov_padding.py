"""The padded corners of a CT resampled onto a rotated grid are no room above a liver
(engine/fov_padding.py, used by anatomy_check's "no lung above"): the demo CT's reference liver
rotated 25 degrees about x was warned "ends 60 mm below the top of the image"; the region below
the liver is still warned when rotated."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotated_grid
from UNetPlusPlusLib.engine.anatomy_check import check_result
from UNetPlusPlusLib.engine.fov_padding import PADDING_HU, measured
from UNetPlusPlusLib.engine.image_read import volume_from_sitk

EXAMPLES = "liver/totalsegmentator-examples/"


def _rotated(image: sitk.Image, angles, pad: float, nearest: bool = False) -> sitk.Image:
    """``image`` on a grid rotated by ``angles`` (degrees) that holds all of it, ``pad``
    outside (linear for HU, nearest for labels)."""
    size, origin, spacing, direction = rotated_grid(image, angles)
    how = sitk.sitkNearestNeighbor if nearest else sitk.sitkLinear
    return sitk.Resample(image, size, sitk.Transform(), how, origin, spacing, direction, pad)


@pytest.mark.parametrize("pad", [-1024.0, -3024.0])
@pytest.mark.parametrize("angles", [(25, 0, 0), (20, -15, 25)])
def test_a_rotated_real_liver_is_not_warned_for_its_padded_corners(shared_data, angles, pad):
    ct = sitk.ReadImage(str(shared_data / EXAMPLES / "example_ct.nii.gz"), sitk.sitkFloat32)
    label = sitk.ReadImage(str(shared_data / EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    volume = volume_from_sitk([_rotated(ct, angles, pad)], ["CT"])
    labels = sitk.GetArrayFromImage(
        _rotated(sitk.Cast(label == 5, sitk.sitkUInt8), angles, 0, True)
    )
    warnings, summary = check_result("liver", volume, labels, volume.grid, 1, "liver")
    assert warnings == [] and summary["failed"] == [], summary
    assert summary["room_above_mm"] <= 8.0  # the liver reaches the top of the measured data


def test_the_region_below_the_liver_is_still_warned_when_rotated(shared_data):
    ct = sitk.ReadImage(str(shared_data / EXAMPLES / "example_ct.nii.gz"), sitk.sitkFloat32)
    below = ct[:, :, :60]  # the pelvis and lower abdomen: the liver starts at slice 69
    mask = sitk.Image(below.GetSize(), sitk.sitkUInt8)
    mask.CopyInformation(below)
    mask[90:110, 20:40, 20:40] = 1  # where the shipped model put 66 ml (tester 6)
    volume = volume_from_sitk([_rotated(below, (25, 0, 0), -1024.0)], ["CT"])
    labels = sitk.GetArrayFromImage(_rotated(mask, (25, 0, 0), 0, True))
    warnings, summary = check_result("liver", volume, labels, volume.grid, 1, "liver")
    assert "no_lung_above" in summary["failed"] and summary["room_above_mm"] >= 30.0
    assert "with no lung above it" in warnings[0]


def test_measured_cells_exclude_padding_only():
    fov = np.ones((2, 2, 2), bool)
    hu = np.array([-1000.0, -1009.0, -1011.0, -3024.0, 40.0, -850.0, -1024.0, 0.0]).reshape(2, 2, 2)
    fov[1, 1, 1] = False
    expected = (hu >= PADDING_HU) & fov
    np.testing.assert_array_equal(measured(fov, hu), expected)
    assert measured(fov, hu).sum() == 4  # air (-1000, -1009), tissue (40) and lung (-850)

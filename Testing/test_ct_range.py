"""A CT shifted far below air (its rescale intercept applied twice) is refused (tester 8).

The example CT with -1024 HU added gave 0.594 ml of liver instead of 1031.6 ml, with no warning:
it still held "air" (values below -500 HU), so every CT check passed.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.ct_range import below_air_problem, inverted_problem
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_stats, check_intensities
from UNetPlusPlusLib.errors import UNetPlusPlusError


def body_ct(padding: float = -3024.0) -> np.ndarray:
    """(z, y, x) int16: air, a soft-tissue body with lungs, padding outside a circle."""
    rng = np.random.default_rng(1)
    z, y, x = np.indices((20, 64, 64))
    ct = rng.normal(-1000, 15, (20, 64, 64))
    body = (y - 32) ** 2 / 28**2 + (x - 32) ** 2 / 22**2 <= 1
    ct[body] = rng.normal(40, 20, body.sum())
    lungs = body & ((y - 26) ** 2 + (np.abs(x - 32) - 10) ** 2 <= 7**2)
    ct[lungs] = rng.normal(-850, 30, lungs.sum())
    ct[(y - 32) ** 2 + (x - 32) ** 2 > 31**2] = padding
    return ct.astype(np.int16)


@pytest.mark.parametrize("padding", [-3024.0, -2048.0, -1024.0])
def test_a_ct_with_padding_passes_and_shifted_by_the_intercept_is_refused(padding):
    ct = body_ct(padding).astype(np.float32)
    assert below_air_problem(channel_stats(ct).sample, "CT") == ""
    assert check_intensities(ct[None], ["CT"], ["CT"]) == []
    shifted = ct - 1024
    problem = below_air_problem(channel_stats(shifted).sample, "CT")
    assert "applied twice" in problem and "HU = value + 1024" in problem
    with pytest.raises(UNetPlusPlusError, match="far below air"):
        check_intensities(shifted[None], ["CT"], ["CT"])


def test_the_cli_refuses_the_shifted_example_ct_in_one_line(shared_data, tmp_path, capfd):
    source = shared_data / "liver" / "totalsegmentator-examples" / "example_ct_sm.nii.gz"
    image = sitk.ReadImage(str(source))
    assert below_air_problem(channel_stats(sitk.GetArrayFromImage(image)).sample, "CT") == ""
    shifted = sitk.Cast(image, sitk.sitkInt16) - 1024
    path = tmp_path / "double_intercept.nii.gz"
    sitk.WriteImage(shifted, str(path))
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out), "--quiet"]) == 2
    err = capfd.readouterr().err
    assert err.count("error:") == 1 and "far below air" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "relative",
    [
        "liver/lits-partial/liver_1_ct.nii.gz",
        "liver/totalsegmentator-dataset-s0009/ct.nii.gz",
        "liver/totalsegmentator-examples/pulm_ct_cropped.nii.gz",
        "lung-nodule/lidc-vois/image/LIDC-IDRI-0001_R_1.nii.gz",
    ],
)
def test_real_cts_pass_and_their_shifted_copies_do_not(shared_data, relative):
    volume = read_volume([shared_data / relative])
    sample = channel_stats(volume.array[0]).sample
    assert below_air_problem(sample, "CT") == ""
    assert below_air_problem(sample - 1024, "CT") != ""


# ------------------------------------------------------------ inverted values (tester 10)
def test_a_ct_with_inverted_values_is_refused_and_the_ct_passes():
    """A CT saved as its negative (a NIfTI scl_slope of -1: the example CT then gave 'liver
    5612.463 ml' with no warning) still holds values below -500 (its bone, negated), so the
    air check passed; most of it now lies above +500 HU (air and lung, negated)."""
    ct = body_ct().astype(np.float32)
    z, y, x = np.indices(ct.shape)
    ct[(y - 50) ** 2 + (x - 32) ** 2 <= 4**2] = 1000.0  # a spine: bone above +500 HU
    assert inverted_problem(channel_stats(ct).sample, "CT") == ""
    assert check_intensities(ct[None], ["CT"], ["CT"]) == []
    problem = inverted_problem(channel_stats(-ct).sample, "CT")
    assert "inverted" in problem and "above +500 HU" in problem
    with pytest.raises(UNetPlusPlusError, match="inverted"):
        check_intensities(-ct[None], ["CT"], ["CT"])


@pytest.mark.parametrize(
    "relative",
    [
        "liver/totalsegmentator-examples/example_ct.nii.gz",
        "liver/totalsegmentator-dataset-s0009/ct.nii.gz",
        "liver/totalsegmentator-examples/pulm_ct_cropped.nii.gz",
        "lung-nodule/lidc-vois/image/LIDC-IDRI-0477_R_2.nii.gz",  # the most bone: 0.57 of air
    ],
)
def test_real_cts_pass_and_their_negatives_do_not(shared_data, relative):
    sample = channel_stats(read_volume([shared_data / relative]).array[0]).sample
    assert inverted_problem(sample, "CT") == ""
    assert inverted_problem(-sample, "CT") != ""

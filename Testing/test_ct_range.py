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


# ------------------------------------------ real CTs with little air are not inverted (tester 11)
def _outside_air_to_zero(image: sitk.Image) -> np.ndarray:
    """The CT with the air connected to its corners (outside the body) set to 0, as some
    scanners and converters pad; the lungs and bowel gas stay."""
    x, y, _ = image.GetSize()
    seeds = [(0, 0, 0), (x - 1, 0, 0), (0, y - 1, 0), (x - 1, y - 1, 0)]
    outside = sitk.ConnectedThreshold(image, seedList=seeds, lower=-5000, upper=-500)
    array = sitk.GetArrayFromImage(image).astype(np.float32)
    array[sitk.GetArrayFromImage(outside) > 0] = 0
    return array


def _little_air_cts(shared_data) -> dict[str, np.ndarray]:
    """Real CTs holding more voxels above +500 HU (bone, contrast) than at or below -500 HU,
    and fewer than the voxels between +150 and +500 HU; each was refused as 'inverted'."""
    liver = shared_data / "liver"
    s0009 = sitk.ReadImage(str(liver / "totalsegmentator-dataset-s0009" / "ct.nii.gz"))
    ct = sitk.GetArrayFromImage(s0009).astype(np.float32)
    label = sitk.GetArrayFromImage(
        sitk.ReadImage(str(liver / "totalsegmentator-dataset-s0009" / "liver.nii.gz"))
    )
    box = tuple(slice(max(0, int(i.min()) - 10), int(i.max()) + 11) for i in np.nonzero(label == 1))
    _, y, x = ct.shape
    pulm = sitk.ReadImage(str(liver / "totalsegmentator-examples" / "pulm_ct_cropped.nii.gz"))
    return {
        "s0009 cropped to its liver (+10 voxels)": ct[box],
        "s0009 central half of the field of view": ct[:, y // 4 : 3 * y // 4, x // 4 : 3 * x // 4],
        "s0009 with the air outside the body 0": _outside_air_to_zero(s0009),
        "pulm_ct_cropped with the air outside the body 0": _outside_air_to_zero(pulm),
    }


def test_real_cts_with_little_air_are_not_refused_as_inverted(shared_data):
    for what, ct in _little_air_cts(shared_data).items():
        assert np.count_nonzero(ct >= 500) > np.count_nonzero(ct <= -500), what  # the old rule
        assert inverted_problem(channel_stats(ct).sample, "CT") == "", what
        assert check_intensities(ct[None], ["CT"], ["CT"]) == [], what


def test_the_cli_segments_a_real_ct_cropped_to_the_liver(shared_data, tmp_path, capfd):
    folder = shared_data / "liver" / "totalsegmentator-dataset-s0009"
    image = sitk.ReadImage(str(folder / "ct.nii.gz"))
    label = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "liver.nii.gz")))
    (z0, z1), (y0, y1), (x0, x1) = ((int(i.min()), int(i.max())) for i in np.nonzero(label))
    crop = image[max(0, x0 - 10) : x1 + 11, max(0, y0 - 10) : y1 + 11, max(0, z0 - 10) : z1 + 11]
    path = tmp_path / "liver_crop.nii.gz"
    sitk.WriteImage(crop, str(path))
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out), "--quiet"]) == 0
    assert "error:" not in capfd.readouterr().err
    assert sitk.ReadImage(str(out)).GetSize() == crop.GetSize()

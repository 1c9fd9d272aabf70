"""A "liver" on the body's midline (engine/liver_side.py): the skeleton's midline on synthetic
coarse masks, also where the image cuts the body's sides; the shipped model's 321 ml on the
bladder of the demo CT's lower third warned; the reference livers of the shared data, on their
own and on a left-right reversed grid, pass."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.anatomy_check import measure_liver
from UNetPlusPlusLib.engine.image_read import read_volume, volume_from_sitk
from UNetPlusPlusLib.engine.liver_position import measure_position
from UNetPlusPlusLib.engine.liver_side import (
    MIDLINE_MM,
    MIN_LEVELS,
    bone_midline_offset,
    on_midline,
)

DEMO_CT = Path(__file__).resolve().parents[1] / "Resources" / "Examples" / "example_ct.nii.gz"
EXAMPLES = Path("liver") / "totalsegmentator-examples"


def _pelvis(width: int = 100, shift: int = 0):
    """Coarse (z, y, x) masks and HU, x from the patient's right to left: a trunk as wide as the
    image (``width`` cells: cut at both sides), a spine (400 HU) at x = 50 + ``shift``."""
    z, y, x = np.meshgrid(np.arange(20), np.arange(60), np.arange(width), indexing="ij")
    trunk = np.abs(y - 30) <= 25
    hu = np.where(trunk, 40.0, -1000.0)
    hu[(np.abs(x - 50 - shift) <= 2) & (np.abs(y - 45) <= 2)] = 400.0
    return trunk, hu, (x, y, z)


def test_the_offset_is_measured_from_the_skeleton():
    trunk, hu, (x, y, z) = _pelvis()
    bladder = (((x - 51) / 10.0) ** 2 + ((y - 30) / 10.0) ** 2 <= 1) & (z < 15)
    liver = (((x - 30) / 10.0) ** 2 + ((y - 30) / 10.0) ** 2 <= 1) & (z < 15)
    assert bone_midline_offset(bladder, hu, trunk) == pytest.approx(4.0)  # 1 cell left
    assert bone_midline_offset(liver, hu, trunk) == pytest.approx(-80.0)
    assert on_midline(4.0) and not on_midline(-80.0) and not on_midline(None)
    assert not on_midline(MIDLINE_MM + 4.0)  # farther left: "left_side"'s business
    # the patient lies off-centre: the skeleton moves with the body, the image's centre not
    trunk, hu, _ = _pelvis(shift=-20)
    assert bone_midline_offset(bladder, hu, trunk) == pytest.approx(84.0)
    no_bone = np.where(hu > 100, 40.0, hu)
    assert bone_midline_offset(bladder, no_bone, trunk) is None
    # a thin slab (under MIN_LEVELS axial levels) is not judged; MIN_LEVELS of them are
    assert bone_midline_offset(bladder & (z < MIN_LEVELS - 1), hu, trunk) is None
    assert bone_midline_offset(bladder & (z < MIN_LEVELS), hu, trunk) == pytest.approx(84.0)


def test_measure_position_fails_on_midline_for_whole_images_only():
    trunk, hu, (x, y, z) = _pelvis()
    bladder = (((x - 51) / 10.0) ** 2 + ((y - 30) / 10.0) ** 2 <= 1) & (z < 15)
    lung = np.zeros_like(trunk)
    found = measure_position(bladder, lung, trunk, hu=hu)
    assert found.failed == ["on_midline"] and found.bone_midline_mm == pytest.approx(4.0)
    # a ROI may hold the liver's left lobe only; without the CT the rule is not applied
    assert measure_position(bladder, lung, trunk, whole_image=False, hu=hu).failed == []
    assert measure_position(bladder, lung, trunk).bone_midline_mm is None


@functools.cache
def _lower_third():
    from UNetPlusPlusLib.engine.predictor import Predictor

    volume = volume_from_sitk([sitk.ReadImage(str(DEMO_CT))[:, :, :37]], ["CT"])
    return Predictor.from_task("liver", device="cpu", threads=2).segment(volume)


def test_the_bladder_of_the_demo_cts_lower_third_is_warned():
    """Before: 321 ml of "liver" on the bladder, no warning (the reference has no liver in
    these slices; the body is cut by both sides of the image, so "left of the midline" cannot
    see the midline)."""
    result = _lower_third()
    ml = np.count_nonzero(result.labels.array) * 27.0 / 1000.0
    assert ml > 100.0  # still written
    anatomy = result.info["anatomy"]
    assert anatomy["midline_offset_mm"] is None  # the body's midline: unknown here
    assert "on_midline" in anatomy["failed"] and anatomy["passed"] is False, anatomy
    (warning,) = [w for w in result.info["warnings"] if "not where a liver lies" in w]
    assert "its centre lies on the body's midline" in warning


@pytest.mark.parametrize("start, stop", [(8, 12), (9, 15)])
def test_the_models_liver_on_a_thin_slab_at_the_dome_is_not_on_the_midline(
    shared_data, start, stop
):
    """The shipped model on 4 and 6 slices (2 mm) of the DICOM series at the liver's dome,
    where the left lobe reaches across the midline: its centre 12.8 and 11.9 mm right of the
    skeleton's midline, warned "on the midline" before (limit 15 mm); a slab under 20 mm is not
    judged now. Its other warnings (thin input, cut by the image's edge) stay."""
    from UNetPlusPlusLib.engine.predictor import Predictor

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(
        reader.GetGDCMSeriesFileNames(str(shared_data / EXAMPLES / "example_ct_dicom"))
    )
    volume = volume_from_sitk([reader.Execute()[:, :, start:stop]], ["CT"])
    result = Predictor.from_task("liver", device="cpu", threads=2).segment(volume)
    assert np.count_nonzero(result.labels.array) * 0.98 * 0.98 * 2.0 / 1000.0 > 50.0  # ml
    anatomy = result.info["anatomy"]
    assert "on_midline" not in anatomy["failed"] and anatomy["position"]["bone_midline_mm"] is None
    assert not any("on the body's midline" in w for w in result.info["warnings"])
    assert any("cut by the edge of the image" in w for w in result.info["warnings"])


@pytest.mark.parametrize(
    "image, label, values",
    [
        ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", [5]),
        ("example_ct_dicom", "example_seg_dicom.nii.gz", [5]),
        ("../lits-partial/liver_0_ct.nii.gz", "../lits-partial/liver_0_label.nii.gz", [1, 2]),
        ("../lits-partial/liver_1_ct.nii.gz", "../lits-partial/liver_1_label.nii.gz", [1, 2]),
        (
            "../totalsegmentator-dataset-s0009/ct.nii.gz",
            "../totalsegmentator-dataset-s0009/liver.nii.gz",
            [1],
        ),
    ],
)
def test_reference_livers_lie_right_of_the_skeletons_midline(shared_data, image, label, values):
    folder = shared_data / EXAMPLES
    volume = read_volume([folder / image], ["CT"])
    mask = np.isin(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / label))), values)
    findings = measure_liver(volume, mask)
    assert findings.position["bone_midline_mm"] < -40.0, findings.position  # 47-94 mm
    assert "on_midline" not in findings.failed


def _reversed_x(image: sitk.Image) -> sitk.Image:
    """The same physical content stored with its x index axis the other way."""
    out = sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:, :, ::-1].copy())
    out.SetSpacing(image.GetSpacing())
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    direction[:, 0] *= -1
    out.SetDirection(direction.flatten().tolist())
    out.SetOrigin(image.TransformIndexToPhysicalPoint([image.GetSize()[0] - 1, 0, 0]))
    return out


def test_a_left_right_reversed_grid_gives_the_same_offset(shared_data):
    """The demo CT and its reference stored with the x axis the other way (the same physical
    content): the offset is measured in LPS, so it keeps its sign and size."""
    image = sitk.ReadImage(str(DEMO_CT))
    labels = sitk.ReadImage(str(shared_data / EXAMPLES / "example_seg_fast_force_split.nii.gz"))
    offsets = []
    for ct, seg in ((image, labels), (_reversed_x(image), _reversed_x(labels))):
        volume = volume_from_sitk([ct], ["CT"])
        findings = measure_liver(volume, sitk.GetArrayFromImage(seg) == 5)
        offsets.append(findings.position["bone_midline_mm"])
    assert offsets[0] < -50.0 and offsets[1] == pytest.approx(offsets[0], abs=4.0)

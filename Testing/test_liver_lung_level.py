"""A "liver" in the chest (engine/liver_lung_level.py): on synthetic coarse masks the share of
lung at a segment's levels, and on real CTs the shipped model's false "liver" on the heart of
chest slabs that no other rule caught (the upper half of aorta_ct_cropped, the left half of
pulm_ct_cropped: one lung) warned, while the liver's dome at the bottom of the right half and
the reference livers of the shared data pass."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.anatomy_check import measure_liver
from UNetPlusPlusLib.engine.image_read import read_volume, volume_from_sitk
from UNetPlusPlusLib.engine.liver_lung_level import MAX_LUNG_LEVEL_SHARE, lung_level_share
from UNetPlusPlusLib.engine.liver_position import measure_position

EXAMPLES = Path("liver") / "totalsegmentator-examples"


def _chest():
    """Coarse (z, y, x) masks: an elliptic trunk 40 cells high, two lungs in its upper half
    (z >= 20) filling about 40 % of the chest's section there."""
    z, y, x = np.meshgrid(np.arange(40), np.arange(60), np.arange(100), indexing="ij")
    inside = ((x - 50) / 35.0) ** 2 + ((y - 30) / 25.0) ** 2 <= 1
    lung = np.zeros_like(inside)
    for centre in (33, 67):
        lung |= (((x - centre) / 13.0) ** 2 + ((y - 30) / 18.0) ** 2 <= 1) & (z >= 20)
    return inside & ~lung, lung, (x, y, z)


def test_the_share_of_lung_at_a_segments_levels():
    trunk, lung, (x, y, z) = _chest()
    heart = trunk & (((x - 50) / 8.0) ** 2 + ((y - 30) / 8.0) ** 2 <= 1) & (z >= 24) & (z < 34)
    liver = trunk & (((x - 35) / 15.0) ** 2 + ((y - 30) / 15.0) ** 2 <= 1) & (z < 18)
    lung_part = np.count_nonzero(lung[30]) / np.count_nonzero(lung[30] | trunk[30])
    assert lung_level_share(heart, lung, trunk) == pytest.approx(lung_part)
    assert lung_part > MAX_LUNG_LEVEL_SHARE
    assert lung_level_share(liver, lung, trunk) == 0.0
    # half of its cells at lung levels (the same section on each slice): the mean over them
    dome = (((x - 35) / 10.0) ** 2 + ((y - 30) / 10.0) ** 2 <= 1) & (z >= 16) & (z < 24)
    assert lung_level_share(dome, lung, trunk) == pytest.approx(lung_part / 2, abs=0.02)
    assert lung_level_share(np.zeros_like(lung), lung, trunk) is None
    with pytest.raises(ValueError, match="shapes differ"):
        lung_level_share(heart[1:], lung, trunk)


def test_measure_position_fails_in_chest_and_leaves_the_liver():
    trunk, lung, (x, y, z) = _chest()
    body = trunk  # the lungs are not body (below -400 HU)
    heart = trunk & (((x - 50) / 8.0) ** 2 + ((y - 30) / 8.0) ** 2 <= 1) & (z >= 24) & (z < 34)
    found = measure_position(heart, lung, body)
    assert "in_chest" in found.failed and found.lung_level_share > MAX_LUNG_LEVEL_SHARE
    liver = trunk & (((x - 35) / 15.0) ** 2 + ((y - 30) / 15.0) ** 2 <= 1) & (z < 20)
    assert measure_position(liver, lung, body).failed == []


@functools.cache
def _chest_result(shared_data: Path, name: str, part: str):
    """The shipped model's result on a part of a TotalSegmentator chest crop (1.5 mm, stored
    x from the patient's right to left): "upper half" in z, or the "left"/"right" half in x."""
    from UNetPlusPlusLib.engine.predictor import Predictor

    image = sitk.ReadImage(str(shared_data / EXAMPLES / name))
    nx, _, nz = image.GetSize()
    cut = {
        "upper half": image[:, :, nz // 2 :],
        "left": image[nx // 2 :],
        "right": image[: nx // 2],
    }
    volume = volume_from_sitk([cut[part]], ["CT"])
    return Predictor.from_task("liver", device="cpu", threads=2).segment(volume)


@pytest.mark.parametrize(
    "name, part",
    [("aorta_ct_cropped.nii.gz", "upper half"), ("pulm_ct_cropped.nii.gz", "left")],
)
def test_a_liver_on_the_heart_of_a_chest_slab_is_warned(shared_data, name, part):
    """Before: 150 ml (aorta, upper half, both lungs, not flanked) and 145 ml (pulm, left half:
    one lung) of "liver" on the heart with no warning."""
    result = _chest_result(shared_data, name, part)
    assert result.labels.array.any()  # still written
    anatomy = result.info["anatomy"]
    assert "in_chest" in anatomy["failed"] and anatomy["passed"] is False, anatomy
    assert anatomy["position"]["lung_level_share"] > MAX_LUNG_LEVEL_SHARE
    (warning,) = [w for w in result.info["warnings"] if "not where a liver lies" in w]
    assert "it lies in the chest: lung fills" in warning


def test_the_liver_dome_below_the_heart_is_not_in_the_chest(shared_data):
    """The right half of pulm_ct_cropped: the model finds the liver's dome at the bottom of the
    crop (246 ml, cut by the image's bottom), where little lung is left."""
    result = _chest_result(shared_data, "pulm_ct_cropped.nii.gz", "right")
    anatomy = result.info["anatomy"]
    assert "in_chest" not in anatomy["failed"], anatomy
    assert anatomy["position"]["lung_level_share"] < 0.2
    assert "inferior" in anatomy["edge"]["sides"]  # cut by the bottom of the image


@pytest.mark.parametrize(
    "image, label, values",
    [
        ("example_ct.nii.gz", "example_seg_fast_force_split.nii.gz", [5]),
        ("example_ct_dicom", "example_seg_dicom.nii.gz", [5]),
        ("../lits-partial/liver_1_ct.nii.gz", "../lits-partial/liver_1_label.nii.gz", [1, 2]),
    ],
)
def test_reference_livers_lie_below_the_lungs(shared_data, image, label, values):
    folder = shared_data / EXAMPLES
    volume = read_volume([folder / image], ["CT"])
    mask = np.isin(sitk.GetArrayFromImage(sitk.ReadImage(str(folder / label))), values)
    share = measure_liver(volume, mask).position["lung_level_share"]
    assert share < 0.2  # measured 0.00-0.19; the 20 DICOM slices at the dome: 0.19

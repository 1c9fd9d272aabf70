"""A CT model given an image of few integer values is told it got no CT, not a label map.

A BraTS T1ce (205 integer values from 0 to 211) given to the liver model was refused as
"looks like a label map (205 distinct integer values from 0 to 211)" (fresh user 27): up to
256 distinct non-negative integers counted as labels. Labels come in regions of equal values,
an image holds noise (engine/intensity_checks.LABEL_MAP_MIN_EQUAL_SHARE).
"""

from __future__ import annotations

import numpy as np
import pytest
from UNetPlusPlusLib.engine.intensity_checks import check_intensities
from UNetPlusPlusLib.errors import UNetPlusPlusError


def _refusal(array: np.ndarray, modality: str = "CT") -> str:
    with pytest.raises(UNetPlusPlusError) as caught:
        check_intensities(array[None], [modality], [modality])
    return str(caught.value)


def _mr_of_few_values(shape=(12, 16, 16)) -> np.ndarray:
    """An 8-bit-like MR: a smooth bright blob plus noise, 0 outside, integers 0..211."""
    z, y, x = np.indices(shape)
    blob = 150.0 * np.exp(-((z - 6) ** 2 + (y - 8) ** 2 + (x - 8) ** 2) / 40.0)
    noisy = blob + np.random.default_rng(0).normal(0.0, 20.0, shape)
    array = np.clip(np.round(noisy), 0, 211)
    array[:2] = 0  # background
    return array.astype(np.int16)


def test_an_mr_of_few_integer_values_is_no_ct_not_a_label_map():
    array = _mr_of_few_values()
    assert 16 < np.unique(array).size <= 256  # what had made it a "label map"
    message = _refusal(array)
    assert "is not a CT in Hounsfield units: it holds no air" in message
    assert "label map" not in message


def test_a_label_map_of_many_labels_is_still_named_a_label_map():
    z, y, x = np.indices((12, 16, 16))
    labels = (z // 2) * 8 + (y // 4) * 2 + (x >= 8)  # 48 labels in blocks
    assert np.unique(labels).size == 48
    message = _refusal(labels.astype(np.uint8))
    assert message.startswith("Input 'CT' looks like a label map (48 distinct integer values")


def test_a_mask_given_as_mr_is_still_a_label_map():
    mask = np.zeros((12, 16, 16), np.uint8)
    mask[4:8, 4:12, 4:12] = 1
    assert "looks like a label map (2 distinct integer values" in _refusal(mask, "MR")


def test_an_8_bit_ct_is_called_8_bit_not_a_label_map():
    """A CT saved as uint8 (250 distinct values, regions of saturated 255) was refused as
    "looks like a label map (250 distinct integer values)" (tester 20)."""
    z, y, x = np.indices((20, 32, 32))
    body = ((y - 16) ** 2 + (x - 16) ** 2) < 150
    noisy = 40.0 + 210.0 * body + np.random.default_rng(1).normal(0.0, 60.0, body.shape)
    array = np.clip(np.round(noisy), 0, 255).astype(np.uint8)  # a windowed export
    assert np.unique(array).size > 128
    message = _refusal(array)
    assert message.startswith("Input 'CT' is not a CT in Hounsfield units: it holds no air")
    assert "make it an 8-bit image" in message and "cannot be HU" in message
    assert "label map" not in message and "value - 1024" not in message  # not the intercept


def test_totalsegmentators_many_labels_in_uint8_stay_a_label_map():
    z, y, x = np.indices((24, 32, 32))
    labels = ((z // 2) * 10 + (y // 4) + (x >= 16)) % 118  # up to 117, in blocks
    assert 100 < np.unique(labels).size <= 128
    assert "looks like a label map" in _refusal(labels.astype(np.uint8))

"""Manifest-driven normalisation: CT window, MR z-score inside the non-zero voxels, none."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from UNetPlusPlusLib.engine.normalize import normalize
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError


def volume_of(*channels: np.ndarray) -> Volume:
    array = np.stack([np.asarray(c, np.float32) for c in channels])
    return Volume(array, (1.0, 1.0, 2.0), (5.0, -3.0, 1.0), np.diag([-1.0, -1.0, 1.0]))


def test_ct_window_clips_then_scales_to_unit_range():
    hu = np.array([-1000, -160, 40, 240, 3000, 0, 0, 0], np.float32).reshape(2, 2, 2)
    out = normalize(volume_of(hu), [{"kind": "ct", "window": [-160, 240]}])
    expected = np.array([0, 0, 0.5, 1, 1, 0.4, 0.4, 0.4], np.float32).reshape(2, 2, 2)
    assert np.allclose(out.array[0], expected, atol=1e-6)
    assert out.array.dtype == np.float32


def test_mr_zscore_uses_non_zero_voxels_and_keeps_background_at_zero():
    rng = np.random.default_rng(0)
    mr = np.zeros((6, 6, 6), np.float32)
    mr[1:5, 1:5, 1:5] = rng.normal(800.0, 50.0, (4, 4, 4))
    out = normalize(volume_of(mr), [{"kind": "mr"}]).array[0]
    inside = mr != 0
    assert np.all(out[~inside] == 0)
    assert abs(out[inside].mean()) < 1e-5 and abs(out[inside].std() - 1) < 1e-5


def test_none_leaves_values_and_geometry_and_does_not_touch_the_input():
    data = np.arange(8, dtype=np.float32).reshape(2, 2, 2) - 3
    volume = volume_of(data)
    out = normalize(volume, [{"kind": "none"}])
    assert np.array_equal(out.array[0], data)
    assert out.array is not volume.array
    assert out.spacing == volume.spacing and out.origin == volume.origin
    assert np.array_equal(out.direction, volume.direction)


def test_each_channel_gets_its_own_entry_in_any_manifest_form():
    ct = np.full((2, 2, 2), 240.0, np.float32)
    mr = np.array([0, 1, 2, 3, 0, 1, 2, 3], np.float32).reshape(2, 2, 2)
    channels = [
        {"name": "CT", "normalization": {"kind": "ct", "window": [-160, 240]}},
        SimpleNamespace(name="T1", normalization={"kind": "mr"}),
    ]
    out = normalize(volume_of(ct, mr), channels).array
    assert np.all(out[0] == 1.0)
    assert np.allclose(out[1][mr != 0], (mr[mr != 0] - 2.0) / np.sqrt(2 / 3), atol=1e-5)


def test_constant_channels_do_not_divide_by_zero():
    constant = np.full((3, 3, 3), 42.0, np.float32)
    out = normalize(volume_of(constant, np.zeros_like(constant)), [{"kind": "mr"}, {"kind": "mr"}])
    assert np.isfinite(out.array).all() and np.all(out.array == 0)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"kind": "pet"}, "Unknown normalization kind 'pet'"),
        ({"kind": "ct"}, "window"),
        ({"kind": "ct", "window": [240, -160]}, "low < high"),
    ],
)
def test_invalid_entries_are_user_errors(entry, message):
    with pytest.raises(UNetPlusPlusError, match=message):
        normalize(volume_of(np.zeros((2, 2, 2))), [entry])


def test_channel_count_must_match_the_manifest():
    with pytest.raises(UNetPlusPlusError, match="expects 2 input channel"):
        normalize(volume_of(np.zeros((2, 2, 2))), [{"kind": "mr"}, {"kind": "mr"}])


def test_a_crop_is_normalised_with_the_whole_volumes_mr_statistics():
    """An ROI around a tumour must not be z-scored by the tumour's own statistics."""
    from UNetPlusPlusLib.engine.normalize import with_volume_statistics

    rng = np.random.default_rng(3)
    array = np.zeros((2, 20, 20, 20), dtype=np.float32)
    array[:, 2:18, 2:18, 2:18] = rng.normal(100, 10, (2, 16, 16, 16))
    array[:, 8:12, 8:12, 8:12] += 200  # a bright "tumour"
    whole = Volume(array, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3))
    crop = whole.with_array(array[:, 6:14, 6:14, 6:14].copy())
    specs = with_volume_statistics(whole, [{"kind": "mr"}, {"kind": "mr"}])
    expected = normalize(whole, [{"kind": "mr"}] * 2).array[:, 6:14, 6:14, 6:14]
    np.testing.assert_allclose(normalize(crop, specs).array, expected, rtol=1e-5, atol=1e-5)
    own = normalize(crop, [{"kind": "mr"}] * 2).array
    assert np.abs(own - expected).max() > 1.0  # the crop's own statistics would differ

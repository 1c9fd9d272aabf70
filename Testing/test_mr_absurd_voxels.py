"""Absurd MR voxels (engine/mr_robust.py): one T2 voxel at 3e38 took the brain-tumour oedema
from 106 ml to 49 ml with only a warning, because the z-score's mean and standard deviation
came from every non-zero voxel. Voxels far beyond the channel's percentile range are now left
out of the statistics and clipped, and the warning names how many and where; a clean channel is
normalised bit for bit as before (the shipped models were trained with it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.mr_outliers import channel_warning
from UNetPlusPlusLib.engine.normalize import normalize_channel, volume_statistics
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.registry import find_model

CASE = Path(__file__).resolve().parents[2] / "shared/data/brain-tumor/brats2018/Brats18_2013_11_1"
SEQUENCES = ("flair", "t1", "t1ce", "t2")
needs_data = pytest.mark.skipif(not CASE.is_dir(), reason="needs ../shared/data")
ABSURD = np.float32(3e38)


def _zscore_before(array: np.ndarray) -> np.ndarray:
    """normalize._zscore_nonzero as it was before absurd voxels were set apart (main 0b29d04)."""
    mask = array != 0
    out = np.zeros_like(array, dtype=np.float32)
    values = array[mask].astype(np.float64)
    mean, std = float(values.mean()), float(values.std())
    scale = 1.0 / std if std > 1e-8 * max(1.0, abs(mean)) else 0.0
    out[mask] = ((values - mean) * scale).astype(np.float32)
    return out


def _brain(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    brain = np.zeros((40, 40, 40), np.float32)
    brain[5:35, 5:35, 5:35] = rng.gamma(4.0, 50.0, (30, 30, 30))  # skewed, like MR
    return brain


def _clean_channels() -> list[np.ndarray]:
    arrays = [_brain(), _brain(1) + 3000, -_brain(2)]
    if CASE.is_dir():
        arrays += [
            sitk.GetArrayFromImage(sitk.ReadImage(str(CASE / f"{CASE.name}_{s}.nii.gz")))
            for s in SEQUENCES
        ]
    return arrays


def test_clean_channels_are_normalised_bit_for_bit_as_before():
    for array in _clean_channels():
        assert np.array_equal(normalize_channel(array, {"kind": "mr"}), _zscore_before(array))
        values = array[array != 0].astype(np.float64)
        assert volume_statistics(array) == {"mean": values.mean(), "std": values.std()}
        assert channel_warning("T2", array) is None


@pytest.mark.parametrize("count", [1, 10, 100])
def test_absurd_voxels_are_left_out_and_clipped(count):
    clean = _brain()
    hot = clean.copy()
    inside = np.flatnonzero(clean)
    chosen = np.random.default_rng(count).choice(inside, size=count, replace=False)
    hot.reshape(-1)[chosen] = ABSURD
    hot.reshape(-1)[chosen[: count // 2]] = -ABSURD  # both ends
    kept = np.delete(clean.reshape(-1), chosen)
    kept = kept[kept != 0].astype(np.float64)
    statistics = volume_statistics(hot)
    assert statistics["mean"] == pytest.approx(kept.mean(), rel=1e-12)
    assert statistics["std"] == pytest.approx(kept.std(), rel=1e-12)
    assert statistics["clip"] == [kept.min(), kept.max()]
    out = normalize_channel(hot, {"kind": "mr"})
    assert np.isfinite(out).all() and np.abs(out).max() < 10
    others = np.ones(hot.size, bool)
    others[chosen] = False
    expected = _zscore_before(clean).reshape(-1)[others]  # the clean image, nearly unchanged
    np.testing.assert_allclose(out.reshape(-1)[others], expected, atol=0.02)
    # a crop normalised with the whole volume's statistics (ROI) clips the same way
    assert np.array_equal(normalize_channel(hot, {"kind": "mr", **statistics}), out)


def test_the_warning_says_how_many_and_where():
    hot = _brain()
    hot[20, 12, 7] = ABSURD  # (z, y, x): voxel index (i, j, k) = (7, 12, 20)
    warning = channel_warning("T2", hot)
    assert warning.startswith("Input 'T2' holds 1 voxel with an impossible value (up to 3e+38")
    assert "at voxel index (i, j, k) (7, 12, 20):" in warning and "extreme voxels" not in warning
    assert "left it out of its mean and standard deviation and clipped it into" in warning
    hot[10:15, 10:15, 10:14] = ABSURD  # 100 more: 3 listed, the rest as a box
    warning = channel_warning("T2", hot)
    assert "holds 101 voxels with impossible values" in warning
    assert "and 98 more, within i 7-13, j 10-14, k 10-20" in warning
    assert "left them out of its mean and standard deviation and clipped them" in warning


def test_a_3e38_t2_voxel_no_longer_changes_the_brain_tumour_result(brats_store):
    """The smallest shared BraTS case the brain tests use (``Brats18_2013_11_1``): before, one
    T2 voxel at 3e38 changed the whole tumour, core and oedema volumes materially; now they stay
    within 1 % of those of the case as given (``scripts/mr_absurd_voxels.py`` measures 1, 10
    and 100 such voxels on three cases: within 0.05 %)."""
    manifest = find_model("brain-tumor")
    names = [c.name for c in manifest.channels]
    volume = brats_store.volume(CASE.name)  # read_volume of its four files, decoded once a run
    assert list(volume.channel_names) == names
    predictor = Predictor.from_manifest_path(manifest.path, device="cpu", threads=2)
    hot = volume.array.copy()
    hot[names.index("T2"), 70, 120, 120] = ABSURD
    assert hot[names.index("T2"), 70, 120, 120] == ABSURD and volume.array[3, 70, 120, 120] != 0
    clean = predictor.segment(volume).labels.array
    given = predictor.segment(volume.with_array(hot)).labels.array
    for name, values in (("whole tumour", (1, 2, 3)), ("core", (1, 3)), ("oedema", (2,))):
        before, after = np.isin(clean, values).sum(), np.isin(given, values).sum()
        assert before > 1000 and abs(after - before) <= 0.01 * before, (name, before, after)


def test_a_non_finite_voxel_never_makes_the_warning_raise():
    """channel_warning never raises: a NaN among the percentiles' sample (a whole-volume MR
    statistic read beside an --roi) made the range infinite and the warning end in numpy's
    'attempt to get argmax of an empty sequence'. With no range nothing is set apart, and the
    statistics are every value's, as before; a NaN outside the sample is named with the
    absurd voxels, after the finite extreme, and the plausible range stays finite."""
    brain = _brain()
    first = tuple(int(v[0]) for v in np.nonzero(brain))  # in the strided sample
    sampled = brain.copy()
    sampled[first] = np.nan
    assert channel_warning("T2", sampled) is None
    assert np.isnan(volume_statistics(sampled)["mean"]) and "clip" not in volume_statistics(sampled)
    later = np.random.default_rng(1).gamma(4.0, 50.0, (80, 80, 80)).astype(np.float32) + 1
    later.flat[1], later.flat[3] = np.nan, ABSURD  # every 2nd voxel is sampled: not these
    warning = channel_warning("T2", later)
    assert "2 voxels with impossible values (up to 3e+38" in warning, warning
    assert "nan" not in warning.lower(), warning

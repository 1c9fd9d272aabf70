"""Extreme voxels in an MR channel (engine/mr_outliers.py, tester 14): one FLAIR voxel set to 1e6
(the channel's maximum is 497) inflated its standard deviation 13.5 times, the z-score
normalisation compressed the whole image, and the brain-tumour model returned 0.0 / 56.9 /
0.3 ml instead of 20.7 / 88.9 / 7.8 ml without a word. Now one warning names the channel; the
shared BraTS channels as given get none. Such absurd voxels (far beyond the channel's
percentile range) are now left out of the z-score and clipped (engine/mr_robust.py,
test_mr_absurd_voxels.py); the warning names how many and where."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.mr_outliers import (
    CLIP_LEVELS,
    MAX_STD_RATIO,
    SAMPLE_SIZE,
    channel_warning,
    std_ratio,
    std_ratios,
)
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.sanity import check_model_input
from UNetPlusPlusLib.errors import UNetPlusPlusError

CASE = Path(__file__).resolve().parents[2] / "shared/data/brain-tumor/brats2018/Brats18_2013_11_1"
SEQUENCES = ("flair", "t1", "t1ce", "t2")
EXTREME = "Input 'FLAIR' holds 1 voxel with an impossible value (up to 1e+06"
needs_data = pytest.mark.skipif(not CASE.is_dir(), reason="needs ../shared/data")


def _paths(flair: Path | None = None) -> list[Path]:
    paths = [CASE / f"{CASE.name}_{name}.nii.gz" for name in SEQUENCES]
    return [flair or paths[0]] + paths[1:]


@pytest.fixture(scope="module")
def hot_flair(tmp_path_factory) -> Path:
    """The case's FLAIR with voxel (120, 120, 70) at 1e6, written once (uncompressed: gzip is
    not what is tested)."""
    image = sitk.Cast(sitk.ReadImage(str(_paths()[0])), sitk.sitkFloat32)
    image[120, 120, 70] = 1e6
    path = tmp_path_factory.mktemp("hot") / "flair hot.nii"
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture(scope="module")
def case(brats_store):
    """Brats18_2013_11_1 as read_volume reads it (the session's store: read-only)."""
    return brats_store.volume(CASE.name)


def test_one_hot_voxel_makes_the_ratio_large_and_real_spread_does_not():
    rng = np.random.default_rng(0)
    brain = np.zeros((40, 40, 40), np.float32)
    brain[5:35, 5:35, 5:35] = rng.gamma(4.0, 50.0, (30, 30, 30))  # skewed, like MR
    assert std_ratio(brain)[0] < 1.05
    brain[20, 20, 20] = 1e6
    ratio, low, high, extreme = std_ratio(brain)
    assert ratio > 10 * MAX_STD_RATIO and extreme == 1e6 and 0 < low < high < 1000
    assert std_ratio(np.zeros((4, 4, 4)))[0] == 1.0


def _clipped_copy_ratios(array: np.ndarray) -> list[tuple[float, float, float, float]]:
    """std_ratios as first written: every non-zero voxel clipped into a copy per level."""
    values = array[array != 0].astype(np.float64)
    step = max(1, values.size // SAMPLE_SIZE)
    bounds = np.percentile(values[::step], [p for level in CLIP_LEVELS for p in level])
    smallest, largest = float(values.min()), float(values.max())
    found = []
    for low, high in zip(bounds[0::2].tolist(), bounds[1::2].tolist()):
        clipped = float(np.clip(values, low, high).std())
        extreme = largest if largest - high >= low - smallest else smallest
        found.append((float(values.std()) / clipped, low, high, extreme) if clipped > 0 else None)
    return found


def test_ratios_equal_those_of_a_clipped_copy_of_every_voxel():
    """The clipped deviations come from the voxels beyond each level's bounds alone
    (mr_outliers.clipped_std): the same ratios, bounds and extremes as a clipped copy (to 1e-9,
    the bounds and extremes exactly), on skewed MR-like voxels, ties at the bounds, negative
    values, a hot voxel, hot blocks and a channel constant between its bounds."""
    rng = np.random.default_rng(1)
    brain = np.zeros((30, 30, 30), np.float32)
    brain[3:27, 3:27, 3:27] = rng.gamma(4.0, 50.0, (24, 24, 24))
    hot, block, ties, constant = brain.copy(), brain.copy(), brain.round(-2), brain.copy()
    hot[15, 15, 15] = 1e6
    block[5:8, 5:8, 5:8] = 1e5  # 0.2 % of the voxels
    constant[brain != 0] = 7.0
    constant[3, 3, 3:9] = (1e3, -1e3, 2e3, 3.0, 1e4, 11.0)
    for array in (brain, hot, block, ties, brain - 150.0, constant):
        now, before = std_ratios(array), _clipped_copy_ratios(array)
        for (ratio, low, high, extreme), then in zip(now, before):
            if then is None:  # constant once clipped: no ratio
                assert (ratio, extreme) == (1.0, 0.0) and low == high
                continue
            assert (low, high, extreme) == then[1:]
            assert ratio == pytest.approx(then[0], rel=1e-9)
    assert std_ratios(block)[2][0] > 30 and std_ratios(hot)[0][0] > 10


@needs_data
def test_a_hot_flair_voxel_is_warned_and_the_case_as_given_is_not(case):
    manifest = find_model("brain-tumor")
    given = check_model_input(manifest, case)
    assert not any("extreme voxels" in w or "impossible value" in w for w in given)
    array = case.array.copy()
    array[0, 70, 120, 120] = 1e6  # (i, j, k) = (120, 120, 70)
    hot = check_model_input(manifest, case.with_array(array))
    said = [w for w in hot if "extreme voxels" in w or "impossible value" in w]
    assert len(said) == 1 and said[0].startswith(EXTREME), said
    assert "at voxel index (i, j, k) (120, 120, 70):" in said[0] and "extreme voxels" not in said[0]


@needs_data
def test_cli_says_it_before_the_result(tmp_path, capsys, hot_flair):
    """The warning comes before the result (depth 1: which depth runs is not what is tested)."""
    out = tmp_path / "tumour.seg.nrrd"
    argv = ["segment", *map(str, _paths(hot_flair)), "--task", "brain-tumor", "--depth", "1"]
    assert main(argv + ["--quiet", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        line for line in captured.err.strip().splitlines() if line.startswith("warning: " + EXTREME)
    ]
    assert captured.err.strip() and "1 warning above" in captured.out and out.is_file()


@needs_data
def test_the_roi_path_warns_too(tmp_path, capsys, hot_flair):
    """``--roi`` on files checks them streamed and reads each MR channel whole once for its
    statistics (engine/region_read.py): the hot voxel is warned there too, the case as given
    is not (it was 'not run by --roi on a file', tester 14)."""
    image = sitk.ReadImage(str(_paths()[0]))
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    x, y, z = -centre[0], -centre[1], centre[2]  # RAS, as --roi takes it
    roi = [f"{v:.1f}" for v in (x - 20, y - 20, z - 20, x + 20, y + 20, z + 20)]
    for flair, expected in ((None, 0), (hot_flair, 1)):
        out = tmp_path / f"tumour{expected}.seg.nrrd"
        argv = ["segment", *map(str, _paths(flair)), "--task", "brain-tumor", "--roi", *roi]
        assert main(argv + ["--quiet", "--depth", "1", "-o", str(out)]) == 0
        lines = capsys.readouterr().err.strip().splitlines()
        assert sum("impossible value" in line for line in lines) == expected, lines
        assert sum(line.startswith("warning: " + EXTREME) for line in lines) == expected


def test_a_hot_cluster_of_more_than_a_thousandth_of_the_voxels_is_caught():
    """Tester 15: a hot block of more than 0.1 % of the voxels holds the 99.9th percentile
    itself, so clipping there changed nothing (ratio 1.000); the 1-99 and 5-95 levels see it.
    A block under 0.4 % of the voxels is set apart as absurd (mr_robust.py) and named so; a
    larger one, beyond an empty gap in the intensities, is refused (mr_cluster.py)."""
    rng = np.random.default_rng(0)
    brain = np.zeros((40, 40, 40), np.float32)
    brain[5:35, 5:35, 5:35] = rng.gamma(4.0, 50.0, (30, 30, 30))
    assert channel_warning("FLAIR", brain) is None
    for side in (4, 9):  # 0.24 % and 2.7 % of the non-zero voxels
        hot = brain.copy()
        hot[10 : 10 + side, 10 : 10 + side, 10 : 10 + side] = 1e5
        assert std_ratio(hot)[0] < MAX_STD_RATIO  # the 0.1-99.9 level alone is blind to it
        if side == 9:
            with pytest.raises(UNetPlusPlusError, match="Input 'FLAIR' has 2.70% of its non"):
                channel_warning("FLAIR", hot)
            continue
        warning = channel_warning("FLAIR", hot)
        assert warning.startswith("Input 'FLAIR' holds 64 voxels with impossible values (up to")


@needs_data
def test_a_hot_flair_block_is_warned_on_the_shared_case(case):
    """A 15^3 block at 1e5 inside the FLAIR's brain: 0.22 % of its non-zero voxels, beyond
    the 99.9th percentile's reach."""
    manifest = find_model("brain-tumor")
    array = case.array.copy()
    array[0, 70:85, 110:125, 110:125] = 1e5
    hot = check_model_input(manifest, case.with_array(array))
    extreme = [w for w in hot if "extreme voxels" in w or "impossible value" in w]
    assert len(extreme) == 1 and extreme[0].startswith(
        "Input 'FLAIR' holds 3375 voxels with impossible values (up to 1e+05"
    )
    assert "and 3372 more, within i 110-124, j 110-124, k 70-84" in extreme[0]


@needs_data
def test_no_shared_brats_channel_is_warned(brats_store):
    """The 76 channels, as the session's store holds them (read_volume's float32 voxels)."""
    volumes = brats_store.volumes()
    assert len(volumes) * 4 == 76
    for name, volume in volumes.items():
        for sequence, channel in zip(volume.channel_names, volume.array):
            assert channel_warning(f"{name} {sequence}", channel) is None

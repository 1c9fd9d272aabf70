"""A cluster of absurd MR voxels too large to set apart is refused (engine/mr_cluster.py).

Tester 19: ``Brats18_2013_11_1``'s T2 with 5-50 % of its non-zero voxels set to 1e9 got no
MR warning (at 5 % only a wrong 'sequence order' doubt), and at 20 % the brain-tumour model
returned 0 / 34.0 / 0.8 ml core / oedema / enhancing instead of 19.3 / 106.1 / 24.5 ml. Now
such a channel is refused with one line naming it, the share of its voxels and their values;
a small count is still clipped and warned (mr_robust.py); a clean channel is untouched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.mr_cluster import (
    GAP_FACTOR,
    check_cluster,
    gap_ratios,
    separated_cluster,
    sorted_sample,
)
from UNetPlusPlusLib.engine.mr_outliers import channel_warning
from UNetPlusPlusLib.engine.normalize import normalize_channel, volume_statistics
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.sanity import check_model_input
from UNetPlusPlusLib.errors import UNetPlusPlusError

CASE = Path(__file__).resolve().parents[2] / "shared/data/brain-tumor/brats2018/Brats18_2013_11_1"
SEQUENCES = ("flair", "t1", "t1ce", "t2")
needs_data = pytest.mark.skipif(not CASE.is_dir(), reason="needs ../shared/data")


def _brain(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    brain = np.zeros((40, 40, 40), np.float32)
    brain[5:35, 5:35, 5:35] = rng.gamma(4.0, 50.0, (30, 30, 30))  # skewed, like MR
    return brain


def _contaminated(array: np.ndarray, share: float, value: float) -> tuple[np.ndarray, int]:
    """A float32 copy with ``share`` of the non-zero voxels (random, seed 0) set to ``value``."""
    out = array.astype(np.float32)
    inside = np.flatnonzero(out)
    count = int(round(share * inside.size))
    chosen = np.random.default_rng(0).choice(inside, size=count, replace=False)
    out.reshape(-1)[chosen] = np.float32(value)
    return out, count


def _zscore(array: np.ndarray) -> np.ndarray:
    """The z-score of the non-zero voxels, as the shipped models were trained with."""
    mask = array != 0
    out = np.zeros_like(array, dtype=np.float32)
    values = array[mask].astype(np.float64)
    out[mask] = ((values - values.mean()) / values.std()).astype(np.float32)
    return out


@pytest.mark.parametrize("share", [0.05, 0.2, 0.45])
@pytest.mark.parametrize("value", [1e4, 1e9, 3e38, -1e9])
def test_a_large_cluster_is_refused_naming_channel_share_and_values(share, value):
    hot, count = _contaminated(_brain(), share, value)
    cluster = separated_cluster(hot)
    assert cluster is not None and cluster.count == count and cluster.low == cluster.high
    with pytest.raises(UNetPlusPlusError) as caught:
        check_cluster("T2", hot)
    message = str(caught.value)
    assert message.startswith(f"Input 'T2' has {100 * share:.2f}% of its non-zero voxels ({count})")
    assert f"at values from {np.float32(value):.4g} to {np.float32(value):.4g}" in message
    assert "\n" not in message and "nothing was segmented" in message
    with pytest.raises(UNetPlusPlusError):  # wherever the MR warnings are made
        channel_warning("T2", hot)


@pytest.mark.parametrize("share", [0.5, 0.6, 0.75])
def test_a_cluster_of_half_the_voxels_or_more_is_refused_naming_both_groups(share):
    """The median then lies in the cluster: the gap is measured against both groups."""
    hot, count = _contaminated(_brain(), share, 1e9)
    with pytest.raises(UNetPlusPlusError) as caught:
        check_cluster("T2", hot)
    message = str(caught.value)
    assert message.startswith("Input 'T2' has ") and "1e+09 to 1e+09" in message, message
    assert f"{100 * share:.2f}%" in message and f"{100 - 100 * share:.2f}%" in message


def test_a_small_count_is_still_clipped_and_warned():
    hot, count = _contaminated(_brain(), 0.001, 1e9)  # 0.1 %: 27 voxels
    check_cluster("T2", hot)  # no refusal
    warning = channel_warning("T2", hot)
    assert warning.startswith(
        f"Input 'T2' holds {count} voxels with impossible values (up to 1e+09"
    )
    assert "clipped them" in warning
    assert volume_statistics(hot)["clip"][1] < 2000  # set apart from the z-score


def test_clean_and_skewed_channels_have_no_cluster():
    rng = np.random.default_rng(3)
    bimodal = _brain()
    part = bimodal[5:15]  # a third of the voxels: a bright class, far from the rest
    bimodal[5:15] = np.where(part != 0, rng.normal(2000, 50, part.shape), 0)
    for array in (_brain(), _brain(1) + 3000, -_brain(2), bimodal, np.round(_brain(4) / 40)):
        assert gap_ratios(sorted_sample(array))[0] < GAP_FACTOR
        assert separated_cluster(array) is None
        check_cluster("T2", array)
    assert separated_cluster(np.zeros((4, 4, 4))) is None  # too few values: no check


@needs_data
@pytest.mark.parametrize("share", [0.05, 0.2])
def test_the_testers_t2_is_refused_and_the_case_as_given_unchanged(share):
    manifest = find_model("brain-tumor")
    names = [c.name for c in manifest.channels]
    volume = read_volume([CASE / f"{CASE.name}_{s}.nii.gz" for s in SEQUENCES], names)
    for array in volume.array:  # clean: nothing found, normalised bit for bit as trained
        assert separated_cluster(array) is None
        assert np.array_equal(normalize_channel(array, {"kind": "mr"}), _zscore(array))
    given = check_model_input(manifest, volume)
    assert not any("impossible" in w or "extreme voxels" in w for w in given)
    array = volume.array.copy()
    array[3], count = _contaminated(array[3], share, 1e9)
    with pytest.raises(UNetPlusPlusError) as caught:
        check_model_input(manifest, volume.with_array(array))
    assert str(caught.value).startswith(
        f"Input 'T2' has {100 * share:.2f}% of its non-zero voxels ({count}) at values from "
        "1e+09 to 1e+09"
    )


@needs_data
def test_cli_refuses_in_one_line_and_writes_nothing(tmp_path, capsys):
    image = sitk.ReadImage(str(CASE / f"{CASE.name}_t2.nii.gz"))
    array, _ = _contaminated(sitk.GetArrayFromImage(image), 0.2, 1e9)
    hot = sitk.GetImageFromArray(array)
    hot.CopyInformation(image)
    t2 = tmp_path / "t2 hot.nii.gz"
    sitk.WriteImage(hot, str(t2))
    paths = [str(CASE / f"{CASE.name}_{s}.nii.gz") for s in SEQUENCES[:3]] + [str(t2)]
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    x, y, z = -centre[0], -centre[1], centre[2]  # RAS, as --roi takes it
    roi = [f"{v:.1f}" for v in (x - 20, y - 20, z - 20, x + 20, y + 20, z + 20)]
    for extra in ([], ["--roi", *roi], ["--no-channel-check"]):
        out = tmp_path / "tumour.seg.nrrd"
        argv = ["segment", *paths, "--task", "brain-tumor", "--depth", "1", "-o", str(out)]
        assert main(argv + extra) == 2, extra
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Input 'T2' has 20.00% of its non-zero voxels" in err
        assert not out.exists() and list(tmp_path.iterdir()) == [t2], extra


def test_slicer_logic_refuses_before_a_job(tmp_path):
    """The Slicer Logic's checks on real MRML nodes (int16, so the cluster is at 30000):
    refused in one line before any job; the scene is left as it was."""
    from test_channel_order import mrml_channel_nodes, phantom, synthetic_manifest

    manifest = synthetic_manifest(tmp_path)
    array = phantom(21)
    array[3], count = _contaminated(array[3], 0.2, 30000)
    scene, nodes = mrml_channel_nodes(array)
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic

    before = scene.GetNumberOfNodes()
    logic = SegmentationLogic(persistent=False)
    logic.channel_check = False  # the order bypass does not bypass this
    try:
        expected = f"Input 'T2' has 20.00% of its non-zero voxels \\({count}\\) at values from 3e"
        with pytest.raises(UNetPlusPlusError, match=expected):
            logic.check_inputs(nodes, manifest)
        with pytest.raises(UNetPlusPlusError, match=expected):
            logic.start_job(nodes, manifest, depth=1)
        assert scene.GetNumberOfNodes() == before and not logic._jobs
    finally:
        logic.shutdown()


# ------------------------------- a handful of voxels the normalisation keeps (session 15)
def _hot_handful(value: float, count: int = 4) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """An (80, 80, 80) gamma 'brain' (a sample stride of 2) with ``count`` voxels at
    ``value`` at odd flat indices (so the strided sample misses them); their (i, j, k)."""
    rng = np.random.default_rng(5)
    brain = np.zeros((80, 80, 80), np.float32)
    brain[10:70, 10:70, 10:70] = rng.gamma(4.0, 50.0, (60, 60, 60))
    flat = [np.ravel_multi_index((20 + 9 * n, 30, 41), brain.shape) for n in range(count)]
    assert all(f % 2 == 1 for f in flat)
    brain.reshape(-1)[flat] = value
    return brain, [(41, 30, 20 + 9 * n) for n in range(count)]


def test_a_handful_of_kept_hot_voxels_is_warned_naming_channel_count_and_place():
    """4 voxels at 5000 in a channel whose other voxels reach about 1000: within mr_robust's
    plausible range (so kept in the z-score, with no word before) and missed by the strided
    sample, yet beyond an empty gap: a warning names the channel, the count and where."""
    from UNetPlusPlusLib.engine.mr_robust import plausible_range

    hot, ijk = _hot_handful(5000.0)
    values = hot[hot != 0].astype(np.float64)
    assert 5000.0 < plausible_range(values)[1] and values[values < 5000].max() < 1100
    assert 5000.0 not in sorted_sample(hot)  # the stride misses them
    cluster = separated_cluster(hot)
    assert cluster is not None and cluster.count == 4 and cluster.low == cluster.high == 5000
    warning = check_cluster("T2", hot)
    assert warning.startswith("Input 'T2' holds 4 voxels at 5000 to 5000, apart from its other")
    listed = ", ".join(f"({i}, {j}, {k})" for i, j, k in ijk[:3])
    assert f"at voxel index (i, j, k) {listed} and 1 more, within i 41-41, j 30-30, k 20-47" in (
        warning
    )
    assert "kept in the MR normalisation" in warning and "\n" not in warning
    assert channel_warning("T2", hot) == warning  # no other MR warning about them
    assert channel_warning("T2", _hot_handful(5000.0, 0)[0]) is None  # clean: no word
    assert check_cluster("T2", _hot_handful(-5000.0, 1)[0]).startswith(
        "Input 'T2' holds 1 voxel at -5000 to -5000"
    )


def test_absurd_hot_voxels_are_warned_once_by_the_clipping():
    """A handful at 1e9 are set apart and clipped by mr_robust, which names them: the cluster
    check adds no second warning about the same voxels."""
    hot, _ = _hot_handful(1e9)
    assert check_cluster("T2", hot) is None
    warning = channel_warning("T2", hot)
    assert warning.startswith("Input 'T2' holds 4 voxels with impossible values")
    assert warning.count("Input 'T2'") == 1


@needs_data
def test_the_noticed_handful_at_1e4_in_a_brats_t2_is_warned():
    """Five T2 voxels of ``Brats18_2013_11_1`` at 1e4 (the channel reaches about 1620): kept by
    the z-score, nothing said before; now a warning naming T2 and the 5 voxels."""
    array = sitk.GetArrayFromImage(sitk.ReadImage(str(CASE / f"{CASE.name}_t2.nii.gz")))
    hot = array.astype(np.float32)
    inside = np.flatnonzero(hot)
    hot.reshape(-1)[np.random.default_rng(0).choice(inside, 5, replace=False)] = 1e4
    assert channel_warning("T2", array) is None
    warning = channel_warning("T2", hot)
    assert warning is not None and warning.startswith("Input 'T2' holds 5 voxels at 1e+04 to 1e+04")

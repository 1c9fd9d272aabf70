"""When the MR sequence-order check may judge, and what it runs after (session 15).

- A brain smaller than a whole one (a crop around the tumour) is not judged against the
  reference's whole-brain statistics: one warning says the order could not be checked, why, and
  to give the whole image with --roi; no refusal, no "may be in the wrong order" doubt. A
  phantom of a real brain's volume is still judged as before.
- ``--roi`` refuses a cluster of absurd voxels before the sequence order (which the cluster
  misleads), as the whole-array checks do: the same message either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_channel_order import (
    NAMES,
    SPACING,
    as_volume,
    phantom,
    phantom_file,
    synthetic_manifest,
)
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import channel_order as co
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.sanity import channel_samples, check_model_input
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

FLAIR_T2 = [3, 1, 2, 0]  # FLAIR and T2 swapped: refused on the whole phantom


def assert_unchecked(warnings: list[str], brain_ml: float) -> None:
    """One warning: the order could not be checked, naming the brain's volume and --roi."""
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(co.UNCHECKED + ": the brain"), warnings
    assert f"fills only {brain_ml:.0f} ml, less than the 600 ml of a whole brain" in warnings[0]
    assert "--roi" in warnings[0] and "\n" not in warnings[0]


def test_a_crop_of_the_phantom_is_unchecked_not_judged(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    image = phantom(31)
    assert check_model_input(manifest, as_volume(image)) == []  # whole brain: judged
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        check_model_input(manifest, as_volume(image[FLAIR_T2].copy()))
    crop = np.ascontiguousarray(image[:, :20, :22, :24])  # one octant: brain edge, 0 outside
    found = co.fingerprint(channel_samples(list(crop)))
    brain_ml = found.share * crop[0].size * float(np.prod(SPACING)) / 1000
    assert 100 < brain_ml < 600
    for order in ([0, 1, 2, 3], FLAIR_T2):
        given = np.ascontiguousarray(crop[order])
        before = given.copy()
        volume = Volume(given, SPACING, (-90.0, 12.5, 40.0), np.eye(3), NAMES)
        assert_unchecked(check_model_input(manifest, volume), brain_ml)
        assert np.array_equal(volume.array, before) and volume.spacing == SPACING
    # the same voxels at 1 mm: a whole phantom of 45 ml is no whole brain either
    small = Volume(image[FLAIR_T2].copy(), (1.0, 1.0, 1.0), (-90.0, 12.5, 40.0), np.eye(3), NAMES)
    found = co.fingerprint(channel_samples(list(small.array)))
    assert_unchecked(check_model_input(manifest, small), found.share * image[0].size / 1000)
    # unknown volume (no spacing given to the order check itself): judged as before
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        co.check_channel_order(
            channel_samples(list(small.array)), manifest.inference["channel_fingerprint"], NAMES
        )


def test_a_model_that_needs_no_zero_background_has_no_size_guard(tmp_path):
    """The 600 ml is a skull-stripped brain's: a model without the non-zero crop (not a
    skull-stripped brain model) judges any size as before."""
    manifest = synthetic_manifest(tmp_path)
    manifest.inference["crop_nonzero"] = False
    small = Volume(phantom(32)[FLAIR_T2].copy(), (1.0, 1.0, 1.0), (-90, 12, 40), np.eye(3), NAMES)
    with pytest.raises(UNetPlusPlusError, match="wrong order"):
        check_model_input(manifest, small)


def test_the_cli_warns_on_a_crop_with_and_without_roi(tmp_path, capsys):
    manifest = synthetic_manifest(tmp_path)
    crop = np.ascontiguousarray(phantom(33)[FLAIR_T2][:, :20, :22, :24])
    paths = [phantom_file(c, tmp_path / f"{n}.nii.gz") for n, c in zip(NAMES, crop)]
    args = ["segment", *paths, "--model", str(manifest.path), "-o", str(tmp_path / "o.nrrd")]
    roi = ["--roi", "-60", "-60", "-60", "60", "60", "60", "--lps"]
    for extra in ([], roi):  # the order is not refused; the run stops at the missing weights
        main([*args, *extra])
        err = capsys.readouterr().err
        assert "warning: The sequence order could not be checked: the brain" in err, extra
        assert "wrong order" not in err, extra


def contaminated(image: np.ndarray, channel: int, share: float = 0.2) -> np.ndarray:
    """A copy with ``share`` of ``channel``'s non-zero voxels (random, seed 0) at 1e9."""
    out = image.copy()
    inside = np.flatnonzero(out[channel])
    chosen = np.random.default_rng(0).choice(inside, int(share * inside.size), replace=False)
    out[channel].reshape(-1)[chosen] = 1e9
    return out


def test_roi_refuses_the_cluster_before_judging_the_order(tmp_path, capsys):
    """A model whose reference was built on cases with the same cluster in T1 (so the
    contaminated fingerprint still fits it) and FLAIR <-> T2 given swapped: the order check
    alone would refuse the order, but the cluster comes first, with and without --roi."""
    prints = [co.fingerprint(channel_samples(list(contaminated(phantom(s), 1)))) for s in range(6)]
    data = json.loads(synthetic_manifest(tmp_path / "a").path.read_text(encoding="utf-8"))
    data["inference"]["channel_fingerprint"] = co.build_reference(prints)
    path = tmp_path / "model" / "model.json"
    path.parent.mkdir()
    path.write_text(json.dumps(data), encoding="utf-8")
    manifest = ModelManifest.load(path)
    image = contaminated(phantom(34), 1)[FLAIR_T2]
    reference = manifest.inference["channel_fingerprint"]
    with pytest.raises(UNetPlusPlusError, match="wrong order"):  # what misled --roi before
        co.check_channel_order(channel_samples(list(image)), reference, NAMES)
    expected = "error: Input 'T1' has 20.00% of its non-zero voxels"
    with pytest.raises(UNetPlusPlusError, match=expected[7:]):
        check_model_input(manifest, as_volume(image))
    paths = [phantom_file(c, tmp_path / f"{n}.nii.gz") for n, c in zip(NAMES, image)]
    out = tmp_path / "out.seg.nrrd"
    args = ["segment", *paths, "--model", str(path), "-o", str(out), "--quiet"]
    for extra in ([], ["--roi", "-60", "-60", "-60", "60", "60", "60", "--lps"]):
        assert main([*args, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(expected) and err.count("\n") == 1, (extra, err)
        assert not out.exists()


# ------------------------------------------------------------------------ real BraTS data
def test_a_brats_crop_around_the_tumour_is_unchecked(brats_store, shared_data):
    """``Brats18_2013_3_1`` in its right order, cropped to an 80 mm cube around the tumour
    (the expert label's centroid): refused as "in the wrong order" before; now the warning
    that the order could not be checked (``scripts/mr_crop_order_study.py``)."""
    import SimpleITK as sitk

    name = "Brats18_2013_3_1"
    volume = brats_store.volume(name)
    label = shared_data / "brain-tumor" / "brats2018" / name / f"{name}_seg.nii.gz"
    centre = np.argwhere(sitk.GetArrayFromImage(sitk.ReadImage(str(label))) > 0).mean(axis=0)
    half = [int(round(40 / s)) for s in reversed(volume.spacing)]
    box = tuple(slice(max(0, int(round(c)) - h), int(round(c)) + h) for c, h in zip(centre, half))
    crop = volume.with_array(np.ascontiguousarray(volume.array[(slice(None), *box)]))
    manifest = ModelManifest.load(
        Path(__file__).resolve().parents[1]
        / "UNetPlusPlus/UNetPlusPlusLib/Resources/Models/brain-tumor"
    )
    found = co.fingerprint(channel_samples(list(crop.array)))
    brain_ml = found.share * crop.array[0].size * float(np.prod(crop.spacing)) / 1000
    assert_unchecked(check_model_input(manifest, crop), brain_ml)

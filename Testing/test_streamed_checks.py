"""streamed_checks + `unetpp segment --roi`: the input checks see the whole file, streamed slab by
slab, and take the decisions of the whole-array checks; only the ROI and its context are then
read for inference, with the labels of the whole-image run (issue 9, "Also seen")."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib import cli_segment
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import (
    image_read,
    intensity_checks,
    region_read,
    sanity,
    streamed_checks,
)
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.sanity import channel_stats, check_volume
from UNetPlusPlusLib.engine.streamed_checks import check_files, stream_statistics
from UNetPlusPlusLib.errors import UNetPlusPlusError


def _write(array_zyx: np.ndarray, path, spacing=(1.5, 1.2, 2.5), pixel=None):
    image = sitk.GetImageFromArray(array_zyx)
    image.SetSpacing(spacing)
    image.SetOrigin((-30.0, 12.0, 40.0))
    if pixel is not None:
        image = sitk.Cast(image, pixel)
    sitk.WriteImage(image, str(path), True)
    return path


def _ct(shape=(23, 17, 19), air=True, seed=0) -> np.ndarray:
    """Soft tissue (~40 HU, noisy); with ``air`` the first x column of every slice is -1000."""
    array = np.random.default_rng(seed).normal(40, 30, shape).round().astype(np.float32)
    if air:
        array[:, :, 0] = -1000.0
    return array


# ------------------------------------------------------------------ statistics
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_streamed_statistics_equal_the_whole_array_ones(tmp_path, monkeypatch, suffix):
    monkeypatch.setattr(intensity_checks, "SAMPLE_VOXELS", 97)  # a stride slabs do not divide
    first = _write(_ct(), tmp_path / f"a{suffix}")
    second = _write(_ct(seed=1), tmp_path / f"b{suffix}")
    same = _write(_ct(), tmp_path / f"c{suffix}")
    stats, identical, nonfinite = stream_statistics([first, second, same], slab_voxels=700)
    whole = read_volume([first, second, same]).array
    assert identical == [(0, 2)] and nonfinite == [0, 0, 0]
    for c in range(3):
        expected = channel_stats(whole[c])
        assert (stats[c].low, stats[c].high) == (expected.low, expected.high)
        assert sanity.sample_step(whole[c].size) > 1
        np.testing.assert_array_equal(stats[c].sample, expected.sample)


def _labels() -> np.ndarray:
    """A (9, 8, 7) label map of 18 labels (0..17), each a block of equal values."""
    z, y, _ = np.indices((9, 8, 7))
    return (z * 2 + (y >= 4)).astype(np.uint8)


def _with_nan(tmp_path, suffix=".nrrd"):
    array = _ct()
    array[3, 4, 5:9] = np.nan
    return [_write(array, tmp_path / f"nan{suffix}")]


CASES = {
    "valid CT": (lambda t: [_write(_ct(), t / "ct.nii.gz", pixel=sitk.sitkInt16)], ["CT"]),
    "CT without air": (lambda t: [_write(_ct(air=False), t / "soft.nii.gz")], ["CT"]),
    "label map as CT": (  # 18 labels in regions (a gradient of 22 values is an image)
        lambda t: [_write(_labels(), t / "lab.nrrd")],
        ["CT"],
    ),
    "CT given to MR": (lambda t: [_write(_ct(), t / "ct.mha")], ["MR"]),
    "MR label map": (lambda t: [_write(np.indices((9, 8, 7))[0] % 3, t / "m.nrrd")], ["MR"]),
    "constant channel": (
        lambda t: [
            _write(_ct(air=False), t / "a.nrrd"),
            _write(np.full((23, 17, 19), 7.0), t / "b.nrrd"),
        ],
        ["MR", "MR"],
    ),
    "identical channels": (
        lambda t: [_write(_ct(air=False), t / "a.nii.gz"), _write(_ct(air=False), t / "b.nii.gz")],
        ["MR", "MR"],
    ),
    "NaN in NRRD": (_with_nan, ["CT"]),
    "NaN in NIfTI": (lambda t: _with_nan(t, ".nii.gz"), ["CT"]),  # ITK's reader makes NaN 0
    "thick slices": (
        lambda t: [_write(_ct(), t / "thick.nrrd", spacing=(0.8, 0.8, 12.0))],
        ["CT"],
    ),
}


def _outcome(run):
    try:
        return "ok", run()
    except UNetPlusPlusError as error:
        return "refused", str(error)


@pytest.mark.parametrize("case", sorted(CASES))
def test_streamed_checks_decide_as_the_whole_image_checks(tmp_path, case):
    make, modalities = CASES[case]
    paths = make(tmp_path)
    names = [f"channel {i + 1}" for i in range(len(paths))]

    def whole():
        return check_volume(read_volume(paths, channel_names=names), modalities)

    streamed = _outcome(lambda: check_files(paths, modalities, names, slab_voxels=500))
    assert streamed == _outcome(whole)
    assert streamed[0] == EXPECTED[case][0]
    assert EXPECTED[case][1] in str(streamed[1])  # the refusal or warning itself


EXPECTED = {
    "valid CT": ("ok", "[]"),
    "CT without air": ("refused", "holds no air"),
    "label map as CT": ("refused", "label map"),
    "CT given to MR": ("refused", "looks like a CT"),
    "MR label map": ("refused", "looks like a label map (3 distinct integer values"),
    "constant channel": ("refused", "constant (every voxel 7)"),
    "identical channels": ("refused", "are identical"),
    "NaN in NRRD": ("refused", "contains 4 NaN"),
    "NaN in NIfTI": ("refused", "contains 4 NaN"),
    "thick slices": ("ok", "very thick voxels"),
}


def test_dicom_folders_are_not_streamed(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    assert check_files([folder], ["CT"]) is None


# ------------------------------------------------------------------ the CLI with --roi
@pytest.fixture(scope="module")
def ct_model(sphere_model, tmp_path_factory):
    """The sphere fixture model declared as a CT model, so that the CT air check applies."""
    folder = tmp_path_factory.mktemp("ct_model")
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(sphere_model.parent / name, folder / name)
    manifest = json.loads((folder / "model.json").read_text())
    manifest["channels"][0]["modality"] = "CT"
    (folder / "model.json").write_text(json.dumps(manifest))
    return folder / "model.json"


def _body_ct(tmp_path, air: bool):
    """A 300 HU ball in 0 HU tissue, 112 x 96 x 104 mm at 2 mm; with ``air`` the outermost
    3 voxels of x are -1000 HU, far (> one tile) from the ROI in the middle."""
    image = make_sphere_image((56, 48, 52), spacing=(2.0, 2.0, 2.0), radius_mm=14, noise=5)
    array = sitk.GetArrayFromImage(image)
    if air:
        array[:, :, :3] = -1000.0
        array[:, :, -3:] = -1000.0
    out = sitk.GetImageFromArray(array.round().astype(np.int16))
    out.CopyInformation(image)
    path = tmp_path / ("body.nii.gz" if air else "no_air.nii.gz")
    sitk.WriteImage(out, str(path), True)
    return path


# the ROI (LPS mm) in the middle of the 0..110 x 0..94 x 0..102 mm volume, inside tissue
ROI = ["--lps", "--roi", "40", "34", "38", "70", "60", "64"]


def _segment(ct, model, out, *extra):
    return main(
        ["segment", str(ct), "--model", str(model), "--quiet", "--labelmap", str(out), *extra]
    )


def test_roi_run_reads_only_the_region_and_gives_the_whole_image_labels(
    ct_model, tmp_path, monkeypatch, capsys
):
    ct = _body_ct(tmp_path, air=True)
    whole_out, roi_out = tmp_path / "whole.nrrd", tmp_path / "roi.nrrd"
    assert _segment(ct, ct_model, whole_out, *ROI, "--preview", str(tmp_path / "p.png")) == 0
    read = []
    real_whole, real_region = image_read.read_volume, region_read._read_extract
    monkeypatch.setattr(
        image_read, "read_volume", lambda *a, **k: read.append("whole") or real_whole(*a, **k)
    )
    monkeypatch.setattr(
        region_read, "_read_extract", lambda p, s, *a: read.append(s) or real_region(p, s, *a)
    )
    assert _segment(ct, ct_model, roi_out, *ROI) == 0, capsys.readouterr().err
    assert len(read) == 1 and read[0] != "whole"  # one region read, no whole-image read
    (slices,) = read
    assert (slices[2].stop - slices[2].start) < 56  # only part of x was read
    whole, roi = sitk.ReadImage(str(whole_out)), sitk.ReadImage(str(roi_out))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(roi), sitk.GetArrayFromImage(whole))
    assert sitk.GetArrayFromImage(roi).sum() > 100  # the ball inside the ROI is found
    assert roi.GetSize() == sitk.ReadImage(str(ct)).GetSize()
    assert roi.GetOrigin() == whole.GetOrigin() and roi.GetSpacing() == whole.GetSpacing()
    assert roi.GetDirection() == whole.GetDirection()


def test_ct_without_air_is_refused_with_roi_as_without(ct_model, tmp_path, capsys):
    ct = _body_ct(tmp_path, air=False)
    assert _segment(ct, ct_model, tmp_path / "a.nrrd") == 2
    without = capsys.readouterr().err
    assert _segment(ct, ct_model, tmp_path / "b.nrrd", *ROI) == 2
    assert capsys.readouterr().err == without and "holds no air" in without
    assert not (tmp_path / "b.nrrd").exists()


def test_the_region_alone_would_be_refused_but_the_whole_image_is_judged(ct_model, tmp_path):
    """The ROI's context box holds no air: judged alone it is refused; the whole image is not."""
    ct = _body_ct(tmp_path, air=True)
    args = cli_segment.argparse.Namespace(roi=[float(v) for v in ROI[2:]], lps=True)
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.prompt_boxes import prompt_boxes

    manifest = ModelManifest.load(ct_model)
    needed = prompt_boxes(manifest, cli_segment._roi_box(args), None)[0]
    region, _, _ = region_read.read_region([ct], needed, ["CT"])
    with pytest.raises(UNetPlusPlusError, match="no air"):
        check_volume(region, ["CT"])
    assert check_files([ct], ["CT"], ["CT"]) == []
    assert streamed_checks.SLAB_VOXELS >= 1

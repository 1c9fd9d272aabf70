"""A lung-nodule click on an image that cannot hold a nodule (engine/click_context.py): too
small a field of view around the point (a 2 x 2 x 2 volume of 3 mm gave "nodule 0.189 ml" with
no word, review cli20) or pure noise, refused in one line before the model loads, nothing
written; the shared LIDC crops (the smallest) and an oblique crop still pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import one_error_line, rotation_matrix
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.click_check import refuse_outside_air
from UNetPlusPlusLib.engine.click_context import field_mm, refuse_unfit_context
from UNetPlusPlusLib.engine.registry import find_model
from UNetPlusPlusLib.engine.volume import Volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

LIDC = Path(__file__).resolve().parents[2] / "shared" / "data" / "lung-nodule" / "lidc-vois"


def _volume(array: np.ndarray, spacing, direction=None, origin=(0.0, 0.0, 0.0)) -> Volume:
    direction = np.eye(3) if direction is None else direction
    return Volume(array[None].astype(np.float32), spacing, origin, direction, ("CT",))


def _centre(volume: Volume) -> np.ndarray:
    return volume.grid.index_to_physical((np.asarray(volume.grid.size_xyz) - 1) / 2.0)


def _write(volume: Volume, path: Path) -> Path:
    image = sitk.GetImageFromArray(volume.array[0].astype(np.int16))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(tuple(np.asarray(volume.direction).ravel()))
    sitk.WriteImage(image, str(path))
    return path


def _crop(shape, spacing, direction=None) -> Volume:
    """A CT-like crop: lung (-850 HU) with a 40 HU ball in its middle, a little noise."""
    rng = np.random.default_rng(1)
    k, j, i = np.indices(shape)
    centre = (np.asarray(shape) - 1) / 2.0
    spacing_zyx = np.asarray(spacing)[::-1]
    r2 = sum(((a - c) * s) ** 2 for a, c, s in zip((k, j, i), centre, spacing_zyx))
    ct = np.where(r2 <= 16.0, 40.0, -850.0) + rng.normal(0, 20, shape)
    return _volume(ct, spacing, direction, origin=(-12.0, 30.0, 7.0))


@pytest.mark.parametrize(
    "volume, message",
    [
        (_volume(np.array([[[-800, 50], [40, -700]], [[30, 60], [-900, 20]]]), (3.0, 3.0, 3.0)),
         "measures only 6 x 6 x 6 mm around it"),
        (_volume(np.random.default_rng(0).uniform(-1000, 400, (40, 64, 64)), (0.7, 0.7, 1.25)),
         "looks like noise, not a CT"),
    ],
    ids=["2x2x2", "noise"],
)  # fmt: skip
def test_the_cli_refuses_a_click_on_an_image_that_cannot_hold_a_nodule(
    volume, message, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    path = _write(volume, tmp_path / "ct.nii.gz")
    point = [f"{v:.3f}" for v in _centre(volume)]
    out = tmp_path / "out.seg.nrrd"
    argv = ["segment", str(path), "--task", "lung-nodule", "--lps", "--point", *point]
    assert main([*argv, "-o", str(out), "--preview", str(tmp_path / "p.png")]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: The clicked point (") and message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct.nii.gz"]


def test_the_slicer_click_check_refuses_it_naming_the_point():
    from UNetPlusPlusLib.adapter.input_checks import check_click

    volume = _volume(np.full((2, 2, 2), -700.0) + np.arange(8).reshape(2, 2, 2), (3, 3, 3))
    lps = _centre(volume)
    ras = (-lps[0], -lps[1], lps[2])
    named = r"^F-1 at \(-1.5, -1.5, 1.5\) mm RAS: .* too small a field of view"
    with pytest.raises(UNetPlusPlusError, match=named):
        check_click(find_model("lung-nodule"), volume, lps, ras, name="F-1")


def test_the_field_of_view_follows_the_index_axes_on_an_oblique_image():
    """Voxels times spacing along the image's own axes: a rotated direction changes nothing;
    a 22 x 22 x 3 mm crop (like the smallest LIDC crop's 20 x 20 x 2.5 mm) passes either way,
    the same crop 6 mm wide is refused either way."""
    oblique = rotation_matrix((25, -30, 40))
    for direction in (np.eye(3), oblique):
        crop = _crop((2, 32, 32), (0.7, 0.7, 1.5), direction)
        np.testing.assert_allclose(field_mm(crop, _centre(crop)), (22.4, 22.4, 3.0))
        refuse_unfit_context(crop, _centre(crop), "nodule")
        narrow = _crop((2, 32, 8), (0.7, 0.7, 1.5), direction)
        with pytest.raises(UNetPlusPlusError, match="5.6 x 22.4 x 3 mm"):
            refuse_unfit_context(narrow, _centre(narrow), "nodule")


def test_a_click_near_the_edge_of_a_large_image_is_judged_on_the_box_around_it():
    """Only the image within 20 mm of the click counts: a click in the corner of a large
    crop still sees 20.3 mm along each in-plane axis."""
    crop = _crop((8, 96, 96), (0.7, 0.7, 1.5))
    corner = crop.grid.index_to_physical(np.zeros(3))
    np.testing.assert_allclose(field_mm(crop, corner)[:2], (20.3, 20.3))
    refuse_unfit_context(crop, corner, "nodule")


@pytest.mark.skipif(not LIDC.is_dir(), reason="the shared LIDC crops are not here")
def test_the_smallest_shared_lidc_crops_pass():
    from UNetPlusPlusLib.engine.image_read import read_volume

    manifest = find_model("lung-nodule")
    files = sorted((LIDC / "image").glob("*.nii.gz"))
    sizes = {path: sitk.ReadImage(str(path)).GetSize() for path in files}
    smallest = sorted(files, key=lambda p: np.prod(sizes[p]))[:5]
    for path in smallest:
        volume = read_volume([path], ["CT"])
        refuse_outside_air(manifest, volume, _centre(volume))  # no error


@pytest.mark.skipif(not LIDC.is_dir(), reason="the shared LIDC crops are not here")
@pytest.mark.parametrize(
    "name", ["LIDC-IDRI-0270_R_1", "LIDC-IDRI-0045_R_5", "LIDC-IDRI-0604_R_3", "LIDC-IDRI-0696_R_1"]
)
def test_a_noisy_low_dose_crop_is_not_taken_for_noise(name):
    """Real LIDC crops (0604 and 0696: 0.625 mm slices) with 150 HU of white noise added, as
    an ultra-low-dose scan with a sharp kernel has: still CTs. At the first threshold, 0.2,
    each was refused as "noise, not a CT" (0.155 to 0.174); uniform noise of the same size is
    still refused."""
    from UNetPlusPlusLib.engine.image_read import read_volume

    volume = read_volume([LIDC / "image" / f"{name}.nii.gz"], ["CT"])
    rng = np.random.default_rng(0)
    noisy = volume.array + rng.normal(0, 150, volume.array.shape).astype(np.float32)
    low_dose = Volume(noisy, volume.spacing, volume.origin, volume.direction, ("CT",))
    refuse_unfit_context(low_dose, _centre(low_dose), "nodule")  # no error
    noise = rng.uniform(-1000, 400, volume.array.shape).astype(np.float32)
    pure = Volume(noise, volume.spacing, volume.origin, volume.direction, ("CT",))
    with pytest.raises(UNetPlusPlusError, match="looks like noise, not a CT"):
        refuse_unfit_context(pure, _centre(pure), "nodule")

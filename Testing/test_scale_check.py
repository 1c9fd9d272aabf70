"""A header spacing in a wrong unit that makes the image a speck (engine/scale_check.py,
header_warnings.FINEST_SCAN_SPACING_MM): the demo CT with 0.05 mm voxels in its header (a body
6 mm across) gave "liver 0.004 ml" with only the thin-input warning. Now an image smaller than a
quarter of the model's tile and 10 times finer than its voxels, on every axis, is refused, and
any voxels finer than a clinical scanner's are warned about."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.engine.header_warnings import implausible_geometry
from UNetPlusPlusLib.engine.scale_check import check_model_scale
from UNetPlusPlusLib.errors import UNetPlusPlusError

LIVER = dict(model_spacing_xyz=(3.0, 3.0, 3.0), tile_xyz=(48, 48, 48))  # the shipped liver model
NODULE = dict(model_spacing_xyz=(0.7, 0.7, 1.25), tile_xyz=(48, 48, 16))  # and nodule model


def test_a_speck_at_the_models_scale_is_refused():
    with pytest.raises(UNetPlusPlusError) as error:  # the demo CT at 0.05 mm
        check_model_scale((122, 101, 112), (0.05, 0.05, 0.05), **LIVER)
    message = str(error.value)
    assert "voxels of 0.05 x 0.05 x 0.05 mm and measures only 6.1 x 5.05 x 5.6 mm" in message
    assert "wrong unit" in message and "366 x 303 x 336 mm" in message
    with pytest.raises(UNetPlusPlusError):  # a 512^2 x 300 CT at 0.05 mm: 25 mm across
        check_model_scale((512, 512, 300), (0.05, 0.05, 0.05), **LIVER)


@pytest.mark.parametrize(
    "size, spacing, model",
    [
        ((122, 101, 112), (3.0, 3.0, 3.0), LIVER),  # the demo CT
        ((512, 512, 3), (0.7, 0.7, 2.5), LIVER),  # a 3-slice slab: thin, not a speck
        ((29, 29, 45), (0.7, 0.7, 0.45), NODULE),  # the smallest shared LIDC crop, 20 mm
        ((512, 512, 300), (0.05, 0.05, 0.05), NODULE),  # 25 mm: a nodule crop's size
        ((40, 40, 40), (0.5, 0.5, 0.5), LIVER),  # 20 mm, but voxels not 10x finer than 3 mm
    ],
)
def test_real_sizes_pass(size, spacing, model):
    check_model_scale(size, spacing, **model)


def test_voxels_finer_than_any_scanner_are_warned_about():
    fine = implausible_geometry((512, 512, 300), (0.05, 0.05, 0.05), (1, 2, 3), np.eye(3), "CT")
    assert len(fine) == 1 and "CT has voxels of 0.05 x 0.05 x 0.05 mm, finer than any" in fine[0]
    assert "25.6 x 25.6 x 15 mm" in fine[0]
    assert not implausible_geometry((29, 29, 45), (0.7, 0.7, 0.45), (1, 2, 3), np.eye(3), "CT")


def test_the_cli_refuses_it_before_any_work(tmp_path, sphere_model, capsys):
    """The test balls (2 mm voxels) with a 0.05 mm header: one error, nothing written."""
    from UNetPlusPlusLib.cli import main

    image = make_sphere_image((24, 20, 20), spacing=(0.05, 0.05, 0.05), radius_mm=0.25, noise=5)
    path = tmp_path / "ball.nrrd"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    out = tmp_path / "out" / "ball.seg.nrrd"
    argv = ["segment", str(path), "--model", str(sphere_model), "-o", str(out)]
    for roi in ([], ["--roi", "0", "0", "0", "0.5", "0.5", "0.5"]):  # streamed with --roi
        assert main(argv + roi) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "has voxels of 0.05 x 0.05 x 0.05 mm and measures only" in err[0]
        assert "1.2 x 1 x 1 mm" in err[0]
    assert not out.parent.exists()

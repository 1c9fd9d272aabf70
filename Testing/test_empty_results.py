"""An empty whole-volume or ROI result says so (``info["warnings"]``, ``warning:`` on the
command line); a ROI that holds no voxel centre is refused before inference."""

from __future__ import annotations

from pathlib import Path

import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.volume import Box
from UNetPlusPlusLib.errors import UNetPlusPlusError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _image(tmp_path: Path, radius_mm: float) -> Path:
    """A 48 x 40 x 40 mm CT-like volume of 2 mm voxels (centres at 0, 2, 4, ... mm LPS) with a
    300 HU ball of ``radius_mm`` in its middle (0: no ball)."""
    path = tmp_path / f"ball{radius_mm:g}.nii.gz"
    image = make_sphere_image((24, 20, 20), spacing=(2.0, 2.0, 2.0), radius_mm=radius_mm, noise=5)
    sitk.WriteImage(image, str(path))
    return path


def test_an_empty_whole_volume_or_roi_result_warns(sphere_predictor, tmp_path):
    empty = read_volume([_image(tmp_path, 0)])
    result = sphere_predictor.segment(empty)
    assert not result.labels.array.any()
    assert any("Nothing (liver) was found in the volume" in w for w in result.info["warnings"])

    ball = read_volume([_image(tmp_path, 10)])
    result = sphere_predictor.segment(ball)
    assert result.labels.array.any() and result.info["warnings"] == []
    corner = Box((0.0, 0.0, 0.0), (6.0, 6.0, 6.0))  # far from the ball at (23, 19, 19) mm
    result = sphere_predictor.segment(ball, roi=corner)
    assert not result.labels.array.any()
    assert any("in the region of interest" in w for w in result.info["warnings"])


def test_a_roi_between_voxel_centres_is_refused(sphere_predictor, tmp_path):
    ball = read_volume([_image(tmp_path, 10)])
    with pytest.raises(UNetPlusPlusError, match="holds no voxel centre.*2 x 2 x 2 mm"):
        sphere_predictor.segment(ball, roi=Box((21.1, 17.0, 17.0), (21.9, 21.0, 21.0)))
    with pytest.raises(UNetPlusPlusError, match="outside the volume"):
        sphere_predictor.segment(ball, roi=Box((60.0, 0.0, 0.0), (70.0, 10.0, 10.0)))
    inside = sphere_predictor.segment(ball, roi=Box((21.9, 17.0, 17.0), (22.1, 21.0, 21.0)))
    assert inside.labels.array.any()  # one voxel column wide is enough


def test_the_command_line_warns_on_empty_and_refuses_a_sub_voxel_roi(
    sphere_model, tmp_path, capsys
):
    args = ["segment", "--model", str(sphere_model), "--quiet"]
    out = tmp_path / "x.seg.nrrd"
    assert main([*args, str(_image(tmp_path, 0)), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: Nothing (liver) was found in the volume" in err and out.exists()
    out.unlink()
    roi = ["--roi", "-21.1", "-17", "17", "-21.9", "-21", "21"]  # RAS: LPS x 21.1..21.9 mm
    assert main([*args, str(_image(tmp_path, 10)), "-o", str(out), *roi]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "no voxel centre" in err[0]
    assert not out.exists()

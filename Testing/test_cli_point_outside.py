"""A click outside the image is one error naming the click as typed, in its frame (tester 8).

It was "The region of interest from (...) mm (LPS) lies outside the volume", an LPS box the
user never gave, also for a click typed in RAS.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import rotation_matrix
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.cli_points import check_point_on_image, ras_to_lps
from UNetPlusPlusLib.engine.volume import Grid
from UNetPlusPlusLib.errors import UNetPlusPlusError

DIRECTION = rotation_matrix((20, -10, 35))
GRID = Grid((40, 30, 20), (0.7, 0.8, 1.25), (-12.0, 30.0, 7.0), DIRECTION)


def test_points_on_the_oblique_image_pass_and_beyond_it_are_refused():
    for index in [(0, 0, 0), (39, 29, 19), (19.5, 14.5, 9.5), (-0.4, 29.4, 0)]:
        point = GRID.index_to_physical(index)
        check_point_on_image(GRID, point, ras_to_lps(point), "RAS", 1)
    outside = GRID.index_to_physical((45, 10, 10))
    with pytest.raises(UNetPlusPlusError, match=r"Point 2 \(.*\) mm RAS lies outside the image"):
        check_point_on_image(GRID, outside, ras_to_lps(outside), "RAS", 2)


def test_the_cli_names_the_typed_click_in_one_line(tmp_path, capfd):
    rng = np.random.default_rng(0)
    lung = rng.normal(-850, 40, (20, 30, 40)).astype(np.int16)
    lung[8:12, 12:18, 16:24] = 30  # a nodule
    image = sitk.GetImageFromArray(lung)
    image.SetSpacing(GRID.spacing)
    image.SetOrigin(GRID.origin)
    image.SetDirection(DIRECTION.flatten().tolist())
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(path))
    out = tmp_path / "out.seg.nrrd"
    code = main(["segment", str(path), "--task", "lung-nodule", "--point", "-516", "0", "0",
                 "-o", str(out), "--quiet"])  # fmt: skip
    err = capfd.readouterr().err
    assert code == 2 and err.count("error:") == 1 and "Traceback" not in err
    assert "Point 1 (-516, 0, 0) mm RAS lies outside the image" in err
    assert not out.exists()

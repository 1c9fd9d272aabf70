"""A NRRD whose header gives `none` as the space direction of a spatial axis: one error, nothing
written (engine/nrrd_geometry.py). Before, ITK read the axis as 1 mm with an identity direction
and `unetpp segment` wrote a confident result on a made-up grid (the example CT's 3 mm axis read
as 1 mm: a 201 ml "liver" instead of 1033 ml)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_image
from UNetPlusPlusLib.engine.nrrd_geometry import check_nrrd_geometry
from UNetPlusPlusLib.errors import UNetPlusPlusError


def _nrrd(folder: Path, name: str, directions: str, kinds: str = "domain domain domain") -> Path:
    """A raw int16 CT-like NRRD (air around a 40 HU block) with the given header fields."""
    values = np.full((12, 14, 16), -1000, dtype=np.int16)
    values[3:9, 4:10, 4:12] = 40
    header = (
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
        f"sizes: 16 14 12\nspace directions: {directions}\nkinds: {kinds}\nendian: little\n"
        "encoding: raw\nspace origin: (-10,5,7.5)\n\n"
    )
    path = folder / name
    path.write_bytes(header.encode() + values.astype("<i2").tobytes())
    return path


def test_a_spatial_axis_without_direction_is_refused(tmp_path):
    good = _nrrd(tmp_path, "good.nrrd", "(2,0,0) (0,2,0) (0,0,3)")
    assert read_image(good).GetSpacing() == (2.0, 2.0, 3.0)
    for kinds in ("domain domain domain", "space space space", "??? ??? ???"):
        bad = _nrrd(tmp_path, "bad.nrrd", "(2,0,0) none (0,0,3)", kinds)
        with pytest.raises(UNetPlusPlusError, match=r"no space direction.*spatial axis 1"):
            read_image(bad)
    fields = {"space directions": "none (2,0,0) (0,2,0) (0,0,3)"}
    with pytest.raises(UNetPlusPlusError, match="spatial axis 0"):  # no kinds: all spatial
        check_nrrd_geometry(tmp_path / "x.nrrd", fields)


def test_a_non_spatial_axis_may_have_no_direction(tmp_path):
    directions = "none (2,0,0) (0,2,0) (0,0,3)"
    for kind in ("list", "vector", "RGB-color", "time"):  # a segmentation's layers, colours, ...
        fields = {"space directions": directions, "kinds": f"{kind} domain domain domain"}
        check_nrrd_geometry(tmp_path / "x.nrrd", fields)
    check_nrrd_geometry(tmp_path / "x.nrrd", {"spacings": "1 1 1"})  # no space: ITK's default
    vector = sitk.GetImageFromArray(np.zeros((4, 5, 6, 3), np.uint8), isVector=True)
    sitk.WriteImage(vector, str(tmp_path / "rgb.nrrd"))  # "none" on its vector axis
    assert read_image(tmp_path / "rgb.nrrd").GetNumberOfComponentsPerPixel() == 3


def test_segment_refuses_it_in_one_line_and_writes_nothing(tmp_path, capsys):
    bad = _nrrd(tmp_path, "ct.nrrd", "(2,0,0) (0,2,0) none")
    out = tmp_path / "out" / "ct.seg.nrrd"
    assert main(["segment", str(bad), "--task", "liver", "-o", str(out), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: Cannot read") and error.count("\n") == 1, error
    assert "spatial axis 2" in error and "Traceback" not in error
    assert not out.parent.exists()


def test_a_degenerate_direction_says_why_in_words(tmp_path):
    """ITK's error ends with the matrix it refused ("... from 1 0 0 / 0 1 0 / 0 0 1 / to ..."):
    the message gave its last row, "(0 0 1)", and not the reason."""
    cases = {
        "(2,0,0) (2,0,0) (0,0,3)": "(Bad direction, determinant is 0).",
        "(2,0,0) (0,0,0) (0,0,3)": "(Zero-valued spacing is not supported",
    }
    for directions, reason in cases.items():
        with pytest.raises(UNetPlusPlusError) as raised:
            read_image(_nrrd(tmp_path, "flat.nrrd", directions))
        assert reason in str(raised.value) and "Refusing" not in str(raised.value)

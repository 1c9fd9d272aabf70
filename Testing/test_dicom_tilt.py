"""A DICOM series acquired with a gantry tilt (tester 14): its slices advance along the table (z)
while their planes are tilted, so their positions leave the slice normal. ITK's series reader
stacks them along the normal anyway; a 20 degree tilt of the 20 demo DICOM slices put the last
one 13 mm off, and `unetpp segment` wrote its result on that grid without a word. The series
is now refused before it is read; an untilted series (and the shared DICOM data) is not."""

from __future__ import annotations

import locale
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

UID = "1.2.826.0.1.3680043.8.498.1414"
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def write_tilted_series(
    folder: Path, tilt_deg: float, slices: int = 12, turn_deg: float = 0.0
) -> None:
    """``slices`` 32x32 CT slices of 0.8 mm pixels, 2 mm apart along z (the table), their
    planes tilted by ``tilt_deg`` about x (the gantry) and slice k turned ``k * turn_deg`` in
    its plane (about z). The GDCM writer's locale is restored."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        c, s = math.cos(math.radians(tilt_deg)), math.sin(math.radians(tilt_deg))
        writer = sitk.ImageFileWriter()
        writer.KeepOriginalImageUIDOn()
        rng = np.random.default_rng(0)
        for k in range(slices):
            image = sitk.GetImageFromArray(rng.integers(-1000, 400, (1, 32, 32)).astype(np.int16))
            image.SetSpacing((0.8, 0.8, 2.0))
            turn = math.radians(turn_deg * k)
            spin = np.array(
                [
                    [math.cos(turn), -math.sin(turn), 0],
                    [math.sin(turn), math.cos(turn), 0],
                    [0, 0, 1],
                ]
            )
            tilt = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
            image.SetDirection((tilt @ spin).ravel().tolist())
            image.SetOrigin((0.0, 0.0, 2.0 * k))
            for key, value in {
                "0008|0060": "CT",
                "0020|000d": UID + ".1",
                "0020|000e": UID,
                "0020|0013": str(k + 1),
                "0008|0018": f"{UID}.{k + 1}",
            }.items():
                image.SetMetaData(key, value)
            writer.SetFileName(str(folder / f"s{k:03d}.dcm"))
            writer.Execute(image)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def test_a_tilted_series_is_refused_naming_the_tilt(tmp_path):
    write_tilted_series(tmp_path / "tilt", 20.0)
    with pytest.raises(UNetPlusPlusError) as raised:
        read_volume([tmp_path / "tilt"])
    message = str(raised.value)
    assert "acquired with a gantry tilt" in message
    assert "20.0 degrees away from their normal" in message
    assert "slice 12 would lie 7.5 mm from its true place" in message


@pytest.mark.parametrize("tilt", [0.0, 0.5])
def test_an_untilted_series_or_a_drift_under_half_a_pixel_is_read(tmp_path, tilt):
    # 0.5 degrees over 22 mm: 0.19 mm, under half of the 0.8 mm pixels
    write_tilted_series(tmp_path / "axial", tilt)
    volume = read_volume([tmp_path / "axial"])
    assert volume.array.shape == (1, 12, 32, 32)


def test_cli_refuses_a_tilted_series_and_writes_nothing(tmp_path, capsys):
    write_tilted_series(tmp_path / "tilt", 15.0)
    out = tmp_path / "out" / "liver.seg.nrrd"
    assert main(["segment", str(tmp_path / "tilt"), "--task", "liver", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: The DICOM series in ")
    assert "15.0 degrees" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_the_shared_dicom_series_are_not_tilted():
    folders = [DATA / "liver" / "totalsegmentator-examples" / "example_ct_dicom"]
    folders += sorted((DATA / "lung-nodule" / "lidc-dicom-slabs").glob("LIDC-IDRI-*"))
    for folder in folders:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LIDC-IDRI-0003's truncated slice is skipped
            assert read_volume([folder]).array.ndim == 4


@pytest.mark.parametrize("turn, slice_name", [(3.0, "s001.dcm"), (0.2, "s001.dcm")])
def test_a_series_whose_slices_turn_is_refused(tmp_path, turn, slice_name):
    """Tester 15: slices whose orientation differs from the first one's (turned 3 degrees a
    slice, up to 33) were read as a straight stack with the first slice's orientation, every
    other slice off its true place, in silence."""
    write_tilted_series(tmp_path / "turned", 0.0, turn_deg=turn)
    with pytest.raises(UNetPlusPlusError, match="holds slices of different orientations") as raised:
        read_volume([tmp_path / "turned"])
    assert f"({slice_name} is turned {turn:.1f} degrees from the first slice)" in str(raised.value)


def test_orientations_within_the_header_rounding_are_read(tmp_path):
    write_tilted_series(tmp_path / "turned", 0.0, turn_deg=0.001)  # 0.011 degrees at slice 12
    assert read_volume([tmp_path / "turned"]).array.shape == (1, 12, 32, 32)

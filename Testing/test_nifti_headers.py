"""Odd but readable NIfTI headers read in one pass exactly as ITK reads them, and impossible ones
refused with one clear error (found by a breaker's pass over the one-pass reader)."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.nifti_check import read_nifti
from UNetPlusPlusLib.errors import UNetPlusPlusError


def _nifti(tmp_path: Path, name: str, edit, gz: bool = True) -> Path:
    """An int16 NIfTI (7 x 9 x 11 voxels, spacing (0.7, 0.9, 2.5)) whose raw bytes ``edit``
    changes in place; a CT-like ramp from -1000 (air) to 384 HU (a ramp to 4382 HU, mostly
    denser than bone, is refused as an inverted CT: engine/ct_range.inverted_problem)."""
    values = (np.arange(7 * 9 * 11, dtype=np.int16).reshape(7, 9, 11) * 2) - 1000
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-12.5, 30.25, 7.0))
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(image, str(plain))
    data = bytearray(plain.read_bytes())
    edit(data)
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(data)) if gz else bytes(data))
    return path


def _same_as_itk(path: Path) -> None:
    volume, itk = read_volume([path]), sitk.ReadImage(str(path))
    np.testing.assert_array_equal(volume.array[0], sitk.GetArrayFromImage(itk).astype("f4"))
    assert volume.spacing == itk.GetSpacing() and volume.origin == itk.GetOrigin()
    assert volume.direction.flatten().tolist() == list(itk.GetDirection())


@pytest.mark.parametrize("bitpix", [0, 8, 32])
def test_a_wrong_bitpix_reads_by_the_datatype_as_itk_does(tmp_path, bitpix):
    """nifticlib takes the bytes per voxel from the datatype; the one pass did from bitpix, so
    bitpix 8 on int16 data gave wrong voxels silently and bitpix 32 an internal error."""
    path = _nifti(tmp_path, "bitpix.nii.gz", lambda b: struct.pack_into("<h", b, 72, bitpix))
    assert read_nifti(path) is not None  # still the one-pass path
    _same_as_itk(path)


def _pixdim(index: int, value: float, sform_code: int = 0):
    """An edit setting pixdim[index] to ``value`` and the sform code."""

    def edit(data: bytearray) -> None:
        struct.pack_into("<h", data, 254, sform_code)
        pixdim = list(struct.unpack_from("<8f", data, 76))
        pixdim[index] = value
        struct.pack_into("<8f", data, 76, *pixdim)

    return edit


@pytest.mark.parametrize("sform_code", [0, 1])
@pytest.mark.parametrize(
    "index, value, words",
    [
        (3, 0.0, "pixdim[3] (k axis) = 0"),
        (1, float("nan"), "pixdim[1] (i axis) = nan"),
        (2, float("inf"), "pixdim[2] (j axis) = inf"),
        (1, -0.7, "negative voxel spacing in its NIfTI header, pixdim[1] (i axis) = -0.7"),
    ],
)
def test_a_pixdim_itk_would_misread_is_refused(tmp_path, index, value, words, sform_code):
    """ITK reads 1 mm for a pixdim of 0, NaN or inf whatever the sform says (and flips the axis
    of a negative one): the example CT with pixdim[3] 0 gave 413 ml instead of 1032 ml."""
    path = _nifti(tmp_path, "bad.nii.gz", _pixdim(index, value, sform_code))
    if value == 0:
        assert sitk.ReadImage(str(path)).GetSpacing()[2] == 1.0  # what ITK would have used
    with pytest.raises(UNetPlusPlusError, match=re.escape(words)):
        read_volume([path])


def test_the_roi_path_refuses_a_zero_pixdim_too(tmp_path):
    from UNetPlusPlusLib.engine.streamed_checks import check_files

    path = _nifti(tmp_path, "zero.nii.gz", _pixdim(3, 0.0, 1))
    with pytest.raises(UNetPlusPlusError, match="no valid voxel spacing"):
        check_files([path], ["CT"])


def test_the_cli_refuses_a_zero_pixdim_in_one_line_without_itks_warning(tmp_path, capfd):
    """With an sform, ITK also printed its raw 'WARNING: In /tmp/SimpleITK-build/...' lines."""
    path = _nifti(tmp_path, "zero.nii", _pixdim(3, 0.0, 1), gz=False)
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "pixdim[3]" in err[0], err
    assert not out.exists()


def test_sform_scales_unlike_pixdim_give_one_warning_line(tmp_path):
    """ITK uses pixdim's spacing and only said 'unexpected scales in sform' on stderr."""

    def edit(data: bytearray) -> None:
        rows = list(struct.unpack_from("<12f", data, 280))
        rows[10] = 2 * rows[10]  # the sform's k column: 5 mm, pixdim 2.5 mm
        struct.pack_into("<12f", data, 280, *rows)

    path = _nifti(tmp_path, "scales.nii.gz", edit)
    with pytest.warns(UserWarning, match="sform has 0.7 x 0.9 x 5 mm voxels but its pixdim"):
        read_volume([path])


def test_no_negative_zero_in_the_direction(tmp_path):
    path = _nifti(tmp_path, "zero.nii.gz", lambda b: None)
    direction = read_volume([path]).direction.flatten()
    assert not any(v == 0 and np.signbit(v) for v in direction)


@pytest.mark.parametrize("dims", [(32767, 32767, 32767), (2000, 2000, 2000)])
def test_a_huge_header_in_a_small_file_is_truncated_not_out_of_memory(tmp_path, dims):
    path = _nifti(tmp_path, "huge.nii.gz", lambda b: struct.pack_into("<3h", b, 42, *dims))
    with pytest.raises(UNetPlusPlusError, match="huge.nii.gz: the file is truncated"):
        read_volume([path])


def test_the_cli_refuses_a_huge_header_in_one_line(tmp_path, capsys):
    path = _nifti(tmp_path, "huge.nii.gz", lambda b: struct.pack_into("<3h", b, 42, *[32767] * 3))
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "truncated" in err[0]
    assert sorted(tmp_path.iterdir()) == sorted([tmp_path / "plain.nii", path])  # no output


@pytest.mark.parametrize(
    "dims, message",
    [((0, 9, 7), "is empty"), ((0, 0, 0), "is empty"), ((-5, 9, 7), "impossible size")],
)
def test_an_empty_or_impossible_size_is_one_line_before_itk(tmp_path, capfd, dims, message):
    """Empty images were called truncated; a negative dim let nifticlib print its own
    "** ERROR" line on stderr before ours."""
    path = _nifti(tmp_path, "odd.nii.gz", lambda b: struct.pack_into("<3h", b, 42, *dims))
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


def test_a_float64_beyond_float32_is_one_error_without_a_numpy_warning(tmp_path, capfd):
    def edit(data: bytearray) -> None:
        struct.pack_into("<2h", data, 70, 64, 64)  # float64
        values = np.frombuffer(bytes(data[352:]), "<i2").astype("<f8")
        values[5] = 1e300
        data[352:] = values.tobytes()

    path = _nifti(tmp_path, "big.nii.gz", edit)
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NaN or infinite" in err[0], err


@pytest.mark.parametrize("name", ["scan.hdr", "scan.img"])
def test_a_hdr_img_pair_is_checked_like_a_nii(tmp_path, name):
    """ITK pads a truncated .img with zeros and reads NaN as 0; pairs were not checked."""
    values = np.random.default_rng(2).normal(0, 1, (6, 7, 8)).astype("f4")
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "scan.hdr"))
    _same_as_itk(tmp_path / name)
    image = tmp_path / "scan.img"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    with pytest.raises(UNetPlusPlusError, match="scan.img: the file is truncated"):
        read_volume([tmp_path / name])
    values[2, 3, 4] = np.nan
    image.write_bytes(values.tobytes())
    with pytest.raises(UNetPlusPlusError, match="1 NaN or infinite"):
        read_volume([tmp_path / name])


def _nifti2(path: Path, values: np.ndarray, srow: np.ndarray, order: str = "<") -> Path:
    """A NIfTI-2 file written byte by byte after nifti2.h (SimpleITK writes NIfTI-1 only):
    ``values`` (z, y, x) int16, sform ``srow`` (3 x 4, RAS mm), qform unset."""
    header = bytearray(544)
    struct.pack_into(order + "i", header, 0, 540)
    header[4:12] = b"n+2\x00\r\n\x1a\n"
    struct.pack_into(order + "hh", header, 12, 4, 16)  # datatype int16, bitpix
    z, y, x = values.shape
    struct.pack_into(order + "8q", header, 16, 3, x, y, z, 1, 1, 1, 1)  # dim
    spacing = np.linalg.norm(srow[:, :3], axis=0)
    struct.pack_into(order + "8d", header, 104, 1.0, *spacing, 0, 0, 0, 0)  # pixdim
    struct.pack_into(order + "q", header, 168, 544)  # vox_offset
    struct.pack_into(order + "ii", header, 344, 0, 2)  # qform_code 0, sform_code 2 (aligned)
    struct.pack_into(order + "12d", header, 400, *srow.flatten())
    struct.pack_into(order + "i", header, 500, 2)  # xyzt_units: mm
    data = values.astype(np.dtype(order + "i2")).tobytes()
    raw = bytes(header) + data
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


@pytest.mark.parametrize("name, order", [("n2.nii", "<"), ("n2.nii.gz", "<"), ("be.nii", ">")])
def test_a_nifti2_file_is_one_error_saying_what_it_is(tmp_path, name, order, capfd):
    """ITK 5.4 (SimpleITK, 3D Slicer) reads NIfTI-1 only: a NIfTI-2 file (oblique sform here)
    was refused as "truncated, corrupt or not a supported image". Now one line that names the
    format and the conversion, from the CLI too, with no output written."""
    srow = np.hstack([np.diag([0.7, 0.9, 2.5]), np.array([[-12.5], [30.25], [7.0]])])
    srow[0, 1] = 0.3  # oblique
    path = _nifti2(tmp_path / name, np.zeros((7, 9, 11), np.int16), srow, order)
    with pytest.raises(UNetPlusPlusError, match="is a NIfTI-2 file") as error:
        read_volume([path])
    assert "NIfTI-1 or NRRD" in str(error.value) and "truncated" not in str(error.value)
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--task", "liver", "-o", str(out), "--quiet"]) == 2
    err = capfd.readouterr().err
    assert "is a NIfTI-2 file" in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
def test_a_float64_beyond_float32_through_roi_is_one_error_without_a_numpy_warning(
    tmp_path, capfd, suffix
):
    """Tester 14: the streamed ``--roi`` path printed numpy's "overflow encountered in cast"
    before the refusal of a float64 NRRD holding 1e300."""
    values = np.full((20, 30, 30), -1000.0)
    values[10, 10, 10] = 1e300
    path = tmp_path / f"big{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    out = tmp_path / "out.seg.nrrd"
    roi = ["--roi", "0", "0", "0", "10", "10", "10"]
    assert main(["segment", str(path), "--task", "liver", *roi, "-o", str(out)]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "beyond float32's range" in err[0], err
    assert not out.exists()


def test_the_cli_hides_itks_raw_warning_and_says_ours_once(tmp_path, sphere_model, capfd):
    """An sform whose scales differ from pixdim: ITK printed 'WARNING: In /tmp/SimpleITK-build/
    ...itkNiftiImageIO.cxx ... unexpected scales in sform' on stderr (tester 20)."""
    from helpers import make_sphere_image

    image = sitk.Cast(
        make_sphere_image((24, 24, 16), (2.0, 2.0, 2.0), radius_mm=9.0), sitk.sitkInt16
    )
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(image, str(plain))
    data = bytearray(plain.read_bytes())
    struct.pack_into("<h", data, 252, 0)  # qform_code 0: the sform alone places it
    rows = list(struct.unpack_from("<12f", data, 280))
    rows[10] = 2.2 * rows[10] / abs(rows[10])  # the sform's k step 2.2 mm, pixdim 2 mm
    struct.pack_into("<12f", data, 280, *rows)
    path = tmp_path / "scales.nii"
    path.write_bytes(bytes(data))
    out = tmp_path / "x.seg.nrrd"
    argv = ["segment", str(path), "--model", str(sphere_model), "--quiet", "-o", str(out)]
    assert main(argv) == 0
    err = capfd.readouterr().err
    assert "WARNING: In" not in err and "unexpected scales" not in err, err
    said = [line for line in err.splitlines() if "its NIfTI sform has" in line]
    assert len(said) == 1 and "2 x 2 x 2.2 mm voxels but its pixdim 2 x 2 x 2 mm" in said[0]

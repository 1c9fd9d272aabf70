"""A header whose image data file is missing or short (.mhd + .raw, .nhdr + .raw, .hdr + .img):
one error naming the data file and the header's field, no ITK text on stderr, nothing written
(engine/data_files.py). Before, `unetpp segment X.mhd` printed ITK's "MetaImage: Read: Cannot
open data file" and then "... (Reason: No such file or directory)", naming neither file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.image_read import read_image
from UNetPlusPlusLib.errors import UNetPlusPlusError


def _ct(folder: Path, name: str) -> Path:
    """A small int16 CT-like image (air around a 40 HU block), written as ``name``."""
    values = np.full((12, 14, 16), -1000, dtype=np.int16)
    values[3:9, 4:10, 4:12] = 40
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((2.0, 2.0, 3.0))
    image.SetOrigin((-10.0, 5.0, 7.5))
    path = folder / name
    sitk.WriteImage(image, str(path))
    return path


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


CASES = {  # header name, data file, how it is broken, the words the error must hold
    "mhd-missing": ("ct.mhd", "ct.raw", None, ["ct.raw", "'ElementDataFile = ct.raw'", "exist"]),
    "mhd-short": ("ct.mhd", "ct.raw", 1000, ["ct.raw", "ElementDataFile", "1000 of 5376 bytes"]),
    "nhdr-missing": ("ct.nhdr", "ct.raw", None, ["ct.raw", "'data file: ct.raw'", "exist"]),
    "nhdr-short": ("ct.nhdr", "ct.raw", 1000, ["ct.raw", "'data file: ct.raw'", "truncated"]),
    "hdr-without-img": ("ct.hdr", "ct.img", None, ["ct.img", "does not exist"]),
    "img-without-hdr": ("ct.img", "ct.hdr", None, ["ct.hdr", "does not exist"]),
}


@pytest.mark.parametrize("case", CASES)
def test_a_missing_or_short_data_file_is_one_error_naming_it(case, tmp_path, capfd):
    header, data, keep, words = CASES[case]
    path = _ct(tmp_path, "ct.hdr" if header == "ct.img" else header)
    if header == "ct.img":
        (tmp_path / "ct.hdr").unlink()
        path = tmp_path / "ct.img"
    elif keep is None:
        (tmp_path / data).unlink()
    else:
        _truncate(tmp_path / data, keep)
    capfd.readouterr()
    with pytest.raises(UNetPlusPlusError) as raised:
        read_image(path)
    message = str(raised.value)
    assert message.startswith(f"Cannot read {path}") and str(tmp_path / data) in message
    assert all(word in message for word in words), message
    assert capfd.readouterr().err == ""  # nothing from ITK's C++ code on the terminal


@pytest.mark.parametrize("roi", [[], ["--roi", "-15", "-25", "10", "5", "-10", "30"]])
def test_segment_prints_one_line_and_writes_nothing(roi, tmp_path, capfd):
    """End to end, whole-image and region (--roi: the streamed checks) reads."""
    path = _ct(tmp_path, "ct.mhd")
    (tmp_path / "ct.raw").unlink()
    capfd.readouterr()
    out = tmp_path / "out" / "ct.seg.nrrd"
    code = main(["segment", str(path), "--task", "liver", "--device", "cpu", "-o", str(out), *roi])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith(f"error: Cannot read {path}"), err
    assert "ElementDataFile = ct.raw" in err[0] and "Traceback" not in err[0]
    assert not out.parent.exists()


def test_complete_headers_and_their_data_still_read(tmp_path, capfd):
    """Whole .mhd, .mha (voxels after the header), .nhdr, .hdr/.img: read as before."""
    names = ["a.mhd", "b.mha", "c.nhdr", "d.hdr", "e.nrrd"]
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(_ct(tmp_path, "ref.nrrd"))))
    for name in names:
        image = read_image(_ct(tmp_path, name))
        assert np.array_equal(sitk.GetArrayFromImage(image), expected), name
        assert image.GetOrigin() == (-10.0, 5.0, 7.5) and image.GetSpacing() == (2.0, 2.0, 3.0)


def test_a_short_mha_is_refused_before_itk_reads_it(tmp_path, capfd):
    path = _ct(tmp_path, "ct.mha")
    _truncate(path, path.stat().st_size - 100)
    capfd.readouterr()
    with pytest.raises(UNetPlusPlusError, match=r"the file is truncated \(\d+ of \d+ bytes"):
        read_image(path)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("name, data", [("ct.mha", "ct.mha"), ("ct.mhd", "ct.zraw")])
def test_a_short_compressed_metaimage_is_refused_before_itk_reads_it(name, data, tmp_path, capfd):
    """A compressed MetaImage shorter than its CompressedDataSize: ITK printed "MetaImage:
    M_ReadElementsData: data not read completely / ideal = ... : actual = ..." above the error
    (tester 20); now one error. The whole file still reads."""
    path, reference = tmp_path / name, sitk.ReadImage(str(_ct(tmp_path, "ref.nrrd")))
    sitk.WriteImage(reference, str(path), True)
    expected = sitk.GetArrayFromImage(reference)
    assert np.array_equal(sitk.GetArrayFromImage(read_image(path)), expected)
    _truncate(tmp_path / data, (tmp_path / data).stat().st_size - 20)
    capfd.readouterr()
    with pytest.raises(UNetPlusPlusError, match=r"is truncated \(\d+ of \d+ bytes"):
        read_image(path)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    "name, data", [("ct.mha", "ct.mha"), ("ct.nrrd", "ct.nrrd"), ("ct.nhdr", "ct.raw.gz")]
)
def test_damaged_compressed_voxels_are_refused_not_read_as_garbage(name, data, tmp_path, capfd):
    """50 bytes flipped inside the compressed voxels of a .mha or .nrrd: ITK read the file
    without an error, every voxel after the damage garbage (tester 20)."""
    path = tmp_path / name
    sitk.WriteImage(sitk.ReadImage(str(_ct(tmp_path, "ref.mha"))), str(path), True)
    damaged = bytearray((tmp_path / data).read_bytes())
    middle = len(damaged) - 60
    damaged[middle : middle + 50] = bytes(b ^ 0x55 for b in damaged[middle : middle + 50])
    (tmp_path / data).write_bytes(bytes(damaged))
    capfd.readouterr()
    with pytest.raises(UNetPlusPlusError, match=r"compressed voxels are corrupt .*damaged"):
        read_image(path)
    assert capfd.readouterr().err == ""


def test_a_nrrd_list_of_data_files_is_checked_file_by_file(tmp_path):
    """``data file: LIST``: the files named after it, one per slice group; all there: read."""
    values = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    (tmp_path / "z0.raw").write_bytes(values[0].astype("<i2").tobytes())
    (tmp_path / "z1.raw").write_bytes(values[1].astype("<i2").tobytes())
    header = tmp_path / "ct.nhdr"
    header.write_text(
        "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 4 3 2\n"
        "space directions: (1,0,0) (0,1,0) (0,0,1)\nspace origin: (0,0,0)\nendian: little\n"
        "encoding: raw\ndata file: LIST 2\nz0.raw\nz1.raw\n"
    )
    assert np.array_equal(sitk.GetArrayFromImage(read_image(header)), values)
    (tmp_path / "z1.raw").unlink()
    with pytest.raises(UNetPlusPlusError, match=r"z1\.raw \('data file: LIST 2' in the header"):
        read_image(header)


def test_a_metaimage_list_of_slice_files_with_a_dimension_reads_as_itk_reads_it(tmp_path):
    """``ElementDataFile = LIST 2D`` (one file per slice, MetaIO's documented form) is read as
    SimpleITK reads it; it was refused as a missing data file named 'LIST 2D' (tester 21)."""
    values = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    for k in range(2):
        (tmp_path / f"z{k}.raw").write_bytes(values[k].astype("<i2").tobytes())
    header = tmp_path / "ct.mhd"
    header.write_text(
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "DimSize = 4 3 2\nElementType = MET_SHORT\nElementDataFile = LIST 2D\nz0.raw\nz1.raw\n"
    )
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(header)))
    assert np.array_equal(expected, values)
    assert np.array_equal(sitk.GetArrayFromImage(read_image(header)), expected)


def test_a_gzip_member_ending_one_byte_before_a_read_boundary_is_followed(tmp_path, monkeypatch):
    """A two-member .raw.gz whose first member ends one byte before the end of a read (reads of
    64 bytes here, 1 MiB in use): the next member's magic is split across two reads. It was
    refused as holding too few bytes (tester 21); SimpleITK reads it."""
    from UNetPlusPlusLib.engine import compressed_data, inflate_stream

    monkeypatch.setattr(inflate_stream, "_READ", 64)
    monkeypatch.setattr(compressed_data, "_VERIFIED", [])
    values = np.arange(48, dtype="<i2").reshape(4, 12)
    first = gzip.compress(values[:2].tobytes()[:40], compresslevel=0, mtime=0)
    assert len(first) == 63  # 10 + 5 + 40 + 8: ends one byte before the first read's end
    data = first + gzip.compress(values.tobytes()[40:], mtime=0)
    (tmp_path / "ct.raw.gz").write_bytes(data)
    header = tmp_path / "ct.nhdr"
    header.write_text(
        "NRRD0004\ntype: short\ndimension: 2\nsizes: 12 4\nendian: little\nencoding: gzip\n"
        "data file: ct.raw.gz\n"
    )
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(header))), values)
    assert np.array_equal(sitk.GetArrayFromImage(read_image(header)), values)

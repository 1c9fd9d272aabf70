"""Truncated NIfTI files are refused (ITK's reader would pad them silently)."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.image_read import read_image
from UNetPlusPlusLib.errors import UNetPlusPlusError


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("fraction", [0.3, 0.999])
def test_truncated_nifti_is_refused(tmp_path, suffix, fraction):
    image = sitk.GetImageFromArray(np.random.default_rng(0).random((12, 13, 14)).astype("f4"))
    path = tmp_path / f"ok{suffix}"
    sitk.WriteImage(image, str(path), True)
    assert read_image(path).GetSize() == (14, 13, 12)
    data = path.read_bytes()
    broken = tmp_path / f"broken{suffix}"
    broken.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(UNetPlusPlusError, match="broken.nii.*truncated"):
        read_image(broken)


def test_shared_nifti_files_pass_the_check(shared_data):
    for path in sorted((shared_data / "liver" / "totalsegmentator-examples").glob("*.nii.gz")):
        read_image(path)


# ------------------------------------------------------------------ one pass: checks and voxels
def _oblique(array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-12.5, 30.25, 7.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return image


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", ["u1", "i1", "u2", "i2", "i4", "u4", "f4", "f8"])
def test_read_volume_decompresses_once_and_equals_itk(tmp_path, suffix, dtype):
    """The voxels come from the check's own pass (read_nifti), the geometry from ITK's header
    reading: values and geometry equal ITK's whole-file reading exactly."""
    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.nifti_check import read_nifti

    values = np.random.default_rng(1).integers(0, 120, (7, 9, 11)).astype(dtype)
    path = tmp_path / f"x{suffix}"
    sitk.WriteImage(_oblique(values), str(path), suffix.endswith("gz"))
    assert read_nifti(path) is not None  # the one-pass path is taken
    volume, itk = read_volume([path]), sitk.ReadImage(str(path))
    np.testing.assert_array_equal(volume.array[0], sitk.GetArrayFromImage(itk).astype("f4"))
    assert volume.spacing == itk.GetSpacing() and volume.origin == itk.GetOrigin()
    assert volume.direction.flatten().tolist() == list(itk.GetDirection())


def test_big_endian_nifti_reads_the_same_values(tmp_path):
    import struct

    from UNetPlusPlusLib.engine.image_read import read_volume

    values = np.arange(6 * 7 * 8, dtype=np.int16).reshape(6, 7, 8) - 100
    path = tmp_path / "little.nii"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    header = bytearray(path.read_bytes()[:352])
    layout = [(0, "i"), (40, "8h"), (70, "h"), (72, "h"), (76, "8f"), (108, "f")]
    layout += [(252, "2h"), (256, "6f"), (280, "12f")]  # qform, sform: as a big-endian writer
    for start, fmt in layout:
        size = struct.calcsize(fmt)
        fields = struct.unpack("<" + fmt, header[start : start + size])
        header[start : start + size] = struct.pack(">" + fmt, *fields)
    big = tmp_path / "big.nii"
    big.write_bytes(bytes(header) + values.astype(">i2").tobytes())
    np.testing.assert_array_equal(read_volume([big]).array[0], values)


def test_a_scaled_nifti_is_read_by_itk_with_its_scaling(tmp_path):
    """scl_slope/scl_inter: not read in one pass (None); ITK applies the scaling as before."""
    import struct

    from UNetPlusPlusLib.engine.image_read import read_volume
    from UNetPlusPlusLib.engine.nifti_check import read_nifti

    values = np.arange(5 * 6 * 7, dtype=np.int16).reshape(5, 6, 7)
    path = tmp_path / "scaled.nii"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    data = bytearray(path.read_bytes())
    data[112:120] = struct.pack("<2f", 2.0, -10.0)
    path.write_bytes(bytes(data))
    assert read_nifti(path) is None
    np.testing.assert_array_equal(read_volume([path]).array[0], values * 2.0 - 10.0)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_read_volume_refuses_truncated_nifti_files(tmp_path, suffix):
    from UNetPlusPlusLib.engine.image_read import read_volume

    path = tmp_path / f"ok{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((12, 13, 14), np.int16)), str(path), True)
    broken = tmp_path / f"broken{suffix}"
    raw = path.read_bytes()  # the .nii.gz of ones is ~100 bytes: cutting 200 left it empty
    broken.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UNetPlusPlusError, match="broken.nii.*(truncated|corrupt)"):
        read_volume([broken])


def test_an_uncompressed_nifti_named_nii_gz_reads_as_itk_reads_it(tmp_path):
    """ITK (and so 3D Slicer) reads a plain NIfTI whose name ends in .nii.gz; the raw-value
    check opened every .gz name with gzip and refused it as 'the compressed file is truncated
    or corrupt (Not a gzipped file ...)' (tester 10). A broken gzip is still refused."""
    import gzip

    from UNetPlusPlusLib.engine.image_read import read_volume

    values = np.random.default_rng(2).integers(-1000, 400, (7, 9, 11)).astype("i2")
    plain = tmp_path / "plain.nii"
    sitk.WriteImage(_oblique(values), str(plain), False)
    misnamed = tmp_path / "plain.nii.gz"
    misnamed.write_bytes(plain.read_bytes())
    volume, itk = read_volume([misnamed]), sitk.ReadImage(str(misnamed))
    np.testing.assert_array_equal(volume.array[0], sitk.GetArrayFromImage(itk).astype("f4"))
    assert volume.spacing == itk.GetSpacing() and volume.origin == itk.GetOrigin()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(gzip.compress(plain.read_bytes())[:-40])
    with pytest.raises(UNetPlusPlusError, match="truncated or corrupt"):
        read_volume([broken])


def test_a_gzipped_nifti_named_nii_says_to_rename_it(tmp_path, capsys):
    """A .nii.gz saved as .nii: ITK (SimpleITK, 3D Slicer) cannot read it ("Unable to determine
    ImageIO reader"), and the message called it truncated or corrupt (tester 12). Now one
    sentence says what it is and the new name, on every read path (whole image, --roi)."""
    from UNetPlusPlusLib.cli import main
    from UNetPlusPlusLib.engine.image_read import read_volume

    values = np.random.default_rng(3).integers(-1000, 400, (7, 9, 11)).astype("i2")
    compressed = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_oblique(values), str(compressed), True)
    misnamed = tmp_path / "ct.nii"
    misnamed.write_bytes(compressed.read_bytes())
    with pytest.raises(RuntimeError, match="Unable to determine ImageIO"):
        sitk.ReadImage(str(misnamed))  # what ITK itself does with it
    expected = "is a gzip-compressed NIfTI file (a .nii.gz) but its name ends in .nii"
    for read in (read_image, lambda p: read_volume([p])):
        with pytest.raises(UNetPlusPlusError, match=r"ct\.nii is a gzip.*rename it to ct\.nii\.gz"):
            read(misnamed)
    for roi in ([], ["--roi", "0", "0", "0", "5", "5", "5"]):
        argv = ["segment", str(misnamed), "--task", "liver", "-o", str(tmp_path / "o.nrrd")]
        assert main(argv + roi) == 2
        (line,) = capsys.readouterr().err.splitlines()
        assert expected in line and "corrupt" not in line

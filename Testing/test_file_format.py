"""A file whose name says another format than its content (engine/file_format.py): a .nii.gz
renamed .nrrd, an NRRD named .nii.gz, a MetaImage named .nrrd, ... ITK picks its reader by the
name and answered "Unable to determine ImageIO reader", which we called "truncated, corrupt or
not a supported image". Now one line says what the file is and the name to give it."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.file_format import check_named_format, file_format
from UNetPlusPlusLib.engine.image_read import read_image, read_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """One small CT-like image saved as .nii.gz, .nii, .nrrd and .mha (and the .nrrd gzipped)."""
    folder = tmp_path_factory.mktemp("formats")
    values = np.random.default_rng(5).integers(-1000, 400, (6, 7, 8)).astype("i2")
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.8, 0.9, 2.5))
    files = {}
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha"):
        files[ending] = folder / f"ct{ending}"
        sitk.WriteImage(image, str(files[ending]), ending == ".nii.gz")
    files[".nrrd.gz"] = folder / "ct.nrrd.gz"
    files[".nrrd.gz"].write_bytes(gzip.compress(files[".nrrd"].read_bytes()))
    return files


@pytest.mark.parametrize(
    "content, name, says, new",
    [
        (
            ".nii.gz",
            "scan.nrrd",
            "a gzip-compressed NIfTI file (a .nii.gz), not an NRRD",
            "scan.nii.gz",
        ),
        (".nrrd", "scan.nii.gz", "an NRRD file, not a NIfTI file", "scan.nrrd"),
        (".nrrd", "scan.nii", "an NRRD file, not a NIfTI file", "scan.nrrd"),
        (".mha", "scan.nrrd", "a MetaImage file, not an NRRD file", "scan.mha"),
        (".nii", "scan.mha", "a NIfTI file, not a MetaImage file", "scan.nii"),
        (
            ".nii.gz",
            "scan.mha",
            "a gzip-compressed NIfTI file (a .nii.gz), not a MetaImage",
            "scan.nii.gz",
        ),
    ],
)
def test_a_misnamed_image_says_what_it_is_and_its_name(images, tmp_path, content, name, says, new):
    misnamed = tmp_path / name
    shutil.copyfile(images[content], misnamed)
    with pytest.raises(RuntimeError, match="Unable to determine ImageIO"):
        sitk.ReadImage(str(misnamed))  # what ITK itself does with it
    for read in (read_image, lambda p: read_volume([p])):
        with pytest.raises(UNetPlusPlusError) as error:
            read(misnamed)
        assert f"{name} is {says}" in str(error.value), str(error.value)
        assert f"rename it to {new} " in str(error.value) and "corrupt" not in str(error.value)
    renamed = tmp_path / new  # and the advice is right: renamed, it reads as the original
    misnamed.rename(renamed)
    assert np.array_equal(
        sitk.GetArrayFromImage(read_image(renamed)),
        sitk.GetArrayFromImage(read_image(images[content])),
    )


def test_a_gzipped_nrrd_says_to_decompress_it(images, tmp_path):
    misnamed = tmp_path / "scan.nrrd"
    shutil.copyfile(images[".nrrd.gz"], misnamed)
    with pytest.raises(
        UNetPlusPlusError, match=r"compressed whole with gzip.*gunzip scan\.nrrd\.gz"
    ):
        read_volume([misnamed])


def test_right_names_and_unknown_contents_pass(images, tmp_path):
    for ending in (".nii.gz", ".nii", ".nrrd", ".mha"):
        check_named_format(images[ending])  # no error
    plain = tmp_path / "plain.nii.gz"  # ITK reads a plain NIfTI named .nii.gz: not refused
    shutil.copyfile(images[".nii"], plain)
    check_named_format(plain)
    odd = tmp_path / "odd.nrrd"
    odd.write_bytes(b"\x00" * 600)
    assert file_format(odd) is None
    check_named_format(odd)  # unknown: the reader says why it cannot read it
    dicom = tmp_path / "slice.nrrd"
    dicom.write_bytes(b"\x00" * 128 + b"DICM" + b"\x00" * 200)
    with pytest.raises(UNetPlusPlusError, match="is a DICOM file.*folder of its DICOM series"):
        check_named_format(dicom)


def test_the_cli_says_it_in_one_line_and_writes_nothing(images, tmp_path, sphere_model, capsys):
    from UNetPlusPlusLib.cli import main

    misnamed = tmp_path / "ct.nrrd"
    shutil.copyfile(images[".nii.gz"], misnamed)
    out = tmp_path / "out" / "ct.seg.nrrd"
    for roi in ([], ["--roi", "0", "0", "0", "4", "4", "4"]):
        assert (
            main(["segment", str(misnamed), "--model", str(sphere_model), "-o", str(out)] + roi)
            == 2
        )
        (line,) = capsys.readouterr().err.splitlines()
        assert line.startswith("error: ") and "rename it to ct.nii.gz" in line
    assert not out.parent.exists()


@pytest.mark.parametrize("name", ["empty.nii.gz", "empty.nrrd", "empty.mha", "empty.dcm"])
def test_an_empty_file_is_called_empty(tmp_path, sphere_model, capsys, name):
    """Fresh user 27: a 0-byte input was "truncated, corrupt or not a supported image (Unable
    to determine ImageIO reader ...)"."""
    from UNetPlusPlusLib.cli import main

    empty = tmp_path / name
    empty.touch()
    out = tmp_path / "out" / "x.seg.nrrd"
    assert main(["segment", str(empty), "--model", str(sphere_model), "-o", str(out)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert (
        line == f"error: {empty} is empty (0 bytes): it holds no image. The copy or download "
        "that made it may not have finished; copy it again, or give another file."
    )
    assert not out.parent.exists()

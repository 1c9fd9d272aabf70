"""Several DICOM series in one folder are never resolved silently (issue 9, case 3).

The folder is refused with a list of its series (UID, description, slice count) and the way to
pick one (``--series UID``); with ``--series`` the named series is read.
"""

from __future__ import annotations

import locale
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.cli import build_parser
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

CT_UID = "1.2.826.0.1.3680043.8.498.1001"
OTHER_UID = "1.2.826.0.1.3680043.8.498.2002"


def write_series(
    folder: Path, uid: str, slices: int, description: str, patient: str, modality: str = "CT"
) -> None:
    """``slices`` 16x16 int16 CT slices at 2 mm, with their own Series Instance UID (and
    ``modality`` as their DICOM Modality).

    ITK's GDCM writer sets the process locale to "C" (and leaves it so); it is restored here,
    or later tests that read text with the default encoding would see ASCII.
    """
    saved = locale.setlocale(locale.LC_ALL)
    try:
        _write_series(folder, uid, slices, description, patient, modality)
    finally:
        locale.setlocale(locale.LC_ALL, saved)


def _write_series(
    folder: Path, uid: str, slices: int, description: str, patient: str, modality: str
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(slices)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(slices):
        array = rng.integers(-1000, 400, (1, 16, 16)).astype(np.int16)
        image = sitk.GetImageFromArray(array)
        image.SetSpacing((0.8, 0.8, 2.0))
        image.SetOrigin((0.0, 0.0, 2.0 * k))
        tags = {
            "0008|0060": modality,
            "0010|0010": patient,
            "0010|0020": patient,
            "0020|000d": uid + ".1",
            "0020|000e": uid,
            "0008|103e": description,
            "0020|0013": str(k + 1),
            "0020|0032": f"0\\0\\{2.0 * k}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|0030": "0.8\\0.8",
            "0018|0050": "2.0",
            "0008|0018": f"{uid}.{k + 1}",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        writer.SetFileName(str(folder / f"{uid[-4:]}_{k:03d}.dcm"))
        writer.Execute(image)


@pytest.fixture()
def mixed_folder(tmp_path) -> Path:
    folder = tmp_path / "mixed"
    write_series(folder, CT_UID, 20, "Abdomen 2.0", "PATIENT^A")
    write_series(folder, OTHER_UID, 16, "Chest 2.0", "PATIENT^B")
    return folder


def test_a_folder_with_two_series_is_refused_listing_each(mixed_folder):
    with pytest.raises(UNetPlusPlusError) as caught:
        read_volume([mixed_folder])
    message = str(caught.value)
    assert "holds 2 DICOM series" in message
    assert f"{CT_UID} ('Abdomen 2.0', 20 slice(s))" in message
    assert f"{OTHER_UID} ('Chest 2.0', 16 slice(s))" in message
    assert "--series UID" in message


def test_a_series_without_a_uid_is_named_as_such():
    # tester 8: the TotalSegmentator example DICOM series has an empty Series Instance UID;
    # beside another series the listing began "holds 2 DICOM series:  ('CT Body 3.0', ...",
    # a blank where --series needed a UID that does not exist
    from UNetPlusPlusLib.engine.dicom import DicomSeries, choose_series

    series = [DicomSeries("", ["a.dcm"] * 20, "CT Body 3.0"), DicomSeries(CT_UID, ["b.dcm"] * 16)]
    with pytest.raises(UNetPlusPlusError) as caught:
        choose_series(Path("mix"), series, None)
    message = str(caught.value)
    assert "series:  (" not in message
    unnamed = "a series without a Series Instance UID ('CT Body 3.0', 20 slice(s)); "
    assert f"series: {unnamed}" in message
    assert message.endswith("; a series without a UID can only be moved).")


@pytest.mark.parametrize("uid, slices", [(CT_UID, 20), (OTHER_UID, 16)])
def test_series_option_picks_the_named_series(mixed_folder, uid, slices):
    volume = read_volume([mixed_folder], ["CT"], series=uid)
    assert volume.shape_zyx == (slices, 16, 16)


def test_an_unknown_series_uid_is_refused_with_the_list(mixed_folder):
    with pytest.raises(UNetPlusPlusError, match=f"1.2.3 is not in .*{CT_UID}"):
        read_volume([mixed_folder], series="1.2.3")


def test_a_single_series_folder_needs_no_option(tmp_path):
    write_series(tmp_path / "one", CT_UID, 5, "Abdomen", "PATIENT^A")
    assert read_volume([tmp_path / "one"]).shape_zyx == (5, 16, 16)


def test_cli_segment_has_the_series_option(mixed_folder, tmp_path):
    args = build_parser().parse_args(
        ["segment", str(mixed_folder), "--task", "liver", "--series", CT_UID, "-o", "x.seg.nrrd"]
    )
    assert args.series == CT_UID
    from UNetPlusPlusLib.cli import main

    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(mixed_folder), "--task", "liver", "--labelmap", str(out)]) == 2
    assert not out.exists()


def test_a_segmentation_object_is_refused_naming_the_image_series_below(tmp_path):
    """A folder holding a DICOM SEG beside the sub-folder of its CT (as dcmqi's example) was
    read as the SEG's frames: "is a 4D image (for example a time series ...)" (tester 20)."""
    folder = tmp_path / "patient"
    write_series(folder, OTHER_UID, 3, "Liver segmentation", "PATIENT^A", modality="SEG")
    write_series(folder / "ct", CT_UID, 3, "Abdomen 2.0", "PATIENT^A")
    with pytest.raises(UNetPlusPlusError) as caught:
        read_volume([folder])
    message = str(caught.value)
    assert "is a DICOM Segmentation object (DICOM Modality SEG), not an image" in message
    assert f"(here: {folder / 'ct'})" in message
    assert read_volume([folder / "ct"]).grid.size_xyz == (16, 16, 3)


def test_a_segmentation_object_beside_its_ct_slices_is_left_out_with_a_warning(tmp_path):
    """A PACS export puts a DICOM SEG in the folder of its CT slices: the SEG counted as a
    second series and the folder was refused as ambiguous ("holds 2 DICOM series", fresh user
    27). The CT is read, and a warning names what was left out."""
    folder = tmp_path / "export"
    write_series(folder, CT_UID, 3, "Abdomen 2.0", "PATIENT^A")
    write_series(folder, OTHER_UID, 2, "Liver segmentation", "PATIENT^A", modality="SEG")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        volume = read_volume([folder])
    (warning,) = [str(w.message) for w in said]  # not also "unreadable" SEG files
    assert "a DICOM Segmentation object" in warning and "Liver segmentation" in warning
    assert volume.grid.size_xyz == (16, 16, 3)
    with pytest.raises(UNetPlusPlusError, match="is a DICOM Segmentation object"):
        read_volume([folder], series=OTHER_UID)  # named on purpose: refused as before


def test_a_folder_of_only_segmentation_objects_is_refused_as_holding_no_image(tmp_path):
    """A SEG and an RT structure set without their CT: refused as "holds 2 DICOM series ...
    Choose one with --series UID", advice that led to the next refusal (fresh29)."""
    folder = tmp_path / "export"
    write_series(folder, CT_UID, 2, "Liver segmentation", "PATIENT^A", modality="SEG")
    write_series(folder, OTHER_UID, 1, "Kidney contours", "PATIENT^A", modality="RTSTRUCT")
    with pytest.raises(UNetPlusPlusError, match="holds no image series") as refused:
        read_volume([folder])
    message = str(refused.value)
    assert "a DICOM Segmentation object" in message and "an RT Structure Set" in message
    assert "--series" not in message


def test_a_folder_of_image_files_without_dicom_names_them(tmp_path):
    """A folder holding a .nii.gz and notes was refused with no hint that the image inside could
    be given itself (fresh user 24)."""
    sitk.WriteImage(sitk.Image(4, 4, 4, sitk.sitkInt16), str(tmp_path / "ct.nii.gz"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(UNetPlusPlusError, match=r"No DICOM series .*it holds ct.nii.gz: give such"):
        read_volume(tmp_path)


def test_each_series_header_is_read_once_to_choose_the_series(tmp_path, monkeypatch):
    """The first file of each series was read three times to choose one (its description, its
    Modality to leave a SEG out, its Modality again to refuse a SEG chosen), then once more by
    the slice-spacing check: now once, its geometry kept for that check, which reads every
    other slice's header once. Reads counted by a real reader that counts its calls."""
    folder = tmp_path / "export"
    write_series(folder, CT_UID, 3, "Abdomen 2.0", "PATIENT^A")
    write_series(folder, OTHER_UID, 2, "Liver segmentation", "PATIENT^A", modality="SEG")
    series_files = {
        uid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), uid)
        for uid in (CT_UID, OTHER_UID)
    }
    reads: dict[str, int] = {}

    class CountingReader(sitk.ImageFileReader):
        def ReadImageInformation(self):
            name = Path(self.GetFileName()).name
            reads[name] = reads.get(name, 0) + 1
            return super().ReadImageInformation()

    monkeypatch.setattr(sitk, "ImageFileReader", CountingReader)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        volume = read_volume([folder])
    assert volume.grid.size_xyz == (16, 16, 3)
    (warning,) = [str(w.message) for w in said]
    assert "a DICOM Segmentation object" in warning and "Liver segmentation" in warning
    ct_first, *ct_other = [Path(n).name for n in series_files[CT_UID]]
    seg_first = Path(series_files[OTHER_UID][0]).name
    assert reads[seg_first] == 1, reads
    assert len(ct_other) == 2 and reads[ct_other[0]] == reads[ct_other[1]] == 1, reads
    assert reads[ct_first] == 1, reads


def test_two_image_series_and_a_seg_are_one_refusal_naming_all(tmp_path, capsys):
    """Two CT series and a DICOM SEG: "warning: Left out ... the SEG" came first, then the
    refusal "holds 2 DICOM series", the folder's content said twice. Now one error line lists
    the image series to choose from and names the SEG, and no warning precedes it."""
    from UNetPlusPlusLib.cli import main

    folder = tmp_path / "export"
    write_series(folder, CT_UID, 3, "Abdomen 2.0", "PATIENT^A")
    write_series(folder, OTHER_UID, 4, "Chest 2.0", "PATIENT^A")
    seg_uid = "1.2.826.0.1.3680043.8.498.3003"
    write_series(folder, seg_uid, 2, "Liver segmentation", "PATIENT^A", modality="SEG")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with pytest.raises(UNetPlusPlusError) as refused:
            read_volume([folder])
    assert [str(w.message) for w in said] == []
    message = str(refused.value)
    assert f"holds 2 DICOM image series: {CT_UID} ('Abdomen 2.0', 3 slice(s))" in message
    assert f"{OTHER_UID} ('Chest 2.0', 4 slice(s))" in message and "--series UID" in message
    assert f"a DICOM Segmentation object ({seg_uid} ('Liver segmentation'" in message

    out = tmp_path / "labels.nii.gz"
    assert main(["segment", str(folder), "--task", "liver", "--labelmap", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Left out" not in err, err
    assert "Liver segmentation" in err and "Chest 2.0" in err and not out.exists()


def test_series_lists_the_image_series_below_a_segmentation_object(tmp_path, capsys):
    """A folder holding a DICOM SEG beside the sub-folder of its CT: `--series` with a wrong
    UID listed only the SEG, and the CT's own UID was "not in" the folder (review cli20). The
    CT is now listed first with its sub-folder, the SEG named as not an image, and the CT's
    UID reads the CT."""
    from UNetPlusPlusLib.cli import main

    folder = tmp_path / "patient"
    write_series(folder, OTHER_UID, 3, "Liver segmentation", "PATIENT^A", modality="SEG")
    write_series(folder / "ct", CT_UID, 3, "Abdomen 2.0", "PATIENT^A")
    out = tmp_path / "labels.nii.gz"
    argv = ["segment", str(folder), "--task", "liver", "--labelmap", str(out)]
    assert main([*argv, "--series", "1.2.3"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not out.exists()
    assert f"it holds: {CT_UID} ('Abdomen 2.0', 3 slice(s)) in ct; {OTHER_UID} " in err
    assert err.rstrip().endswith("a DICOM Segmentation object, not an image.")
    assert read_volume([folder], ["CT"], series=CT_UID).grid.size_xyz == (16, 16, 3)
    with pytest.raises(UNetPlusPlusError, match=r"is a DICOM Segmentation object .*here: "):
        read_volume([folder], ["CT"], series=OTHER_UID)

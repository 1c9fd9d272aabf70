"""DICOM slices named by their UID and odd files among them (tester 15).

Scanners and TotalSegmentator's example series name slices ``CT.1.3.12.2...16573``, whose last
"extension" is the UID's digits. A truncated slice so named at the end of the series was left
out without a word (the series lost a slice and no gap showed it); such a slice is now skipped
with the warning that a ``.dcm`` slice gets. A named pipe among the slices made GDCM leave 3
of the demo series' 20 slices out, refused as "unevenly spaced slices"; it is now one error
naming the pipe.
"""

from __future__ import annotations

import locale
import os
import shutil
from pathlib import Path

import pytest
from test_volume import truncate, write_dicom_series
from UNetPlusPlusLib.engine.image_read import read_image
from UNetPlusPlusLib.errors import UNetPlusPlusError

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DEMO_DICOM = DATA / "liver" / "totalsegmentator-examples" / "example_ct_dicom"


def _series(folder: Path, count: int = 5) -> list[Path]:
    ctype = locale.setlocale(locale.LC_CTYPE)
    try:  # GDCM's writer sets LC_CTYPE to "C", which later tests would inherit
        return write_dicom_series(folder, count=count)
    finally:
        locale.setlocale(locale.LC_CTYPE, ctype)


def test_a_truncated_end_slice_named_by_its_uid_is_skipped_with_a_warning(tmp_path):
    paths = _series(tmp_path / "series")
    renamed = []
    for k, path in enumerate(paths):  # CT.<uid>: the name's "extension" is the UID's digits
        renamed.append(path.rename(path.with_name(f"CT.1.2.826.0.1.3680043.2.1125.{k + 1}")))
    truncate(renamed[-1])
    with pytest.warns(UserWarning, match=r"Skipped 1 unreadable .*1125\.5"):
        image = read_image(tmp_path / "series")
    assert image.GetSize() == (8, 8, 4)


def test_a_file_with_the_dicom_mark_but_any_name_is_reported_when_skipped(tmp_path):
    paths = _series(tmp_path / "series")
    truncate(paths[-1])
    paths[-1].rename(paths[-1].with_name("last.slice"))
    with pytest.warns(UserWarning, match=r"Skipped 1 unreadable .*last\.slice"):
        read_image(tmp_path / "series")


def test_other_files_beside_the_slices_are_not_reported(tmp_path, recwarn):
    _series(tmp_path / "series")
    (tmp_path / "series" / "annotations.xml").write_text("<LidcReadMessage/>")
    (tmp_path / "series" / "notes.txt").write_text("reader notes")
    assert read_image(tmp_path / "series").GetSize() == (8, 8, 5)
    assert not [w for w in recwarn if "Skipped" in str(w.message)]


@pytest.mark.skipif(not DEMO_DICOM.is_dir(), reason="needs ../shared/data")
def test_a_named_pipe_among_the_demo_slices_is_one_error_naming_it(tmp_path):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO_DICOM, folder)
    assert read_image(folder).GetSize() == (512, 512, 20)
    os.mkfifo(folder / "zz.dcm")
    with pytest.raises(UNetPlusPlusError, match=r"holds zz\.dcm, which is not a file but a pipe"):
        read_image(folder)


def test_a_series_folder_with_dicom_files_in_a_sub_folder_warns_naming_it(tmp_path, recwarn):
    """A series folder with another series in a sub-folder was read as its own series without
    a word about the other (tester 22); a plain series folder still reads in silence."""
    top = tmp_path / "study"
    _series(top)
    read_image(top)
    assert not [w for w in recwarn if "sub-folder" in str(w.message)]
    (top / "other").mkdir()
    for k, path in enumerate(_series(top / "other" / "series")):
        path.rename(path.with_name(f"IM{k}"))  # no extension: found by the DICM mark
    with pytest.warns(UserWarning, match=r"1 sub-folder\(s\) \(other/series\), which were not"):
        image = read_image(top)
    assert image.GetSize()[2] == 5

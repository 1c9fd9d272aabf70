"""A NIfTI-1 header whose sform and qform disagree (engine/nifti_transforms.py, polish 1): a
warning naming the difference and the transform ITK uses (checked against SimpleITK itself),
never a refusal; rounding and single-transform headers are silent."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.nifti_transforms import header_transforms, transform_warning

DISAGREE = "holds two transforms that disagree"


def _plain(tmp_path: Path) -> Path:
    """A 20 x 16 x 12 CT-like image at 1.5 x 1.5 x 3 mm, rotated 10 degrees about z, both
    codes 1 (as ITK writes it: sform = qform)."""
    array = np.full((12, 16, 20), -1000, dtype=np.int16)
    array[3:9, 4:12, 5:15] = 40
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((1.5, 1.5, 3.0))
    image.SetOrigin((10.0, -20.0, 30.0))
    angle = np.radians(10.0)
    image.SetDirection((np.cos(angle), -np.sin(angle), 0, np.sin(angle), np.cos(angle), 0, 0, 0, 1))
    path = tmp_path / "ct.nii"
    sitk.WriteImage(image, str(path))
    return path


def _edit(path: Path, name: str, sform=None, sform_code=None) -> Path:
    """A copy of ``path`` with another sform (3x4 rows) and/or sform_code."""
    data = bytearray(path.read_bytes())
    if sform is not None:
        data[280:328] = struct.pack("<12f", *np.asarray(sform, dtype=np.float64).ravel())
    if sform_code is not None:
        data[254:256] = struct.pack("<h", sform_code)
    target = path.with_name(name)
    target.write_bytes(bytes(data))
    return target


def _rows(path: Path) -> np.ndarray:
    return header_transforms(path.read_bytes()[:348]).sform[:3].copy()


def _read(path: Path) -> tuple[list[str], object]:
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        volume = read_volume([path], ["CT"])
    return [str(w.message) for w in said if DISAGREE in str(w.message)], volume


def _itk_origin(path: Path) -> np.ndarray:
    return np.asarray(sitk.ReadImage(str(path)).GetOrigin())


def _lps(rows: np.ndarray) -> np.ndarray:
    return rows[:, 3] * np.array([-1.0, -1.0, 1.0])


def test_a_consistent_header_and_rounding_are_silent(tmp_path):
    plain = _plain(tmp_path)
    assert _read(plain)[0] == []
    rows = _rows(plain)
    rows[:, 3] += 0.01  # float rounding of a conversion, well under 0.1 mm
    assert _read(_edit(plain, "rounded.nii", rows))[0] == []
    shifted = rows.copy()
    shifted[0, 3] += 40.0
    only_sform = _edit(plain, "qform0.nii", shifted)
    data = bytearray(only_sform.read_bytes())
    data[252:254] = struct.pack("<h", 0)  # qform unused: nothing to disagree with
    only_sform.write_bytes(bytes(data))
    assert _read(only_sform)[0] == []


def test_a_40_mm_shift_is_warned_naming_the_sform_itk_uses(tmp_path):
    plain = _plain(tmp_path)
    rows = _rows(plain)
    rows[0, 3] += 40.0
    path = _edit(plain, "shifted.nii", rows)
    said, volume = _read(path)
    assert len(said) == 1, said
    assert "up to 40.0 mm apart" in said[0] and "uses the sform" in said[0], said
    assert "sform_code 1" in said[0] and "broken conversion" in said[0], said
    # the transform named is the one ITK used, and the engine placed the image there
    assert np.allclose(_itk_origin(path), _lps(rows), atol=1e-3)
    assert np.allclose(volume.origin, _lps(rows), atol=1e-3)


def test_with_an_aligned_sform_itk_uses_the_qform_and_the_warning_says_so(tmp_path):
    plain = _plain(tmp_path)
    original = _rows(plain)
    rows = original.copy()
    rows[0, 3] += 40.0
    path = _edit(plain, "aligned.nii", rows, sform_code=2)
    said, volume = _read(path)
    assert len(said) == 1 and "uses the qform" in said[0] and "sform_code is 2" in said[0], said
    assert np.allclose(_itk_origin(path), _lps(original), atol=1e-3)
    assert np.allclose(volume.origin, _lps(original), atol=1e-3)


def test_swapped_axes_and_a_sheared_sform_are_warned(tmp_path):
    plain = _plain(tmp_path)
    rows = _rows(plain)
    swapped = rows.copy()
    swapped[:, [0, 1]] = rows[:, [1, 0]]
    said, _ = _read(_edit(plain, "swapped.nii", swapped))
    assert len(said) == 1 and "mirror image" in said[0], said
    sheared = rows.copy()
    sheared[:, 2] += rows[:, 0]  # z steps sideways: not orthonormal, ITK takes the qform
    said, _ = _read(_edit(plain, "sheared.nii", sheared))
    assert len(said) == 1 and "uses the qform" in said[0] and "not orthonormal" in said[0], said


def test_the_cli_prints_the_warning_once_and_segments(sphere_model, tmp_path, capsys):
    from UNetPlusPlusLib.cli import main

    plain = _plain(tmp_path)
    rows = _rows(plain)
    rows[1, 3] -= 40.0
    path = _edit(plain, "shifted.nii", rows)
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--model", str(sphere_model), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count(DISAGREE) == 1, err
    assert out.exists()


@pytest.mark.parametrize("header", [b"", b"\x00" * 348, struct.pack("<i", 540) + b"\0" * 536])
def test_other_headers_give_no_warning(header):
    assert transform_warning(header, "x.nii") is None


def _pair(tmp_path: Path, name: str, magic: bytes) -> Path:
    """``_plain`` written as a .hdr/.img pair, its sform moved 40 mm, with ``magic`` at byte
    344: b"ni1\\0" (NIfTI-1) or b"\\0\\0\\0\\0" (ANALYZE 7.5, whose reader ignores both)."""
    image = sitk.ReadImage(str(_plain(tmp_path)))
    header = tmp_path / f"{name}.hdr"
    sitk.WriteImage(image, str(header))
    data = bytearray(header.read_bytes())
    rows = np.asarray(struct.unpack("<12f", data[280:328]), dtype=np.float64).reshape(3, 4)
    rows[0, 3] += 40.0
    data[280:328] = struct.pack("<12f", *rows.ravel())
    data[344:348] = magic
    header.write_bytes(bytes(data))
    return header


def test_a_nifti_pair_is_warned_and_an_analyze_header_is_not(tmp_path):
    """ANALYZE 7.5 keeps other fields where NIfTI-1 has the transform codes (SPM's originator):
    nifticlib (ITK) reads neither transform, so no warning about them (it said 'ITK uses the
    sform' while ITK placed the image at origin 0)."""
    nifti = _pair(tmp_path, "nifti", b"ni1\0")
    said, _ = _read(nifti)
    assert len(said) == 1 and "uses the sform" in said[0], said
    analyze = _pair(tmp_path, "analyze", b"\0\0\0\0")
    assert header_transforms(analyze.read_bytes()) is None
    assert transform_warning(analyze.read_bytes(), "analyze.hdr") is None
    assert _itk_origin(analyze).tolist() == [0.0, 0.0, 0.0]  # both transforms ignored indeed


def test_a_header_with_neither_transform_is_warned(sphere_model, tmp_path, capsys):
    """Both codes 0: ITK puts the image at origin 0 with the LPS axes, whatever the scan was
    (the example CT came out mirrored front to back); before, no word about it."""
    from UNetPlusPlusLib.cli import main

    data = bytearray(_plain(tmp_path).read_bytes())
    data[252:256] = struct.pack("<hh", 0, 0)
    path = tmp_path / "nowhere.nii"
    path.write_bytes(bytes(data))
    said = transform_warning(bytes(data[:348]), "nowhere.nii")
    assert said is not None and "places the image nowhere" in said and "both 0" in said
    image = sitk.ReadImage(str(path))  # what the warning says ITK does
    assert image.GetOrigin() == (0.0, 0.0, 0.0) and image.GetDirection() == (
        1,
        0,
        0,
        0,
        1,
        0,
        0,
        0,
        1,
    )
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(path), "--model", str(sphere_model), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("places the image nowhere") == 1 and "warning: " in err, err
    assert out.exists()


def test_a_reader_warning_is_a_json_event_and_in_the_result(sphere_model, tmp_path, capsys):
    """The reader's warnings were stderr text only: with --progress-json no {"warning"} event
    and no entry in the result's warnings (nor a reply of `unetpp serve`), and the summary line
    did not count them (tester 22)."""
    import json

    from UNetPlusPlusLib.cli import main

    data = bytearray(_plain(tmp_path).read_bytes())
    data[252:256] = struct.pack("<hh", 0, 0)
    path = tmp_path / "nowhere.nii"
    path.write_bytes(bytes(data))
    out = tmp_path / "out.seg.nrrd"
    args = ["segment", str(path), "--model", str(sphere_model), "-o", str(out)]
    assert main([*args, "--progress-json"]) == 0
    printed, err = capsys.readouterr()
    events = [json.loads(line) for line in printed.splitlines()]
    said = [e["warning"] for e in events if "warning" in e]
    assert sum("places the image nowhere" in w for w in said) == 1, said
    result = [e["result"] for e in events if "result" in e][0]
    assert any("places the image nowhere" in w for w in result["warnings"]), result
    assert "places the image nowhere" not in err, err
    assert main([*args, "--overwrite"]) == 0
    printed, err = capsys.readouterr()
    assert err.count("places the image nowhere") == 1, err
    count = len(err.strip().splitlines())
    assert f"; {count} warning{'s' if count > 1 else ''} above" in printed, (printed, err)


def test_serve_says_a_reader_warning_on_every_request_on_the_kept_volume(sphere_model, tmp_path):
    """A later `unetpp serve` request on the volume it keeps reads nothing, so it was warned
    nothing about the header (tester 22)."""
    import io
    import json

    from UNetPlusPlusLib.cli import build_parser
    from UNetPlusPlusLib.cli_serve import serve

    data = bytearray(_plain(tmp_path).read_bytes())
    data[252:256] = struct.pack("<hh", 0, 0)
    path = tmp_path / "nowhere.nii"
    path.write_bytes(bytes(data))
    argv = [str(path), "--model", str(sphere_model), "--device", "cpu"]
    lines = [{"id": n, "argv": [*argv, "-o", str(tmp_path / f"{n}.seg.nrrd")]} for n in (1, 2)]
    replies = io.StringIO()
    serve(io.StringIO("".join(json.dumps(line) + "\n" for line in lines)), replies, build_parser)
    events = [json.loads(line) for line in replies.getvalue().splitlines()]
    for n in (1, 2):
        said = [e["warning"] for e in events if e.get("id") == n and "warning" in e]
        result = [e["result"] for e in events if e.get("id") == n and "result" in e][0]
        assert sum("places the image nowhere" in w for w in said) == 1, (n, said)
        assert sum("places the image nowhere" in w for w in result["warnings"]) == 1, n

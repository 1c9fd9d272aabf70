"""Output names in any letter case, folders that refuse new files, writer errors: each gives
the right file or one ``error:`` line, and never a stray temporary file (cli_outputs.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import SimpleITK as sitk
from helpers import one_error_line, write_ball_ct
from UNetPlusPlusLib import cli_outputs, cli_segment
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.errors import UNetPlusPlusError


@pytest.fixture()
def ball(tmp_path) -> Path:
    """A 300 HU ball of radius 10 mm in a 48 x 40 x 40 mm CT-like volume (2 mm voxels)."""
    return write_ball_ct(tmp_path / "in" / "ball.nii.gz")


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def test_upper_case_extensions_write_single_complete_files(ball, sphere_model, tmp_path):
    out = tmp_path / "out"
    code = main([
        "segment", str(ball), "--model", str(sphere_model), "--quiet",
        "-o", str(out / "X.MHA"), "--labelmap", str(out / "L.Mha"),
        "--probabilities", str(out / "P.Nii.Gz"), "--disagreement", str(out / "D.NII"),
    ])  # fmt: skip
    assert code == 0
    assert _files(out) == ["D.NII", "L.Mha", "P.Nii.Gz", "X.MHA"]  # no .mhd/.zraw/.unetpp-*
    reference = sitk.ReadImage(str(ball))
    for name in ("X.MHA", "L.Mha"):
        assert (out / name).read_bytes().startswith(b"ObjectType")  # one MetaImage file
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / name), imageIO="MetaImageIO"))
        assert labels.shape == sitk.GetArrayFromImage(reference).shape and labels.max() == 1
    assert (out / "P.Nii.Gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (out / "D.NII").read_bytes()[344:348] == b"n+1\x00"  # an uncompressed NIfTI-1


def test_upper_case_nifti_and_seg_nrrd(ball, sphere_model, tmp_path):
    out = tmp_path / "out"
    args = ["segment", str(ball), "--model", str(sphere_model), "--quiet"]
    assert main([*args, "-o", str(out / "X.NII.GZ"), "--labelmap", str(out / "Y.NRRD")]) == 0
    assert main([*args, "-o", str(out / "S.Seg.Nrrd")]) == 0
    assert _files(out) == ["S.Seg.Nrrd", "X.NII.GZ", "X.json", "Y.NRRD"]  # X's run record
    assert (out / "X.NII.GZ").read_bytes()[:2] == b"\x1f\x8b"
    assert b"Segment0_ID" in (out / "S.Seg.Nrrd").read_bytes()[:4000]


def test_temporary_files_keep_the_lower_case_extension():
    assert cli_outputs.temporary_suffix(Path("a/X.MHA")) == ".mha"
    assert cli_outputs.temporary_suffix(Path("X.Nii.Gz")) == ".nii.gz"
    assert cli_outputs.temporary_suffix(Path("c.t.Seg.NRRD")) == ".seg.nrrd"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and /sys are Linux")
@pytest.mark.parametrize(
    "option,path",
    [("-o", "/proc/x.seg.nrrd"), ("-o", "/sys/x.nii.gz"), ("--preview", "/proc/p.png")],
)
def test_a_folder_that_refuses_new_files_is_refused_before_any_work(
    ball, sphere_model, tmp_path, monkeypatch, capsys, option, path
):
    def refuse(args):
        raise AssertionError("work started before the checks")

    monkeypatch.setattr(cli_segment, "_load_manifest", refuse)
    extra = [] if option == "-o" else ["-o", str(tmp_path / "ok.seg.nrrd")]
    assert main(["segment", str(ball), "--model", str(sphere_model), *extra, option, path]) == 2
    line = one_error_line(capsys)
    assert option in line and path in line and "does not accept new files, because" in line
    assert line.endswith("; choose another folder.") and "(" not in line  # no errno tail
    if path.startswith("/proc"):  # the bare errno was "(No such file or directory)"
        assert "a system folder" in line
    assert not (tmp_path / "ok.seg.nrrd").exists()


def test_writer_errors_and_companion_files_leave_nothing_behind(tmp_path):
    def split_writer(path: Path) -> None:  # what ITK did for ".MHA": header + data elsewhere
        base = path.parent / path.name.split(".")[1]
        (path.parent / ("." + base.name + ".mhd")).write_text("ObjectType = Image")
        (path.parent / ("." + base.name + ".zraw")).write_bytes(b"\x00" * 8)

    with pytest.raises(UNetPlusPlusError, match="empty file"):
        with cli_outputs.OutputSet() as outputs:
            outputs.stage(str(tmp_path / "new" / "X.mha"), split_writer)
    assert _files(tmp_path) == [] and not (tmp_path / "new").exists()

    def itk_error(path: Path) -> None:
        raise RuntimeError("Exception thrown in SimpleITK ImageFileWriter_Execute:\n  Bad name")

    with pytest.raises(UNetPlusPlusError, match=r"^Cannot write .*x\.nii: Bad name\.$"):
        with cli_outputs.OutputSet() as outputs:
            outputs.stage(str(tmp_path / "x.nii"), itk_error)
    assert _files(tmp_path) == []


@pytest.mark.parametrize(
    "option,name",
    [
        ("--labelmap", "l.seg.nrrd"),
        ("--labelmap", "L.Seg.NRRD"),
        ("--probabilities", "p.seg.nrrd"),
        ("--disagreement", "d.seg.nrrd"),
    ],
)
def test_a_plain_image_under_a_segmentation_name_is_refused_before_any_work(
    ball, sphere_model, tmp_path, monkeypatch, capsys, option, name
):
    """``.nrrd`` matched ``x.seg.nrrd``: a plain labelmap was written under a name Slicer loads
    as a segmentation (no names, colours or terminology)."""

    def refuse(args):
        raise AssertionError("work started before the checks")

    monkeypatch.setattr(cli_segment, "_load_manifest", refuse)
    out = tmp_path / "out"
    args = ["segment", str(ball), "--model", str(sphere_model), "-o", str(out / "s.seg.nrrd")]
    assert main([*args, option, str(out / name)]) == 2
    line = one_error_line(capsys)
    stem = str(out / name)[: -len(".seg.nrrd")]
    assert option in line and "not a Slicer segmentation" in line, line
    assert f"{stem}.nrrd or {stem}.nii.gz" in line
    assert (f"-o {out / name}" in line) == (option == "--labelmap")
    assert not out.exists()


@pytest.mark.parametrize("name", ["v.seg.nrrd", "V.SEG.NRRD", "v.nrrd"])
def test_a_preview_under_an_image_name_is_told_to_end_with_png(tmp_path, capsys, name):
    """``--preview v.seg.nrrd`` was told to use ``v.nrrd or v.nii.gz``, which ``--preview``
    refuses too (it writes a PNG); now every such name gets the one rule (tester 20)."""
    args = ["segment", "ct.nrrd", "--task", "liver", "-o", str(tmp_path / "s.seg.nrrd")]
    assert main([*args, "--preview", str(tmp_path / name)]) == 2
    line = one_error_line(capsys)
    assert f"{tmp_path / name}': --preview must end with .png" in line, line
    assert ".nii.gz" not in line and not list(tmp_path.iterdir())


def test_a_segmentation_name_for_the_labelmap_is_refused_in_a_serve_request(tmp_path):
    import io
    import json

    from UNetPlusPlusLib.cli import build_parser
    from UNetPlusPlusLib.cli_serve import serve

    request = {"id": 1, "argv": ["ct.nrrd", "--task", "liver", "--labelmap", "x.seg.nrrd"]}
    replies = io.StringIO()
    serve(io.StringIO(json.dumps(request) + "\n"), replies, build_parser)
    reply = json.loads(replies.getvalue().splitlines()[-1])
    assert reply["status"] == 2 and "not a Slicer segmentation" in reply["error"], reply

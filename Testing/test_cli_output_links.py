"""An output path that is a symbolic link (cli_outputs.write_target): `unetpp segment` and
`unetpp serve` write through it. The file the link points to is checked (its stamp, --overwrite)
and atomically replaced, the link is kept; a dangling link, a link to a file of another type and
an output that is not a regular file are one clear error before any work, nothing written."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from helpers import write_ball_ct
from UNetPlusPlusLib.cli import build_parser, main
from UNetPlusPlusLib.cli_outputs import LINK_REPLACED_WARNING
from UNetPlusPlusLib.output_stamp import stamp_state


@pytest.fixture()
def ball(tmp_path) -> Path:
    """A 300 HU ball of radius 10 mm in a 48 x 40 x 40 mm CT-like volume (2 mm voxels)."""
    return write_ball_ct(tmp_path / "ball.nii.gz", origin=(-24.0, -20.0, -20.0))


def _serve(ball: Path, model: Path, out: Path, *extra: str) -> dict:
    """One `unetpp serve` request writing ``-o out``: its final reply."""
    from UNetPlusPlusLib.cli_serve import serve
    from UNetPlusPlusLib.warm_cache import WarmCache

    argv = [str(ball), "--model", str(model), "--threads", "1", "-o", str(out), *extra]
    replies = io.StringIO()
    serve(
        io.StringIO(json.dumps({"id": 1, "argv": argv}) + "\n"),
        replies,
        build_parser,
        cache=WarmCache(),
    )
    ends = [json.loads(line) for line in replies.getvalue().splitlines()]
    return [end for end in ends if "result" in end or "error" in end][0]


def _run(how: str, ball, model, out, capsys, *extra) -> tuple[int, str, list[str]]:
    """(exit status, the error or "", the warnings) of a segment or serve run writing ``out``."""
    if how == "segment":
        code = main(
            ["segment", str(ball), "--model", str(model), "--threads", "1", "--quiet"]
            + ["-o", str(out), *extra]
        )
        err = capsys.readouterr().err.strip().splitlines()
        errors = [line for line in err if line.startswith("error: ")]
        warnings = [line[len("warning: ") :] for line in err if line.startswith("warning: ")]
        return code, errors[0] if errors else "", warnings
    reply = _serve(ball, model, out, *extra)
    if "error" in reply:
        return reply["status"], reply["error"], []
    return 0, "", reply["result"]["warnings"]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _link(tmp_path: Path, name: str = "real.seg.nrrd") -> tuple[Path, Path]:
    """``b/latest.seg.nrrd -> ../a/<name>`` (relative, another folder): (link, target)."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    link = tmp_path / "b" / "latest.seg.nrrd"
    os.symlink(os.path.join("..", "a", name), link)
    return link, tmp_path / "a" / name


@pytest.mark.parametrize("how", ["segment", "serve"])
def test_a_link_to_our_output_is_written_through_and_kept(
    ball, sphere_model, tmp_path, capsys, how
):
    """The link was replaced by a regular file and the earlier output it points to left stale."""
    link, target = _link(tmp_path)
    assert _run(how, ball, sphere_model, target, capsys)[0] == 0
    before = target.stat().st_ino
    code, error, warnings = _run(how, ball, sphere_model, link, capsys)
    assert code == 0 and not error and not warnings, (error, warnings)
    assert link.is_symlink() and os.readlink(link) == os.path.join("..", "a", "real.seg.nrrd")
    assert target.stat().st_ino != before  # the target was replaced (a rename onto it)
    assert stamp_state(target) == "valid"
    assert _files(tmp_path / "a") == ["real.seg.nrrd"] and _files(tmp_path / "b") == [link.name]


@pytest.mark.parametrize("how", ["segment", "serve"])
def test_an_edited_target_is_kept_and_overwrite_names_it(ball, sphere_model, tmp_path, capsys, how):
    """The stamp protection applies to the file the link points to, and the --overwrite warning
    says truly what is lost: the target's content (it said the link's 'file', which survived)."""
    link, target = _link(tmp_path)
    assert _run(how, ball, sphere_model, target, capsys)[0] == 0
    target.write_bytes(b"NRRD0004\n# the user's corrections\n\n")
    edited = target.read_bytes()
    code, error, _ = _run(how, ball, sphere_model, link, capsys)
    assert code == 2 and f"(a link to {target}) already exists" in error, error
    assert "--overwrite" in error
    assert target.read_bytes() == edited and link.is_symlink()

    code, error, warnings = _run(how, ball, sphere_model, link, capsys, "--overwrite")
    assert code == 0 and not error, error
    notice = LINK_REPLACED_WARNING.format(option="-o", output=str(link), target=target)
    assert notice in warnings, warnings
    assert link.is_symlink() and stamp_state(target) == "valid"
    assert _files(tmp_path / "a") == ["real.seg.nrrd"] and _files(tmp_path / "b") == [link.name]


@pytest.mark.parametrize("how", ["segment", "serve"])
def test_a_dangling_link_is_one_clear_error_and_nothing_is_written(
    ball, sphere_model, tmp_path, capsys, how
):
    link, target = _link(tmp_path)
    code, error, _ = _run(how, ball, sphere_model, link, capsys)
    assert code == 2 and "symbolic link" in error and "does not exist" in error, error
    assert str(target) in error and "Errno" not in error
    assert link.is_symlink() and not target.exists()
    assert _files(tmp_path / "a") == [] and _files(tmp_path / "b") == [link.name]


def test_a_link_to_a_file_of_another_type_is_refused(ball, sphere_model, tmp_path, capsys, no_work):
    """-o latest.seg.nrrd -> real.nii.gz would put a .seg.nrrd under a NIfTI name."""
    link, target = _link(tmp_path, "real.nii.gz")
    target.write_bytes(b"not a NIfTI file")
    code, error, _ = _run("segment", ball, sphere_model, link, capsys)
    assert code == 2 and "another type" in error, error
    assert target.read_bytes() == b"not a NIfTI file" and link.is_symlink()


def test_an_output_that_is_not_a_regular_file_is_refused(
    ball, sphere_model, tmp_path, capsys, no_work
):
    """A pipe (or a device such as /dev/null, directly or through a link) would have been
    replaced by the final rename; it is refused before any work."""
    fifo = tmp_path / "pipe.seg.nrrd"
    os.mkfifo(fifo)
    link = tmp_path / "link.seg.nrrd"
    os.symlink(fifo.name, link)
    for out in (fifo, link):
        code, error, _ = _run("segment", ball, sphere_model, out, capsys)
        assert code == 2 and "not a regular file" in error, error
    assert _files(tmp_path) == ["ball.nii.gz", "link.seg.nrrd", "pipe.seg.nrrd"]


@pytest.mark.parametrize("how", ["segment", "serve"])
@pytest.mark.parametrize("below", ["x.seg.nrrd", "new/deeper/x.seg.nrrd"])
def test_an_output_folder_that_is_a_dangling_link_is_refused_before_any_work(
    ball, sphere_model, tmp_path, capsys, no_work, how, below
):
    """Tester 15: `-o results/x.seg.nrrd` with `results -> missing` passed the checks (the
    nearest existing folder was the link's), the whole run worked, and then creating the
    folder failed with "the system reports: file exists"; now one error naming the link."""
    os.symlink("missing", tmp_path / "results")
    code, error, _ = _run(how, ball, sphere_model, tmp_path / "results" / below, capsys)
    assert code == 2 and error, error
    assert f"the folder {tmp_path / 'results'} is a symbolic link to missing" in error, error
    assert "does not exist" in error and "file exists" not in error
    assert _files(tmp_path) == ["ball.nii.gz", "results"]

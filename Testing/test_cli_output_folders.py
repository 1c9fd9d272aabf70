"""Output folders and failed writes of `unetpp segment`: a folder given as a file is one
message, a missing folder is created with one warning (and removed again on failure), and a
write that the disk (or ``ulimit -f``) cuts short is one error of ours, with no truncated file
and no line of ITK's (output_folders.py, write_failures.py, written_check.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from helpers import one_error_line, write_ball_ct
from UNetPlusPlusLib import cli_outputs
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.volume import LabelVolume, write_labelmap
from UNetPlusPlusLib.errors import UNetPlusPlusError

resource = pytest.importorskip("resource")  # RLIMIT_FSIZE: POSIX

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def ball(tmp_path) -> Path:
    return write_ball_ct(tmp_path / "in" / "ball.nii.gz")


@pytest.mark.parametrize(
    "option,given,made,example",
    [
        ("-o", "missing/", None, "missing/ball.seg.nrrd"),
        ("-o", "made/", "made", "made/ball.seg.nrrd"),
        ("-o", "made.seg.nrrd", "made.seg.nrrd", "made.seg.nrrd/ball.seg.nrrd"),
        ("--labelmap", "made", "made", "made/ball_labels.nii.gz"),
    ],
)
def test_a_folder_given_as_an_output_file_gets_one_message_naming_a_file(
    ball, sphere_model, tmp_path, no_work, capsys, monkeypatch, option, given, made, example
):
    """``-o folder/`` (refused while parsing) and ``-o folder.seg.nrrd`` (an existing folder,
    refused by the output check) had two wordings, neither naming a file to give."""
    monkeypatch.chdir(tmp_path)
    if made:
        Path(made).mkdir()
    extra = [] if option == "-o" else ["-o", "ok.seg.nrrd"]
    assert main(["segment", str(ball), "--model", str(sphere_model), *extra, option, given]) == 2
    line = one_error_line(capsys)
    assert line == (
        f"error: {option} {given} names a folder, not a file; give a file name in it, for "
        f"example {option} {example}."
    )
    assert sorted(os.listdir(tmp_path)) == sorted({"in", *([made] if made else [])})


def test_a_missing_folder_is_named_in_one_warning_before_the_model_runs(
    ball, sphere_model, tmp_path, capsys
):
    """The run creates ``typo/sub`` and ``typo`` for two outputs and says so once (it said
    nothing: a typo in a folder name left the result where nobody looks)."""
    out = tmp_path / "typo" / "sub"
    args = ["segment", str(ball), "--model", str(sphere_model), "--quiet"]
    args += ["-o", str(out / "x.seg.nrrd"), "--labelmap", str(tmp_path / "typo" / "l.nii.gz")]
    assert main(args) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"warning: -o {out / 'x.seg.nrrd'}, --labelmap {tmp_path / 'typo' / 'l.nii.gz'}: the "
        f"folder {tmp_path / 'typo'} does not exist, so it is created for these outputs; check "
        "the path if you expected that folder to exist."
    ]
    assert (out / "x.seg.nrrd").is_file() and (tmp_path / "typo" / "l.nii.gz").is_file()


def test_a_refused_or_cancelled_run_creates_no_folder_and_warns_of_none(
    ball, sphere_model, tmp_path, capsys
):
    """Refused for its input, the run says only why (the warning came first, about a folder
    it then did not create); cancelled, it leaves no folder either."""
    out = ["-o", str(tmp_path / "new" / "x.seg.nrrd")]
    assert (
        main(["segment", str(tmp_path / "missing.nii.gz"), "--model", str(sphere_model), *out]) == 2
    )
    assert one_error_line(capsys).startswith("error: Image not found")
    cancel = tmp_path / "cancel"
    cancel.touch()
    args = ["segment", str(ball), "--model", str(sphere_model), "--cancel-file", str(cancel)]
    assert main([*args, *out]) == 3
    assert one_error_line(capsys)
    assert sorted(os.listdir(tmp_path)) == ["cancel", "in"]


def test_a_failed_rename_removes_the_new_files_and_folders_before_it(tmp_path):
    """A rename that fails after another succeeded left that output (and so its new folder)."""
    new = tmp_path / "new"
    with pytest.raises(UNetPlusPlusError, match="Cannot write"):
        with cli_outputs.OutputSet() as outputs:
            outputs.stage(str(new / "a.txt"), lambda p: p.write_bytes(b"a"))
            outputs.stage(str(new / "b.txt"), lambda p: p.write_bytes(b"b"))
            (new / "b.txt").mkdir()  # in the way of the second rename
            (new / "b.txt" / "keep").touch()
            outputs.commit()
    assert sorted(p.name for p in new.rglob("*")) == ["b.txt", "keep"]


def _labels(shape=(20, 20, 24)) -> LabelVolume:
    mask = (np.random.default_rng(0).random(shape) < 0.5).astype(np.uint8)
    return LabelVolume(mask, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), [])


@pytest.mark.parametrize("name", ["l.nii", "l.nii.gz", "l.nrrd"])
def test_a_write_cut_short_is_one_error_and_leaves_nothing(tmp_path, capfd, name):
    """Under ``ulimit -f`` (RLIMIT_FSIZE: the kernel stops the write as a full disk does, with
    EFBIG instead of ENOSPC), ITK's NIfTI writer printed "** ERROR: NWAD: wrote only 648 of
    9600 bytes" and returned, and its .nii.gz and NRRD writers returned without a word: the
    truncated file was stamped and renamed into place as a valid output."""
    target = tmp_path / "out" / name
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    capfd.readouterr()
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))
    try:
        with pytest.raises(UNetPlusPlusError) as raised:
            with cli_outputs.OutputSet() as outputs:
                outputs.stage(str(target), lambda p: write_labelmap(_labels(), p))
                outputs.commit()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(raised.value).startswith(f"Cannot write {target}: ")
    assert "NWAD" in str(raised.value) or "incomplete" in str(raised.value)
    assert capfd.readouterr().err == ""  # nothing of ITK's on file descriptor 2
    assert os.listdir(tmp_path) == []  # no file, no temporary, no new folder


def test_the_writers_own_text_passes_on_when_the_write_succeeds(tmp_path, capfd):
    def chatty(path: Path) -> None:
        os.write(2, b"WARNING: In writer.cxx, line 1: a note\n")
        write_labelmap(_labels((4, 4, 4)), path)

    with cli_outputs.OutputSet() as outputs:
        outputs.stage(str(tmp_path / "l.nii"), chatty)
        outputs.commit()
    assert capfd.readouterr().err == "WARNING: In writer.cxx, line 1: a note\n"
    assert (tmp_path / "l.nii").is_file()


_FULL_DISK = """
import os, subprocess, sys
folder = sys.argv[1]
subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", folder], check=True)
with open(os.path.join(folder, "filler"), "wb") as filler:  # leave 4 kB of the 16
    filler.write(bytes(12 * 1024))
import numpy as np
from UNetPlusPlusLib import cli_outputs
from UNetPlusPlusLib.engine.volume import LabelVolume, write_labelmap
from UNetPlusPlusLib.errors import UNetPlusPlusError
labels = LabelVolume(np.ones((20, 20, 24), np.uint8), (1.0,) * 3, (0.0,) * 3, np.eye(3), [])
try:
    with cli_outputs.OutputSet() as outputs:
        outputs.stage(os.path.join(folder, "new", "l.nii"), lambda p: write_labelmap(labels, p))
        outputs.commit()
except UNetPlusPlusError as error:
    print(error)
print(sorted(os.listdir(folder)))
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare (util-linux)")
def test_a_full_disk_is_one_error_on_a_real_tmpfs(tmp_path):
    """A real full disk: a 16 kB tmpfs mounted in a private user and mount namespace (no root
    needed where unprivileged user namespaces are allowed; skipped where they are not)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "UNetPlusPlus")}
    command = ["unshare", "-rm", sys.executable, "-c", textwrap.dedent(_FULL_DISK), str(folder)]
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
    if "mount" in run.stderr and run.returncode:  # no user namespaces or tmpfs mounts here
        pytest.skip(f"cannot mount a tmpfs here: {run.stderr.strip()[-200:]}")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    written = folder / "new" / "l.nii"
    assert lines[0].startswith(f"Cannot write {written}: the disk is full ("), lines
    assert lines[0].endswith("nothing was written. Free some space or choose another folder.")
    assert lines[1] == "['filler']"  # no truncated file, no temporary, no new folder
    assert "NWAD" not in run.stderr and "ERROR" not in run.stderr, run.stderr

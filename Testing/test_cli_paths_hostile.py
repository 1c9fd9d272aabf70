"""`unetpp segment` and `unetpp train` against hostile paths and counts (tester 10): symbolic-link
loops as input or output, a thread count far beyond the machine's CPUs, and an output file that
already exists (a segmentation the user may have corrected there)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from helpers import write_ball_ct
from UNetPlusPlusLib.cli import main


@pytest.fixture()
def ball(tmp_path) -> Path:
    """A 300 HU ball of radius 10 mm in a 48 x 40 x 40 mm CT-like volume (2 mm voxels)."""
    return write_ball_ct(tmp_path / "ball.nii.gz", origin=(-24.0, -20.0, -20.0))


def _loop(folder: Path, name: str) -> Path:
    """``name`` -> ``name.other`` -> ``name``: resolving it raises in pathlib."""
    first, second = folder / name, folder / (name + ".other")
    os.symlink(second.name, first)
    os.symlink(first.name, second)
    return first


def _error_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize("where", ["input", "output", "output folder"])
def test_a_symlink_loop_is_one_clear_error_before_any_work(
    ball, sphere_model, tmp_path, no_work, capsys, where
):
    """A link loop given as the input, the output or the output's folder was 'internal error
    (RuntimeError: Symlink loop from ...); please report it', exit 1."""
    loop = _loop(tmp_path, "loop.nii.gz")
    image, out = str(ball), str(tmp_path / "x.seg.nrrd")
    if where == "input":
        image = str(loop)
    elif where == "output":
        out = str(loop)
    else:
        out = str(_loop(tmp_path, "folder") / "x.seg.nrrd")
    code = main(["segment", image, "--model", str(sphere_model), "-o", out])
    err = _error_lines(capsys)
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "link loop" in err[0] and "internal error" not in err[0], err
    assert "Symlink loop from" not in err[0] and "Errno" not in err[0]  # one sentence, no tail
    assert not (tmp_path / "x.seg.nrrd").exists()


@pytest.mark.parametrize("command", ["segment", "train"])
def test_far_more_threads_than_cpus_is_refused_when_parsed(
    ball, sphere_model, tmp_path, no_work, capsys, command
):
    """--threads 100000 ended segment with a segmentation fault in OpenMP (exit 139, no
    message); --threads 99999999999999999999 with an internal error (overflow)."""
    most = max(8, 4 * (os.cpu_count() or 1))  # a script's --threads 2 runs on 1 CPU
    for threads in (str(most + 1), "100000", "99999999999999999999"):
        if command == "segment":
            argv = ["segment", str(ball), "--model", str(sphere_model)]
            argv += ["-o", str(tmp_path / "x.seg.nrrd")]
        else:
            argv = ["train", str(tmp_path), "-o", str(tmp_path / "model"), "--plan-only"]
        code = main([*argv, "--threads", threads])
        err = _error_lines(capsys)
        assert code == 2, err
        assert len(err) == 1 and "--threads" in err[0] and f"at most {most}" in err[0], err
    assert not (tmp_path / "x.seg.nrrd").exists() and not (tmp_path / "model").exists()


def test_replacing_our_own_unchanged_output_is_silent(ball, sphere_model, tmp_path, capsys):
    """A second run onto its own unchanged .seg.nrrd replaces it without a word; a file that
    is not an unchanged output of ours (corrected in Slicer) is refused unless --overwrite:
    Testing/test_cli_keep_edits.py."""
    out, labels = tmp_path / "x.seg.nrrd", tmp_path / "x.nii.gz"
    argv = ["segment", str(ball), "--model", str(sphere_model), "--threads", "1", "--quiet"]
    argv += ["-o", str(out)]
    assert main(argv) == 0
    assert "already exists" not in capsys.readouterr().err
    assert main([*argv, "--labelmap", str(labels)]) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize("inside", [False, True])
def test_train_into_a_symlink_loop_is_refused_before_the_data_is_read(
    tmp_path, capsys, monkeypatch, inside
):
    """unetpp train -o LOOP (or LOOP/sub) read and fingerprinted the whole dataset, then ended
    with 'internal error (OSError: [Errno 40] Too many levels of symbolic links: LOOP/cache)'."""
    from UNetPlusPlusLib.training import cli as train_cli

    def refuse(*args, **kwargs):
        raise AssertionError("the dataset was read before the output was checked")

    monkeypatch.setattr(train_cli, "build_dataset", refuse)
    loop = _loop(tmp_path, "model")
    out = loop / "sub" if inside else loop
    code = main(["train", str(tmp_path), "-o", str(out), "--labels", "liver", "--plan-only"])
    err = _error_lines(capsys)
    assert code == 2, err
    assert len(err) == 1 and "link loop" in err[0] and "internal error" not in err[0], err


def test_a_task_given_to_model_names_task(ball, tmp_path, capsys):
    # tester 11: `--model liver` said only "Model manifest liver does not exist."
    out = tmp_path / "x.seg.nrrd"
    code = main(["segment", str(ball), "--model", "liver", "-o", str(out)])
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1, err
    assert "--task liver" in err[0] and "No model package at 'liver'" in err[0], err
    assert not out.exists()


@pytest.mark.parametrize(
    "given",
    ["/tmp/\x00m.json", "/tmp/a\nb\x1b[31m.json", "models/liver", "liver.json", "my model"],
)
def test_a_missing_model_path_is_not_offered_as_a_task(ball, tmp_path, capsys, given):
    # polish: `--model /tmp/\x00m.json` suggested "--task /tmp/ m.json", echoing the path (and
    # its control characters) as if it were a task name
    out = tmp_path / "x.seg.nrrd"
    code = main(["segment", str(ball), "--model", given, "-o", str(out)])
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1, err
    assert "--task NAME" in err[0] and f"--task {given}" not in err[0], err
    assert repr(given) in err[0], err  # control characters escaped, as repr() writes them
    assert "\x1b" not in err[0] and "\x00" not in err[0], err
    assert not out.exists()


@pytest.mark.parametrize("given", ["lung-nodule", "my_model-2"])
def test_a_task_like_model_name_suggests_that_task(ball, tmp_path, capsys, given):
    code = main(["segment", str(ball), "--model", given, "-o", str(tmp_path / "x.seg.nrrd")])
    err = _error_lines(capsys)
    assert code == 2 and len(err) == 1 and f"--task {given} " in err[0], err


@pytest.mark.parametrize(
    "cpus, words",
    [
        (2, "give at most 8 (this machine has 2 logical CPU(s); 8 threads are allowed on any"),
        (4, "give at most 16 (four times this machine's 4 logical CPUs;"),
    ],
)
def test_the_thread_limit_says_where_its_number_comes_from(monkeypatch, cpus, words):
    """'this machine has 2 logical CPU(s); give at most 8': the numbers did not agree
    (tester 20)."""
    import argparse

    from UNetPlusPlusLib.cli_args import thread_count

    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(words)):
        thread_count("100000")
    assert thread_count(str(max(8, 4 * cpus))) == max(8, 4 * cpus)

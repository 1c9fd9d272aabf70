"""SIGTERM (``kill``, ``timeout``, a batch scheduler) and SIGHUP stop `unetpp` as Ctrl-C does:
one ``error:`` line, exit status 3, and no output, temporary file or new folder left behind
(cli.stop_like_ctrl_c_on_termination, cli_outputs.OutputSet)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from helpers import write_ball_ct
from UNetPlusPlusLib.exit_codes import EXIT_CANCELLED

# Runs `unetpp segment` as the program does (cli.main() with argv None) and sends the signal
# named in argv[1] to itself right after the first output was staged: the moment when a
# default-action SIGTERM left the hidden temporary file and the new folder behind.
SIGNAL_WHILE_WRITING = """
import os, signal, sys
from UNetPlusPlusLib import cli, cli_outputs
number = getattr(signal, sys.argv[1])
signal.signal(number, signal.SIG_DFL)  # as from a terminal, also when run under nohup
stage = cli_outputs.OutputSet.stage
def stage_then_signal(self, target, write):
    stage(self, target, write)
    os.kill(os.getpid(), number)
cli_outputs.OutputSet.stage = stage_then_signal
sys.argv = ["unetpp", *sys.argv[2:]]
sys.exit(cli.main())
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_a_termination_signal_while_writing_leaves_nothing(tmp_path, sphere_model, name):
    ball = write_ball_ct(tmp_path / "ball.nii.gz")
    out = tmp_path / "out" / "new"
    argv = ["segment", str(ball), "--model", str(sphere_model), "--quiet", "--threads", "1"]
    argv += ["-o", str(out / "x.seg.nrrd"), "--labelmap", str(out / "x.nii.gz")]
    run = subprocess.run(
        [sys.executable, "-c", SIGNAL_WHILE_WRITING, name, *argv],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == EXIT_CANCELLED, (run.returncode, run.stderr)
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: Stopped by {name}; nothing was written."
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ball.nii.gz"]


def test_an_ignored_signal_stays_ignored():
    from UNetPlusPlusLib import cli

    before = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what `nohup` does
        cli.stop_like_ctrl_c_on_termination()
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, before)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# Runs `unetpp train` as the program does and sends SIGTERM to itself right after the first
# checkpoint was saved: the run stops, keeps the checkpoint for --resume and says so.
SIGTERM_AFTER_CHECKPOINT = """
import os, signal, sys
from UNetPlusPlusLib import cli
from UNetPlusPlusLib.training import trainer
save = trainer.save_checkpoint
def save_then_signal(*args, **kwargs):
    save(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGTERM)
trainer.save_checkpoint = save_then_signal
sys.argv = ["unetpp", *sys.argv[1:]]
sys.exit(cli.main())
"""


def test_a_stopped_training_that_keeps_its_checkpoint_does_not_say_nothing_was_written(
    tmp_path,
):
    """SIGTERM after the first checkpoint: stderr said "warning: training failed; .../checkpoint
    is kept" and then "error: Stopped by SIGTERM; nothing was written." (tester 9)."""
    from test_training_dataset import write_slicer_case

    data = tmp_path / "data"
    data.mkdir()
    for i in range(2):
        write_slicer_case(data, f"case{i}", seed=i)
    out = tmp_path / "new" / "model"
    argv = ["train", str(data), "-o", str(out), "--tile", "32", "32", "32", "--features"]
    argv += ["4", "8", "16", "32", "64", "4", "--batch-size", "1", "--no-progress"]
    argv += ["--threads", "1", "--no-augment", "--epochs", "2", "--iterations-per-epoch", "1"]
    run = subprocess.run(
        [sys.executable, "-c", SIGTERM_AFTER_CHECKPOINT, *argv],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == EXIT_CANCELLED, (run.returncode, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert lines[-1] == "error: Stopped by SIGTERM.", run.stderr
    assert lines[-2].startswith("warning: training stopped; ") and "--resume" in lines[-2]
    assert (out / "checkpoint").is_dir() and "nothing was written" not in run.stderr

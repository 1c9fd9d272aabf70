"""SIGTERM (``kill``, ``timeout``, a batch scheduler) and SIGHUP stop `unetpp` as Ctrl-C does:
one ``error:`` line, exit status 3, and no output, temporary file or new folder left behind
(cli.stop_like_ctrl_c_on_termination, cli_outputs.OutputSet)."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.exit_codes import EXIT_CANCELLED

# Runs `unetpp segment` as the program does (cli.main() with argv None) and sends the signal
# named in argv[1] to itself right after the first output was staged: the moment when a
# default-action SIGTERM left the hidden temporary file and the new folder behind.
SIGNAL_WHILE_WRITING = """
import os, signal, sys
from UNetPlusPlusLib import cli, cli_outputs
number = getattr(signal, sys.argv[1])
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
    ball = tmp_path / "ball.nii.gz"
    image = make_sphere_image((24, 20, 20), spacing=(2.0, 2.0, 2.0), radius_mm=10, noise=5)
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(ball))
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

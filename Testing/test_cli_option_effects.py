"""`unetpp segment` options that would change nothing for the inputs given are refused in one
line before any work, nothing written (cli_option_effects.py): ``--lps`` without ``--point``
or ``--roi``, ``--no-channel-check`` for a model without the sequence-order check. The Slicer
job passes ``--no-channel-check`` only to a model that has the check."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest
from helpers import one_error_line, write_ball_ct
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.cli_args import ArgumentError
from UNetPlusPlusLib.cli_option_effects import refuse_idle_model_options
from UNetPlusPlusLib.engine.registry import find_model


@pytest.fixture()
def ball(tmp_path, monkeypatch):
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    return write_ball_ct(tmp_path / "ball.nii.gz")


def test_lps_without_a_point_or_roi_is_refused(ball, tmp_path, capsys):
    out = tmp_path / "out.seg.nrrd"
    assert main(["segment", str(ball), "--task", "liver", "--lps", "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: argument --lps:") and "neither is given" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ball.nii.gz"]


def test_no_channel_check_on_a_ct_model_is_refused_naming_the_model(ball, tmp_path, capsys):
    out = tmp_path / "out.seg.nrrd"
    argv = ["segment", str(ball), "--task", "liver", "--no-channel-check", "-o", str(out)]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: argument --no-channel-check: model 'liver-ct' (CT)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ball.nii.gz"]


def test_no_channel_check_is_taken_by_a_model_with_the_order_check():
    """The shipped brain-tumour model (FLAIR, T1, T1ce, T2, with a channel fingerprint) takes
    it; the nodule model (one CT channel) does not."""
    args = argparse.Namespace(channel_check=False)
    refuse_idle_model_options(args, find_model("brain-tumor"))
    with pytest.raises(ArgumentError, match="lung-nodule"):
        refuse_idle_model_options(args, find_model("lung-nodule"))
    refuse_idle_model_options(argparse.Namespace(channel_check=True), find_model("lung-nodule"))


@pytest.mark.parametrize("task, expected", [("liver", False), ("brain-tumor", True)])
def test_the_slicer_job_passes_the_bypass_only_to_a_model_with_the_check(task, expected):
    """The panel's unchecked 'Check sequence order' box sets channel_check False for every
    model; the job's command carries --no-channel-check only where the CLI takes it."""
    from UNetPlusPlusLib.adapter.job import SegmentationJob
    from UNetPlusPlusLib.engine.volume import Volume

    manifest = find_model(task)
    channels = len(manifest.channels)
    volume = Volume(
        np.zeros((channels, 8, 8, 8), np.float32),
        spacing=(1.0, 1.0, 1.0),
        origin=(0.0, 0.0, 0.0),
        direction=tuple(np.eye(3).ravel()),
    )
    job = SegmentationJob(volume=volume, manifest=manifest, channel_check=False)
    job.python = sys.executable
    job.start()
    try:
        assert ("--no-channel-check" in job.command) is expected, job.command
    finally:
        job.close()

"""An engine error of several lines is logged once, whole (adapter/job_events.py ErrorsOnce),
by the segmentation and the training jobs alike.

The one-shot CLI says its error twice: whole in its JSON (``{"error": ...}``) and on stderr for
a terminal (``error: <first line>`` then the other lines). Before, the stderr copy was logged as
it came: the first line once more as an error, and the other lines again as log lines.

The child is the real CLI (``UNetPlusPlusLib.cli.main``) run through a stand-in interpreter
whose command handler fails with a two-line message, as a SimpleITK error reads; nothing else
runs (cheap).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from UNetPlusPlusLib.adapter.job import SegmentationJob
from UNetPlusPlusLib.adapter.training_job import TrainingJob
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.volume import Volume

FIRST = "Exception thrown in SimpleITK ImageFileReader_Execute: itkImageFileReader.hxx:135:"
SECOND = "ITK ERROR: ImageFileReader(0x55d5): could not create IO object for reading file"

FAILING_CLI = f"""#!{sys.executable}
import sys
from UNetPlusPlusLib import cli, cli_args

def fail(args, progress):
    raise RuntimeError({FIRST + chr(10) + SECOND!r})

parse = cli_args.Parser.parse_args
def parse_args(self, *a, **k):  # the real options, the failing handler
    args = parse(self, *a, **k)
    if getattr(args, "handler", None) is not None:
        args.handler = fail
    return args

cli_args.Parser.parse_args = parse_args
sys.exit(cli.main(sys.argv[3:]))  # after "-m UNetPlusPlusLib.cli"
"""


@pytest.fixture
def failing_python(tmp_path) -> str:
    path = tmp_path / "python-failing"
    path.write_text(FAILING_CLI, encoding="utf-8")
    path.chmod(0o755)
    return str(path)


def assert_said_once(events, error: str) -> None:
    logged = [e.message for e in events if e.kind == "log"]
    assert error.startswith("internal error (RuntimeError: " + FIRST) and SECOND in error
    assert [m for m in logged if FIRST in m or SECOND in m] == [f"error: {error}"], logged
    assert events[-1].message == error


def test_a_segmentation_error_of_two_lines_is_logged_once(failing_python, sphere_model):
    volume = Volume(np.zeros((1, 4, 4, 4), np.float32), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3))
    job = SegmentationJob(volume, ModelManifest.load(sphere_model), python=failing_python)
    events = job.start().wait(timeout=120)
    assert job.state == "failed"
    assert_said_once(events, job.error)


def test_a_training_error_of_two_lines_is_logged_once(failing_python, tmp_path):
    job = TrainingJob(tmp_path, labels=["liver"], plan_only=True, python=failing_python)
    events = job.start().wait(timeout=120)
    assert job.state == "failed"
    assert_said_once(events, job.error)

"""An unknown option is named, on the command line and in `unetpp serve` requests, even when a
required argument (INPUT, --task/--model) is missing too: argparse reported only the missing
argument, which hid the typo."""

from __future__ import annotations

import io
import json

import pytest
from UNetPlusPlusLib.cli import build_parser, main
from UNetPlusPlusLib.cli_serve import serve


def served(*requests: dict) -> dict:
    """The end replies of ``unetpp serve`` (in this process) to ``requests``, by id."""
    replies = io.StringIO()
    serve(io.StringIO("".join(json.dumps(r) + "\n" for r in requests)), replies, build_parser)
    lines = [json.loads(line) for line in replies.getvalue().splitlines()]
    return {r["id"]: r for r in lines if "error" in r or "result" in r}


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus-option"],
        ["--bogus-option", "--task", "liver"],
        ["--task", "liver", "--bogus-option"],
        ["--bogus-option=3", "--model", "m.json"],
        ["ct.nrrd", "--bogus-option"],  # INPUT given, --task/--model missing
    ],
)
def test_a_serve_request_with_an_unknown_option_names_it(argv):
    reply = served({"id": 4, "argv": argv})[4]
    assert reply["status"] == 2
    assert reply["error"].startswith("unrecognized arguments: --bogus-option"), reply["error"]


def test_the_command_line_names_the_unknown_option(capsys):
    assert main(["segment", "--bogus-option"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unrecognized arguments: --bogus-option"), error
    assert "INPUT" not in error


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--task", "liver"], "the following arguments are required: INPUT"),
        (["ct.nrrd"], "one of the arguments --task --model is required"),
        # negative numbers, abbreviations and a short option's attached value are no typos
        (["--point", "-1", "-2.5", "-3", "--tas", "liver", "-ox.seg.nrrd"], "required: INPUT"),
    ],
)
def test_missing_arguments_without_unknown_options_are_still_named(argv, expected):
    reply = served({"id": 1, "argv": argv})[1]
    assert reply["status"] == 2 and expected in reply["error"], reply["error"]
    assert "unrecognized" not in reply["error"]


def test_an_unknown_option_before_the_sub_command_is_named(capsys):
    assert main(["--bogus"]) == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err

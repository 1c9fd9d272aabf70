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


@pytest.mark.parametrize(
    "argv, command",
    [
        (["segment", "--bogus-option"], "unetpp segment"),
        (
            ["segment", "CT", "--task", "liver", "-o", "x.nii.gz", "--bogus-option"],
            "unetpp segment",
        ),
        (["models", "list", "--bogus"], "unetpp models list"),
        (["models", "info", "liver", "--bogus"], "unetpp models info"),
        (["devices", "--bogus"], "unetpp devices"),
        (["serve", "--bogus"], "unetpp serve"),
        (["train", "data", "-o", "out", "--bogus"], "unetpp train"),
        (["--bogus"], "unetpp"),
    ],
)
def test_an_unknown_option_points_to_its_sub_commands_help(capsys, argv, command):
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: unrecognized arguments: --bogus"), error
    assert error.rstrip().endswith(f"(see `{command} --help`)"), error


def test_a_serve_request_with_an_unknown_option_points_to_segments_help():
    reply = served({"id": 2, "argv": ["CT", "--task", "liver", "--bogus-option"]})[2]
    assert reply["status"] == 2 and reply["error"].endswith("(see `unetpp segment --help`)")
    assert "unrecognized arguments: --bogus-option" in reply["error"]


@pytest.mark.parametrize("token", ["", " ", "\t\n"])  # a blank one was accepted
def test_a_serve_request_with_an_empty_or_blank_input_token_is_a_bad_request(token):
    reply = served({"id": 3, "argv": ["ct.nrrd", "--task", "liver"], "input_token": token})[3]
    assert reply["status"] == 2 and reply["error"] == "bad request: input_token is empty or blank"
    assert reply["held_input"] is None


def test_every_final_serve_reply_has_the_same_keys_also_for_a_line_that_is_not_json():
    """A non-JSON line's reply had no held_input."""
    replies = io.StringIO()
    requests = 'this is not json\n{"id": 4, "argv": "not a list"}\n["a", "list"]\n'
    serve(io.StringIO(requests), replies, build_parser)
    lines = [json.loads(line) for line in replies.getvalue().splitlines()][1:]  # after "ready"
    assert [r["error"] for r in lines] == [
        "bad request: not JSON",
        *["bad request: no argv list"] * 2,
    ]
    assert [r["id"] for r in lines] == [None, 4, None]
    assert all(set(r) == {"id", "error", "status", "held_input"} for r in lines), lines
    assert all(r["held_input"] is None and r["status"] == 2 for r in lines)


@pytest.mark.parametrize("flag", ["--help", "-h", "--he", "--hel", "--h"])  # --he: abbreviations
def test_a_serve_request_for_help_is_refused_and_prints_nothing(capsys, flag):
    reply = served({"id": 5, "argv": ["ct.nrrd", "--task", "liver", flag]})[5]
    assert reply["status"] == 2 and reply["error"] == "bad request: --help is not a request"
    captured = capsys.readouterr()
    assert "usage" not in captured.err and "usage" not in captured.out
    assert captured.err == "", captured.err


def test_the_server_parses_requests_after_a_refused_one_as_before(tmp_path):
    """``unetpp serve`` builds its parser once: a refused request leaves nothing behind, so the
    next ones are parsed afresh (here they fail later, on the missing input, by name)."""
    replies = served(
        {"id": 1, "argv": ["ct.nrrd", "--task", "liver", "--bogus-option"]},
        {"id": 2, "argv": ["ct.nrrd", "--task", "liver", "--depth", "9"]},
        {"id": 3, "argv": [str(tmp_path / "a.nrrd"), "--task", "liver", "-o", "x.seg.nrrd"]},
    )
    assert "--bogus-option" in replies[1]["error"]
    assert "depth" in replies[2]["error"].lower() and "bogus" not in replies[2]["error"]
    assert "not found" in replies[3]["error"] and "a.nrrd" in replies[3]["error"]


@pytest.mark.parametrize(
    "argv",
    [
        ["ct\x00.nii.gz", "--task", "liver", "-o", "x.seg.nrrd"],  # a NUL in a path
        ["ct.nii.gz", "--task", "liver", "-o", "x\x00.seg.nrrd"],
        ["ct.nii.gz", "--task", "liver", "-o", "x.seg.nrrd", "--cancel-file", "c\x00"],
        ["\ud800.nii.gz", "--task", "liver", "-o", "x.seg.nrrd"],  # a lone surrogate
    ],
)
def test_a_serve_request_with_a_nul_or_a_lone_surrogate_is_a_bad_request(argv):
    """JSON can carry what no command line can: a NUL in a path was 'internal error
    (ValueError: embedded null byte); please report it', a lone surrogate 'internal error
    (UnicodeEncodeError ...)', and a NUL in --cancel-file was ignored and the run went on
    (tester 12)."""
    reply = served({"id": 7, "argv": argv})[7]
    assert reply["status"] == 2, reply
    assert reply["error"] == (
        "bad request: an argument holds a NUL character or text that is not valid Unicode"
    )


def test_a_line_longer_than_the_limit_is_refused_without_holding_it(monkeypatch):
    """A line without end (a broken client writing without newline) was read whole: memory
    grew with it (100 MB took 100 MB more; tester 12). Now at most MAX_LINE characters are
    held, the rest is skipped, one bad request is replied and the next line is served."""
    from UNetPlusPlusLib import cli_serve

    monkeypatch.setattr(cli_serve, "MAX_LINE", 1000)
    held = []

    class Watched(io.StringIO):
        def readline(self, size=-1):
            line = super().readline(size)
            held.append(len(line))
            return line

    huge = json.dumps({"id": 1, "argv": ["x" * 50_000]})
    requests = Watched(huge + "\n" + json.dumps({"id": 2, "argv": "not a list"}) + "\n")
    replies = io.StringIO()
    serve(requests, replies, build_parser)
    lines = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert [r["error"] for r in lines] == [
        "bad request: a line longer than 1000 characters",
        "bad request: no argv list",
    ]
    assert [r["id"] for r in lines] == [None, 2]
    assert max(held) <= 1001

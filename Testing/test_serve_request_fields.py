"""`unetpp serve` refuses a request with a field it does not know: a misspelt ``input_token``
was dropped without a word (the volume read again, the Slicer module's files expected to
exist), a misspelt ``argv`` read as 'no argv list'. One error names the field and the closest
valid one; the server answers the next request as before."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from helpers import make_sphere_image, serve_over_pipe
from UNetPlusPlusLib.cli import build_parser
from UNetPlusPlusLib.cli_serve import serve, unknown_fields_message

TIMEOUT_S = 180


def test_a_misspelt_field_is_refused_over_the_pipe_and_the_server_goes_on(tmp_path, sphere_model):
    import SimpleITK as sitk

    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    request = [str(tmp_path / "ct.nrrd"), "--model", str(sphere_model), "--device", "cpu"]
    lines = [
        {"id": 1, "argv": [*request, "--labelmap", str(tmp_path / "a.nrrd")], "input_tokn": "v1"},
        {"id": 2, "argv": [*request, "--labelmap", str(tmp_path / "b.nrrd")], "input_token": "v1"},
    ]
    replies, stderr = serve_over_pipe(lines, cwd=tmp_path, timeout_s=TIMEOUT_S)
    ends = {r["id"]: r for r in replies if "result" in r or "error" in r}
    assert ends[1]["status"] == 2 and ends[1]["held_input"] is None
    assert ends[1]["error"].startswith(
        "bad request: unknown field 'input_tokn' (did you mean 'input_token'?)"
    ), ends[1]["error"]
    assert not [r for r in replies if r.get("id") == 1 and "stage" in r]  # refused before work
    assert not (tmp_path / "a.nrrd").exists()
    assert ends[2]["result"]["volumes_ml"]["liver"] > 0 and ends[2]["held_input"] == "v1"
    assert (tmp_path / "b.nrrd").is_file()
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "request_, expected",
    [
        ({"id": 1, "argvs": []}, "unknown field 'argvs' (did you mean 'argv'?)"),
        ({"ID": 1, "argv": []}, "unknown field 'ID' (did you mean 'id'?)"),
        ({"id": 1, "argv": [], "colour": 1}, "unknown field 'colour'; a request has only id,"),
        (
            {"id": 1, "argv": [], "inputtoken": "a", "qiut": True},
            "unknown fields 'inputtoken' (did you mean 'input_token'?), 'qiut' (did you mean "
            "'quit'?)",
        ),
    ],
)
def test_unknown_fields_are_each_named_with_the_closest_valid_one(request_, expected):
    replies = io.StringIO()
    serve(io.StringIO(json.dumps(request_) + "\n"), replies, build_parser)
    (reply,) = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert reply["status"] == 2 and expected in reply["error"], reply["error"]
    assert set(reply) == {"id", "error", "status", "held_input"}


def test_known_fields_pass():
    assert unknown_fields_message({"id": 1, "argv": [], "input_token": "t", "quit": False}) is None


@pytest.mark.parametrize("value", ["yes", 1, None, [True]])
def test_quit_of_another_type_is_refused_not_run_as_a_request(tmp_path, value):
    """Only ``"quit": true`` ends the server; ``"quit": "yes"`` (or 1) beside a valid argv
    was read as no quit and ran that argv as a segmentation, writing its outputs."""
    request = {"id": 1, "argv": ["missing.nrrd", "--task", "liver", "-o", "x.seg.nrrd"]}
    replies = io.StringIO()
    lines = [{**request, "quit": value}, {"id": 2, "argv": [], "quit": False}]
    serve(io.StringIO("".join(json.dumps(line) + "\n" for line in lines)), replies, build_parser)
    first, second = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert first["status"] == 2 and first["id"] == 1
    assert first["error"] == f"bad request: quit must be true or false, got {value!r}"
    assert second["id"] == 2 and "quit" not in second["error"]  # the server went on


def test_an_argv_of_non_strings_names_the_first_bad_item_over_the_pipe():
    """``"argv": [1, 2]`` was answered "no argv list", though a list was sent: the reply says
    argv must be a list of strings and names the first item that is not one (index, JSON type);
    the server answers the next request."""
    lines = [
        {"id": 1, "argv": [1, 2]},
        {"id": 2, "argv": ["ct.nrrd", "--task", None, {"a": 1}]},
        {"id": 3, "argv": ["ct.nrrd", "--tta", True]},
        {"id": 4, "argv": "ct.nrrd --task liver"},  # not a list at all: as before
    ]
    replies, stderr = serve_over_pipe(lines, timeout_s=TIMEOUT_S)
    ends = {r["id"]: r for r in replies}
    must = "bad request: argv must be a list of strings (the arguments of `unetpp segment`); "
    assert ends[1]["error"] == must + "argv[0] is a number"
    assert ends[2]["error"] == must + "argv[2] is null"
    assert ends[3]["error"] == must + "argv[2] is a boolean"
    assert ends[4]["error"] == "bad request: no argv list"
    assert all(r["status"] == 2 and r["held_input"] is None for r in ends.values())
    assert all(set(r) == {"id", "error", "status", "held_input"} for r in ends.values())
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "argv, said", [([[]], "argv[0] is an array"), (["a", 1.5], "argv[1] is a number")]
)
def test_an_argv_item_is_named_by_its_json_type(argv, said):
    replies = io.StringIO()
    serve(io.StringIO(json.dumps({"id": 1, "argv": argv}) + "\n"), replies, build_parser)
    (reply,) = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert reply["error"].startswith("bad request: argv must be a list of strings")
    assert reply["error"].endswith(said) and reply["status"] == 2


def test_quit_with_an_unknown_field_is_refused_and_the_server_stays():
    """``{"quit": true, "bogus": 1}`` quit without a word about the unknown field (tester 20)."""
    replies = io.StringIO()
    lines = [{"quit": True, "bogus": 1}, {"id": 2, "argv": [1]}]
    serve(io.StringIO("".join(json.dumps(line) + "\n" for line in lines)), replies, build_parser)
    first, second = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert first["status"] == 2 and first["error"].startswith("bad request: unknown field 'bogus'")
    assert second["id"] == 2 and "argv[0] is a number" in second["error"]  # still answering


def test_quit_with_a_run_is_refused_not_dropped_without_a_reply():
    """``{"id": 2, "argv": [...], "quit": true}`` quit at once: no reply for id 2 (tester 21)."""
    replies = io.StringIO()
    lines = [{"id": 2, "argv": ["devices"], "quit": True}, {"id": 3, "argv": [1]}]
    serve(io.StringIO("".join(json.dumps(line) + "\n" for line in lines)), replies, build_parser)
    first, second = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert first["id"] == 2 and first["status"] == 2 and "quit comes alone" in first["error"]
    assert second["id"] == 3 and "argv[0] is a number" in second["error"]  # still answering


def test_a_request_line_may_start_with_a_utf8_byte_order_mark():
    """A line written by a Windows tool starts with a BOM: it was answered "not JSON"."""
    replies = io.StringIO()
    lines = "\ufeff" + json.dumps({"id": 1, "argv": [1]}) + "\n\ufeff\n" + '\ufeff{"quit": true}\n'
    serve(io.StringIO(lines + json.dumps({"id": 9, "argv": [1]}) + "\n"), replies, build_parser)
    (reply,) = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert reply["id"] == 1 and "argv[0] is a number" in reply["error"]  # parsed, then quit


def test_requests_and_replies_are_utf8_whatever_the_code_page(tmp_path):
    """On Windows stdin/stdout default to the code page (cp1252): a request naming
    ``Bücher/ct.nii.gz`` in UTF-8 arrived as ``BÃ¼cher``; bytes that are not UTF-8 must not end
    the server (cli_serve.utf8_streams, called by run_serve)."""
    from UNetPlusPlusLib.cli_serve import utf8_streams

    missing = str(tmp_path / "Bücher" / "ct.nii.gz")
    argv = [missing, "--task", "liver", "-o", "x.seg.nrrd"]
    request = json.dumps({"id": 1, "argv": argv}, ensure_ascii=False)  # as most tools write it
    raw = request.encode() + b"\n\xff\xfe{\n" + b'{"quit": true}\n'
    requests = io.TextIOWrapper(io.BytesIO(raw), encoding="cp1252")
    out = io.BytesIO()
    replies = io.TextIOWrapper(out, encoding="cp1252", write_through=True)
    utf8_streams(requests, replies)
    assert serve(requests, replies, build_parser) == 0
    answers = [json.loads(line) for line in out.getvalue().decode("utf-8").splitlines()][1:]
    assert answers[0]["id"] == 1 and answers[0]["status"] == 2
    assert "Bücher" in answers[0]["error"], answers[0]["error"]
    assert "not JSON" in answers[1]["error"]  # the undecodable line, then the server quit

"""`unetpp serve` refuses a request with a field it does not know: a misspelt ``input_token``
was dropped without a word (the volume read again, the Slicer module's files expected to
exist), a misspelt ``argv`` read as 'no argv list'. One error names the field and the closest
valid one; the server answers the next request as before."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import make_sphere_image
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
    out = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "serve"],
        input="".join(json.dumps(line) + "\n" for line in lines),
        capture_output=True, text=True, timeout=TIMEOUT_S, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    replies = [json.loads(line) for line in out.stdout.splitlines()]
    assert replies[0]["ready"] is True
    ends = {r["id"]: r for r in replies[1:] if "result" in r or "error" in r}
    assert ends[1]["status"] == 2 and ends[1]["held_input"] is None
    assert ends[1]["error"].startswith(
        "bad request: unknown field 'input_tokn' (did you mean 'input_token'?)"
    ), ends[1]["error"]
    assert not [r for r in replies if r.get("id") == 1 and "stage" in r]  # refused before work
    assert not (tmp_path / "a.nrrd").exists()
    assert ends[2]["result"]["volumes_ml"]["liver"] > 0 and ends[2]["held_input"] == "v1"
    assert (tmp_path / "b.nrrd").is_file()
    assert "Traceback" not in out.stderr


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

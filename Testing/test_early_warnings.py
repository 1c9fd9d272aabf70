"""Warnings known before inference are said before the first tile, once (tester 12: a 50 mm
header ran for minutes and warned only at the end): the text CLI, --progress-json, `unetpp
serve` and the Slicer module's job client."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from UNetPlusPlusLib.cli import build_parser, main
from UNetPlusPlusLib.cli_serve import serve
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.tile_count import long_run_warning, tile_count
from UNetPlusPlusLib.engine.volume import Grid
from UNetPlusPlusLib.errors import CancelledError

THICK = "very thick voxels"


@pytest.fixture()
def thick_ct(tmp_path):
    """A sphere CT with 12 mm slices: the input checks warn ("very thick voxels")."""
    image = make_sphere_image((24, 24, 6), (2.0, 2.0, 12.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    path = tmp_path / "thick.nrrd"
    sitk.WriteImage(image, str(path))
    return path


@pytest.fixture()
def stop_at_first_tile(monkeypatch, capsys):
    """Stop a run where inference starts (nothing written), keeping what was printed by then."""
    seen = {}

    def stop(self, *args, **kwargs):
        seen.update(zip(("out", "err"), capsys.readouterr()))
        raise CancelledError()

    monkeypatch.setattr(Predictor, "_infer", stop)
    return seen


def argv(path, model, out, *extra):
    return ["segment", str(path), "--model", str(model), "--threads", "1", "-o", str(out), *extra]


def test_input_and_replaced_output_warnings_print_before_inference(
    thick_ct, sphere_model, tmp_path, stop_at_first_tile
):
    out = tmp_path / "x.seg.nrrd"
    out.write_bytes(b"old")  # not an output of ours: replaced only under --overwrite, said early
    assert main(argv(thick_ct, sphere_model, out, "--quiet", "--overwrite")) == 3  # first tile
    early = stop_at_first_tile["err"].splitlines()
    assert any(THICK in line and line.startswith("warning: ") for line in early), early
    assert any("already exists" in line for line in early), early
    assert out.read_bytes() == b"old"  # a stopped run leaves the old file as it was


def test_a_warning_said_early_is_not_repeated_at_the_end(thick_ct, sphere_model, tmp_path, capsys):
    assert main(argv(thick_ct, sphere_model, tmp_path / "x.seg.nrrd", "--quiet")) == 0
    out, err = capsys.readouterr()
    assert sum(THICK in line for line in err.splitlines()) == 1, err
    assert "1 warning above" in out


def test_progress_json_emits_a_warning_event_before_the_first_tile(
    thick_ct, sphere_model, tmp_path, capsys
):
    assert main(argv(thick_ct, sphere_model, tmp_path / "x.nrrd", "--progress-json")) == 0
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines()]
    warned = next(i for i, x in enumerate(lines) if THICK in x.get("warning", ""))
    first_tile = next(i for i, x in enumerate(lines) if x.get("stage") == "infer")
    assert warned < first_tile
    assert sum(THICK in x.get("warning", "") for x in lines) == 1
    assert any(THICK in w for w in lines[-1]["result"]["warnings"])  # the result lists it too
    assert THICK not in err  # said once: not again on stderr at the end


def test_serve_replies_a_warning_before_the_first_tile(thick_ct, sphere_model, tmp_path):
    request = {"id": 4, "argv": argv(thick_ct, sphere_model, tmp_path / "x.nrrd")[1:]}
    replies = io.StringIO()
    serve(io.StringIO(json.dumps(request) + "\n"), replies, build_parser)
    lines = [json.loads(line) for line in replies.getvalue().splitlines()][1:]
    assert all(x["id"] == 4 for x in lines)
    warned = [i for i, x in enumerate(lines) if THICK in x.get("warning", "")]
    first_tile = next(i for i, x in enumerate(lines) if x.get("stage") == "infer")
    assert len(warned) == 1 and warned[0] < first_tile
    assert any(THICK in w for w in lines[-1]["result"]["warnings"])


def test_the_slicer_job_client_logs_a_warning_event_at_once():
    from UNetPlusPlusLib.adapter.job import LOG, SegmentationJob

    running = SegmentationJob(volume=None, manifest=None)  # only its parser is used here
    event = running._parse("stdout", json.dumps({"warning": "thick voxels"}))
    assert event.kind == LOG and event.message == "warning: thick voxels"
    assert running.log[-1] == "warning: thick voxels"


# ------------------------------------------------------------------ the work of a huge header
def test_a_header_larger_than_any_scan_states_its_tiles(repo_root):
    liver = ModelManifest.load(
        repo_root / "UNetPlusPlus/UNetPlusPlusLib/Resources/Models/liver/model.json"
    )
    demo = Grid((122, 101, 112), (3.0, 3.0, 3.0), (0.0, 0.0, 0.0), np.eye(3))
    assert long_run_warning(demo, liver) is None  # a plausible torso: nothing to say
    assert tile_count(demo.shape_zyx, liver.tile_size_zyx, liver.overlap) == 36
    tall = Grid((122, 101, 112), (3.0, 3.0, 50.0), (0.0, 0.0, 0.0), np.eye(3))  # 5.6 m long
    message = long_run_warning(tall, liver)
    assert (
        "122 x 101 x 1851 voxel model grid (3 x 3 x 3 mm; the input grid is 122 x 101 x 112 "
        "voxels of 3 x 3 x 50 mm), 624 tiles"
    ) in message


def test_the_tile_count_of_a_huge_header_prints_before_inference(
    sphere_model, tmp_path, stop_at_first_tile
):
    image = make_sphere_image((24, 24, 48), (2.0, 2.0, 60.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    sitk.WriteImage(image, str(tmp_path / "tall.nrrd"))  # 2.9 m long
    assert main(argv(tmp_path / "tall.nrrd", sphere_model, tmp_path / "x.nrrd")) == 3
    assert "tiles of inference" in stop_at_first_tile["err"]

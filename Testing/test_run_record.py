"""Every segmentation file `unetpp segment` writes records its model and its run's warnings
(run_record.py): NRRD/MHA header fields, a JSON sidecar beside NIfTI; `unetpp review` reads
them back. A file passed on or opened later carried no sign that the run had warned."""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from pathlib import Path

import nrrd
import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from helpers import make_sphere_image, rotation_matrix, serve_over_pipe
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.output_stamp import stamp_of, stamp_state
from UNetPlusPlusLib.run_record import add_header_fields, header_json, read_record
from UNetPlusPlusLib.segfile import read_seg_nrrd


@pytest.fixture()
def warned_model(sphere_model, tmp_path) -> Path:
    """The sphere model with a plausible liver volume of 0-1 ml: its balls (~5 ml) warn."""
    folder = tmp_path / "model"
    folder.mkdir()
    for name in ("model.json", "weights.safetensors"):
        shutil.copy(sphere_model.parent / name, folder / name)
    data = json.loads((folder / "model.json").read_text())
    data["postprocess"]["plausible_ml"] = {"liver": [0, 1]}
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


@pytest.fixture()
def oblique_ball(tmp_path) -> Path:
    direction = rotation_matrix((10, 0, 25)) @ np.diag([-1.0, -1.0, 1.0])
    image = make_sphere_image(
        (30, 28, 20), spacing=(1.6, 1.6, 2.5), direction=direction, radius_mm=11, noise=5,
        origin=(-20.0, 10.0, 5.0),
    )  # fmt: skip
    path = tmp_path / "ball.nii.gz"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    return path


def _segment(image: Path, model: Path, *outputs: str) -> dict:
    argv = ["segment", str(image), "--model", str(model), "--depth", "2", "--threads", "1"]
    return _result([*argv, *outputs])


def _result(argv: list) -> dict:
    """The ``result`` of ``unetpp ARGV --progress-json``, which must succeed."""
    stream = io.StringIO()
    with redirect_stdout(stream):
        code = main([*argv, "--progress-json"])
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert code == 0, lines[-1]
    return lines[-1]["result"]


def test_a_warned_run_records_its_warnings_in_the_seg_nrrd_and_a_nifti_sidecar(
    warned_model, oblique_ball, tmp_path
):
    seg, labelmap = tmp_path / "out" / "w.seg.nrrd", tmp_path / "out" / "w_labels.nii.gz"
    (tmp_path / "out").mkdir()
    result = _segment(oblique_ball, warned_model, "-o", str(seg), "--labelmap", str(labelmap))
    warnings = result["warnings"]
    assert any("ml" in text for text in warnings), warnings  # the implausible volume
    # every reader of the .seg.nrrd returns the same list
    segmentation = slicerio.read_segmentation(str(seg), skip_voxels=True)
    assert json.loads(segmentation["unetpp_warnings"]) == warnings
    assert segmentation["unetpp_model"] == "sphere-test"
    assert segmentation["unetpp_depth"] == "2"
    assert json.loads(nrrd.read_header(str(seg))["unetpp_warnings"]) == warnings
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(seg))
    reader.ReadImageInformation()
    assert json.loads(reader.GetMetaData("unetpp_warnings")) == warnings
    record = read_record(seg)
    assert record["unetpp_warnings"] == warnings
    assert record["unetpp_model_sha256"] == json.loads(warned_model.read_text())["sha256"]
    # the stamp covers the record, and the segmentation still reads with its geometry
    assert stamp_state(seg) == "valid"
    labels = read_seg_nrrd(seg)
    reference = sitk.ReadImage(str(oblique_ball))
    np.testing.assert_allclose(labels.origin, reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(np.ravel(labels.direction), reference.GetDirection(), atol=1e-6)
    assert labels.array.any()
    # NIfTI: the sidecar, stamped, naming the image and its stamp
    sidecar = tmp_path / "out" / "w_labels.json"
    content = json.loads(sidecar.read_text())
    assert content["unetpp_warnings"] == warnings and content["image"] == labelmap.name
    assert content["image_sha256"] == stamp_of(labelmap)
    assert stamp_state(sidecar) == "valid" and stamp_state(labelmap) == "valid"
    assert read_record(labelmap)["unetpp_warnings"] == warnings


def test_a_clean_run_records_an_empty_list_and_a_rerun_replaces_its_files(
    sphere_model, oblique_ball, tmp_path, capsys
):
    seg, mha = tmp_path / "c.seg.nrrd", tmp_path / "c.mha"
    nii = tmp_path / "n.nii"
    result = _segment(oblique_ball, sphere_model, "-o", str(seg), "--labelmap", str(mha))
    assert result["warnings"] == []
    header = slicerio.read_segmentation(str(seg), skip_voxels=True)
    assert json.loads(header["unetpp_warnings"]) == []
    assert read_record(mha)["unetpp_warnings"] == [] and stamp_state(mha) == "valid"
    assert sitk.ReadImage(str(mha)).GetSize() == sitk.ReadImage(str(oblique_ball)).GetSize()
    # -o with a NIfTI name: its sidecar is listed in the "wrote ..." line
    _segment(oblique_ball, sphere_model, "-o", str(nii))
    assert read_record(nii)["unetpp_warnings"] == []
    code = main(["segment", str(oblique_ball), "--model", str(sphere_model), "--depth", "2",
                 "--threads", "1", "--quiet", "-o", str(nii)])  # fmt: skip
    assert code == 0  # our unchanged sidecar is replaced without --overwrite
    assert f"wrote {nii}, {tmp_path / 'n.json'}" in capsys.readouterr().out


def test_a_sidecar_not_written_by_unetpp_is_kept(sphere_model, oblique_ball, tmp_path, capsys):
    notes = tmp_path / "x.json"
    notes.write_text('{"my": "notes"}\n')
    labelmap = tmp_path / "x.nii.gz"
    argv = ["segment", str(oblique_ball), "--model", str(sphere_model), "--quiet"]
    assert main([*argv, "--labelmap", str(labelmap)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "x.json" in error and "--overwrite" in error
    assert notes.read_text() == '{"my": "notes"}\n' and not labelmap.exists()


def test_the_header_json_survives_every_nrrd_reader(tmp_path):
    """Backslashes, newlines, quotes and non-ASCII text: ITK unescapes ``\\\\`` and ``\\n``."""
    texts = ['C:\\data\\ct.nii "a" b', "two\nlines", "\u2265 5 mm \u00d7 3", "tab\there"]
    assert "\\\\" not in header_json(texts) and "\n" not in header_json(texts)
    path = tmp_path / "l.nrrd"
    sitk.WriteImage(sitk.Image(4, 3, 2, sitk.sitkUInt8), str(path))
    add_header_fields(path, {"unetpp_warnings": texts, "unetpp_model": "m\nx"})
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    assert json.loads(reader.GetMetaData("unetpp_warnings")) == texts
    header = nrrd.read_header(str(path))
    assert json.loads(header["unetpp_warnings"]) == texts and header["unetpp_model"] == "m x"
    assert read_record(path)["unetpp_warnings"] == texts
    assert sitk.ReadImage(str(path)).GetSize() == (4, 3, 2)


def test_review_prints_the_recorded_warnings(warned_model, oblique_ball, tmp_path, capsys):
    seg = tmp_path / "w.seg.nrrd"
    warnings = _segment(oblique_ball, warned_model, "-o", str(seg))["warnings"]
    assert main(["review", str(seg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "model sphere-test" in out[0] and "at depth 2" in out[0] and "unchanged" in out[0]
    assert [line for line in out if line.startswith("  warning: ")] == [
        f"  warning: {text}" for text in warnings
    ]
    # a file without a record is not "no warnings"
    assert main(["review", str(oblique_ball)]) == 0
    out = capsys.readouterr().out
    assert "no unetpp run record" in out and "no warnings" not in out
    # edited since: said, and the record still shown
    data = bytearray(seg.read_bytes())
    data[-3] ^= 0xFF
    seg.write_bytes(bytes(data))
    assert main(["review", str(seg), "--json"]) == 0
    review = json.loads(capsys.readouterr().out)[0]
    assert review["stamp"] == "changed" and review["record"]["unetpp_warnings"] == warnings
    assert main(["review", str(tmp_path / "missing.seg.nrrd")]) == 2
    assert capsys.readouterr().err.startswith("error: Segmentation not found")


def test_unetpp_serve_records_each_request_s_warnings(warned_model, tmp_path):
    image = make_sphere_image((24, 24, 24), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), np.eye(3), 9.0)
    sitk.WriteImage(image, str(tmp_path / "ct.nrrd"))
    request = [str(tmp_path / "ct.nrrd"), "--model", str(warned_model), "--device", "cpu"]
    lines = [
        {"id": 1, "argv": [*request, "-o", str(tmp_path / "a.seg.nrrd")], "input_token": "v1"},
        {"id": 2, "argv": [*request, "--labelmap", str(tmp_path / "b.nii")], "input_token": "v1"},
    ]
    replies, stderr = serve_over_pipe(lines, cwd=tmp_path, timeout_s=180)
    ends = {r["id"]: r for r in replies if "result" in r or "error" in r}
    assert ends[2]["held_input"] == "v1", stderr  # the second request read no file
    for number, written in ((1, "a.seg.nrrd"), (2, "b.nii")):
        warnings = ends[number]["result"]["warnings"]
        assert warnings and read_record(tmp_path / written)["unetpp_warnings"] == warnings
    assert stamp_state(tmp_path / "b.json") == "valid"


def test_the_demo_ct_s_liver_cut_by_the_image_top_is_recorded_in_its_file(tmp_path, capsys):
    """The bundled CT ends below the liver's dome: the file says so, and which side."""
    demo = Path(__file__).resolve().parents[1] / "Resources/Examples/example_ct.nii.gz"
    seg = tmp_path / "liver.seg.nrrd"
    result = _result(["segment", str(demo), "--task", "liver", "-o", str(seg)])
    cut = [w for w in result["warnings"] if "cut by the edge of the image at its top" in w]
    assert cut, result["warnings"]
    record = read_record(seg)
    assert record["unetpp_warnings"] == result["warnings"]
    assert record["unetpp_model_task"] == "liver" and record["unetpp_depth"] == str(result["depth"])
    assert record["unetpp_anatomy"]["cut_sides"] == ["superior"]
    assert stamp_state(seg) == "valid"
    assert main(["review", str(seg)]) == 0
    out = capsys.readouterr().out
    assert "cut by the image's edge: superior" in out and f"  warning: {cut[0]}" in out

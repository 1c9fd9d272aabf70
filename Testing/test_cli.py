"""The `unetpp` command line, run in-process and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from helpers import dice, make_sphere_image, rotation_matrix, sphere_mask
from PIL import Image
from UNetPlusPlusLib.cli import main


@pytest.fixture()
def sphere_file(tmp_path):
    centre = (-20.0, 35.0, 60.0)
    direction = rotation_matrix((0, 0, 25)) @ np.diag([-1.0, -1.0, 1.0])
    origin = np.asarray(centre) - direction @ (np.array([1.6, 1.6, 2.5]) * np.array([18, 17, 12]))
    image = make_sphere_image(
        (36, 34, 24),
        spacing=(1.6, 1.6, 2.5),
        origin=origin,
        direction=direction,
        center_lps=centre,
        radius_mm=12,
        noise=5,
    )
    path = tmp_path / "sphere.nii.gz"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    return path, centre


def test_segment_writes_seg_nrrd_labelmap_probabilities_and_preview(
    sphere_model, sphere_file, tmp_path, capsys
):
    path, centre = sphere_file
    out = tmp_path / "out" / "sphere.seg.nrrd"
    code = main([
        "segment", str(path), "--model", str(sphere_model), "--depth", "4", "--quiet",
        "-o", str(out), "--labelmap", str(tmp_path / "labels.nrrd"),
        "--probabilities", str(tmp_path / "prob.nii.gz"), "--preview", str(tmp_path / "p.png"),
    ])  # fmt: skip
    assert code == 0
    assert "segmented with sphere-test" in capsys.readouterr().out

    reference = sitk.ReadImage(str(path))
    labelmap = sitk.ReadImage(str(tmp_path / "labels.nrrd"))
    assert labelmap.GetSize() == reference.GetSize()
    np.testing.assert_allclose(labelmap.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(labelmap.GetSpacing(), reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(labelmap.GetDirection(), reference.GetDirection(), atol=1e-6)
    array = sitk.GetArrayFromImage(labelmap)
    assert dice(array == 1, sphere_mask(reference, centre, 12)) > 0.85

    segmentation = slicerio.read_segmentation(str(out))
    (segment,) = segmentation["segments"]
    assert segment["name"] == "liver"
    assert segment["terminology"]["type"] == ["SCT", "10200004", "Liver"]
    voxels = np.asarray(segmentation["voxels"]).transpose(2, 1, 0)
    np.testing.assert_array_equal(voxels, array)

    probabilities = sitk.ReadImage(str(tmp_path / "prob.nii.gz"))
    assert probabilities.GetNumberOfComponentsPerPixel() == 2
    assert probabilities.GetSize() == reference.GetSize()

    preview = np.asarray(Image.open(tmp_path / "p.png"))
    assert preview.ndim == 3 and preview.std() > 10


def test_progress_json_lines(sphere_model, sphere_file, tmp_path, capsys):
    path, _ = sphere_file
    code = main(
        [
            "segment",
            str(path),
            "--model",
            str(sphere_model),
            "--depth",
            "1",
            "--labelmap",
            str(tmp_path / "l.nii.gz"),
            "--progress-json",
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    stages = [line["stage"] for line in lines if "stage" in line]
    assert {"load", "preprocess", "infer", "postprocess", "write"} <= set(stages)
    result = lines[-1]["result"]
    assert result["depth"] == 1 and result["volumes_ml"]["liver"] > 3.0


@pytest.mark.parametrize(
    "make_args,message",
    [
        (lambda p, m, t: [str(t / "missing.nii.gz"), "--model", m], "missing.nii.gz"),
        (lambda p, m, t: [str(p), str(p), "--model", m], "needs 1 input volume"),
        (lambda p, m, t: [str(p), "--model", str(t / "nope.json")], "nope.json"),
        (lambda p, m, t: [str(p), "--model", m, "--depth", "7"], "Depth"),
        (lambda p, m, t: [str(p), "--model", m, "--device", "cuda:3"], "CUDA"),
        (lambda p, m, t: [str(p), "--task", "no-such-task"], "no-such-task"),
    ],
)
def test_user_errors_are_one_line_and_write_nothing(
    sphere_model, sphere_file, tmp_path, capsys, make_args, message
):
    path, _ = sphere_file
    out = tmp_path / "never.seg.nrrd"
    code = main(["segment", *make_args(path, str(sphere_model), tmp_path), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0]
    assert not out.exists()


def test_truncated_input_file_is_a_clear_error(sphere_model, sphere_file, tmp_path, capsys):
    path, _ = sphere_file
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(path.read_bytes()[:4000])
    assert (
        main(
            [
                "segment",
                str(broken),
                "--model",
                str(sphere_model),
                "-o",
                str(tmp_path / "x.seg.nrrd"),
            ]
        )
        == 2
    )
    assert "broken.nii.gz" in capsys.readouterr().err


def test_refuses_to_overwrite_the_input(sphere_model, sphere_file, capsys):
    path, _ = sphere_file
    before = path.read_bytes()
    assert main(["segment", str(path), "--model", str(sphere_model), "--labelmap", str(path)]) == 2
    assert path.read_bytes() == before


def test_models_list_and_subprocess_entry_point(sphere_model, tmp_path, monkeypatch):
    env = {"UNETPP_MODELS": str(sphere_model.parent.parent), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [sys.executable, "-m", "UNetPlusPlusLib.cli", "models", "list"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert "sphere-test" in completed.stdout


def _image_file(tmp_path, name, image):
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.mark.parametrize(
    "make_image,message",
    [
        (lambda: sitk.Image([32, 32], sitk.sitkInt16), "2D"),
        (lambda: sitk.Image([16, 16, 16, 3], sitk.sitkInt16), "4D"),
        (lambda: sitk.Image([16, 16, 16], sitk.sitkVectorFloat32, 3), "values per voxel"),
    ],
)
def test_wrong_dimensionality_is_refused(sphere_model, tmp_path, capsys, make_image, message):
    path = _image_file(tmp_path, "bad.nrrd", make_image())
    assert (
        main(["segment", path, "--model", str(sphere_model), "-o", str(tmp_path / "o.seg.nrrd")])
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert message.lower() in err.lower() and "bad.nrrd" in err


def test_checksum_mismatch_is_refused(sphere_model, sphere_file, tmp_path, capsys):
    import shutil

    package = tmp_path / "package"
    shutil.copytree(sphere_model.parent, package)
    weights = package / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    path, _ = sphere_file
    code = main(["segment", str(path), "--model", str(package / "model.json"), "-o",
                 str(tmp_path / "o.seg.nrrd")])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert "sha256" in err.lower() and "weights.safetensors" in err
    assert not (tmp_path / "o.seg.nrrd").exists()


def test_models_list_shows_depths_and_validation(sphere_model, monkeypatch, capsys):
    monkeypatch.setenv("UNETPP_MODELS", str(sphere_model.parent.parent))
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "sphere-test" in out and "L3" in out and "(recommended)" in out and "ensemble" in out

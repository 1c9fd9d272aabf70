"""`unetpp segment --tta / --disagreement` and `unetpp models show`; panel texts for TTA."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image, rotation_matrix
from UNetPlusPlusLib.adapter import panel
from UNetPlusPlusLib.adapter.job import build_command
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.manifest import ModelManifest


@pytest.fixture()
def oblique_file(tmp_path):
    direction = rotation_matrix((10, 0, 25)) @ np.diag([-1.0, -1.0, 1.0])
    image = make_sphere_image(
        (30, 28, 20), spacing=(1.6, 1.6, 2.5), direction=direction, radius_mm=11, noise=5,
        origin=(-20.0, 10.0, 5.0),
    )  # fmt: skip
    path = tmp_path / "sphere.nii.gz"
    sitk.WriteImage(sitk.Cast(image, sitk.sitkInt16), str(path))
    return path


def test_disagreement_output_has_the_input_geometry_and_json_has_agreement(
    sphere_model, oblique_file, tmp_path, capsys
):
    out = tmp_path / "d" / "disagreement.nii.gz"
    code = main([
        "segment", str(oblique_file), "--model", str(sphere_model), "--depth", "2",
        "--tta", "--disagreement", str(out), "--labelmap", str(tmp_path / "l.nrrd"),
        "--progress-json", "--threads", "1",
    ])  # fmt: skip
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    result = lines[-1]["result"]
    assert result["tta"] == {"mirror_axes": ["x", "y", "z"], "passes": 8}
    assert set(result["agreement"]) == {"liver"} and 0 < result["agreement"]["liver"] <= 1
    assert result["heads"] == 2 and result["outputs"]["disagreement"] == str(out)
    reference, written = sitk.ReadImage(str(oblique_file)), sitk.ReadImage(str(out))
    assert written.GetSize() == reference.GetSize()
    np.testing.assert_allclose(written.GetOrigin(), reference.GetOrigin(), atol=1e-4)
    np.testing.assert_allclose(written.GetSpacing(), reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(written.GetDirection(), reference.GetDirection(), atol=1e-6)
    values = sitk.GetArrayFromImage(written)
    assert values.dtype == np.float32 and 0 <= values.min() and values.max() <= 1


def test_disagreement_options_are_validated(sphere_model, oblique_file, tmp_path, capsys):
    out = tmp_path / "d.nii.gz"
    args = ["segment", str(oblique_file), "--model", str(sphere_model), "--quiet"]
    assert main([*args, "--depth", "1", "--disagreement", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "depth 2, 3, 4 or ensemble" in error
    assert "\n" not in error and not out.exists()
    assert main([*args, "--disagreement", str(oblique_file)]) == 2
    assert "overwrite the input" in capsys.readouterr().err
    assert main([*args, "--tta"]) == 2  # nothing to write
    assert "Nothing to write" in capsys.readouterr().err


def test_plain_summary_names_tta_and_agreement(sphere_model, oblique_file, tmp_path, capsys):
    code = main([
        "segment", str(oblique_file), "--model", str(sphere_model), "--depth", "3", "--quiet",
        "--threads", "1", "--disagreement", str(tmp_path / "d.nrrd"),
    ])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "agreement between the 3 heads (mean Dice): liver" in out
    assert "test-time augmentation" not in out


def _with_figures(sphere_model) -> ModelManifest:
    manifest = ModelManifest.load(sphere_model)
    manifest.validation = dict(manifest.validation)
    manifest.validation["per_depth"] = {"2": {"dice": {"liver": 0.9}, "seconds_per_volume": 0.5}}
    manifest.validation["tta"] = {
        "cases": ["a", "b"],
        "mirror_axes": ["y", "z"],
        "per_depth": {"2": {"dice": {"liver": 0.8}, "dice_tta": {"liver": 0.83},
                            "seconds": 2.0, "seconds_tta": 7.0}},
    }  # fmt: skip
    manifest.validation["review"] = {
        "threshold": 0.25,
        "per_depth": {"2": {"precision": 0.4, "recall": 0.5, "dice": 0.44, "spearman": None}},
    }
    return manifest


def test_models_show_prints_per_depth_dice_seconds_and_tta(
    sphere_model, tmp_path, monkeypatch, capsys
):
    manifest = _with_figures(sphere_model)
    folder = tmp_path / "models" / "sphere"
    folder.mkdir(parents=True)
    (folder / "weights.safetensors").write_bytes(
        sphere_model.with_name("weights.safetensors").read_bytes()
    )
    manifest.save(folder / "model.json")
    monkeypatch.setenv("UNETPP_MODELS", str(tmp_path / "models"))
    assert main(["models", "show", "sphere-test"]) == 0
    out = capsys.readouterr().out
    recommended = ModelManifest.load(sphere_model).recommended_depth
    assert f"L{recommended} (recommended)" in out
    assert "L2" in out and "Dice liver 0.900; 0.50 s" in out
    assert "mirror axes y, z" in out
    assert "Dice 0.800 -> 0.830 (+0.030); 2.00 s -> 7.00 s (x3.5)" in out
    assert "0.40 / 0.50 / 0.44; Spearman -" in out


def test_panel_tooltip_shows_the_tta_figures_and_the_job_passes_tta(sphere_model, tmp_path):
    manifest = _with_figures(sphere_model)
    assert "Dice 0.800 -> 0.830, 2.0 s -> 7.0 s" in panel.depth_tooltip(manifest, "2")
    assert "test-time" not in panel.depth_tooltip(manifest, "3")
    command = build_command("python", [tmp_path / "in.nrrd"], sphere_model, tmp_path / "l.nrrd")
    assert "--tta" not in command
    command = build_command(
        "python", [tmp_path / "in.nrrd"], sphere_model, tmp_path / "l.nrrd", tta=True
    )
    assert command[-1] == "--tta"

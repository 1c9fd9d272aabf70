"""A model that scored poorly on its own validation warns before its result (model_quality.py):
a barely trained model's confident blob was returned in silence (fresh user 25)."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import make_sphere_image
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.model_quality import LOW_MEAN_DICE, low_dice_warning
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.registry import find_model


def _with_dice(sphere_model, tmp_path, per_depth: dict):
    folder = tmp_path / "model"
    shutil.copytree(sphere_model.parent, folder)
    data = json.loads((folder / "model.json").read_text())
    data["validation"] = {"per_depth": per_depth}
    (folder / "model.json").write_text(json.dumps(data))
    return folder / "model.json"


def test_a_low_recorded_dice_warns_before_the_tiles_and_in_the_result(sphere_model, tmp_path):
    path = _with_dice(sphere_model, tmp_path, {"1": {"mean_dice": 0.13}, "2": {"mean_dice": 0.81}})
    predictor = Predictor.from_manifest_path(path, device="cpu", executor="ours")
    volume = volume_from_sitk([make_sphere_image((40, 36, 30), radius_mm=10)])
    early: list = []
    low = predictor.segment(volume, depth=1, warn=early.append).info["warnings"]
    said = [w for w in low if "mean Dice of only 0.13 at depth 1" in w]
    assert len(said) == 1 and said[0] in early  # said before the first tile, once
    fine = predictor.segment(volume, depth=2).info["warnings"]
    assert not [w for w in fine if "mean Dice" in w]


def test_shipped_models_and_models_without_figures_never_warn(sphere_model):
    assert low_dice_warning(ModelManifest.load(sphere_model), 1) is None  # nothing recorded
    for task in ("liver", "brain-tumor", "lung-nodule"):
        manifest = find_model(task)
        for depth in [*manifest.depths, "ensemble"]:
            mean = manifest.validation_for(depth).get("mean_dice")
            assert mean is None or mean >= LOW_MEAN_DICE, (task, depth, mean)
            assert low_dice_warning(manifest, depth) is None


@pytest.mark.parametrize("value", [None, "0.1", True, float("nan")])
def test_odd_recorded_values_are_not_judged(sphere_model, tmp_path, value):
    manifest = ModelManifest.load(_with_dice(sphere_model, tmp_path, {"1": {"mean_dice": value}}))
    warning = low_dice_warning(manifest, 1)
    assert warning is None

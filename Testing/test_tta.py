"""Test-time augmentation: flips undone exactly, equivariant models unchanged, manifest field."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import make_sphere_image
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.engine.tta import flip_combinations, make_predict, mirror_axes
from UNetPlusPlusLib.errors import UNetPlusPlusError


class _Pointwise(torch.nn.Module):
    """Logits [x, -x] per voxel: mirror-equivariant whatever the flips."""

    def forward(self, x, depth=4):
        return torch.cat([x, -x], dim=1)


class _Ramp(torch.nn.Module):
    """Logits that depend on the x position: not mirror-equivariant."""

    def forward(self, x, depth=4):
        ramp = torch.arange(x.shape[-1], dtype=x.dtype).expand_as(x)
        return torch.cat([ramp, torch.zeros_like(ramp)], dim=1)


def test_flip_combinations_cover_every_subset_identity_first():
    assert flip_combinations(()) == [()]
    combos = flip_combinations(("x", "y", "z"))
    assert len(combos) == 8 and combos[0] == () and len(set(combos)) == 8
    assert flip_combinations(("y", "z")) == [(), (3,), (2,), (3, 2)]


def test_flips_are_undone_exactly_on_a_pointwise_model():
    tiles = torch.randn(2, 1, 4, 6, 8)
    cpu = torch.device("cpu")
    plain = make_predict(_Pointwise(), 2, cpu)(tiles)
    mirrored = make_predict(_Pointwise(), 2, cpu, axes=("x", "y", "z"))(tiles)
    torch.testing.assert_close(mirrored, plain, rtol=1e-6, atol=1e-7)


def test_mirroring_x_averages_the_mirrored_pass_back_into_place():
    tiles = torch.zeros(1, 1, 2, 2, 5)
    cpu = torch.device("cpu")
    plain = make_predict(_Ramp(), 2, cpu)(tiles)
    along_x = make_predict(_Ramp(), 2, cpu, axes=("x",))(tiles)
    expected = (plain + torch.flip(plain, dims=(4,))) / 2  # the mirrored ramp, flipped back
    torch.testing.assert_close(along_x, expected)
    along_yz = make_predict(_Ramp(), 2, cpu, axes=("y", "z"))(tiles)
    torch.testing.assert_close(along_yz, plain)  # the ramp is constant along y and z


def _symmetrise(model: torch.nn.Module) -> None:
    """Make every convolution kernel mirror-symmetric along z, y and x: the network then
    commutes with flips of inputs whose sides are multiples of 16."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
                w = module.weight
                for dim in (2, 3, 4):
                    w.copy_((w + torch.flip(w, dims=(dim,))) / 2)


def test_tta_on_a_mirror_equivariant_model_gives_the_same_labels(sphere_model):
    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", threads=1)
    _symmetrise(predictor.model)
    image = make_sphere_image((32, 32, 32), radius_mm=13, noise=20, center_lps=(30, 34, 29))
    volume = volume_from_sitk([image], channel_names=["CT"])
    plain = predictor.segment(volume, depth=3, return_probabilities=True)
    tta = predictor.segment(volume, depth=3, return_probabilities=True, tta=True)
    assert tta.info["tta"] == {"mirror_axes": ["x", "y", "z"], "passes": 8}
    assert plain.info["tta"] is None
    np.testing.assert_allclose(tta.probabilities.array, plain.probabilities.array, atol=1e-4)
    np.testing.assert_array_equal(tta.labels.array, plain.labels.array)
    assert plain.labels.array.sum() > 100  # a real segmentation, not an empty one


def test_manifest_mirror_axes_are_read_validated_and_written(sphere_model, tmp_path):
    data = json.loads(sphere_model.read_text())
    assert mirror_axes(ModelManifest.from_dict(data).test_time_augmentation) == ("x", "y", "z")
    assert "test_time_augmentation" not in ModelManifest.from_dict(data).to_dict()
    data["test_time_augmentation"] = {"mirror_axes": ["y", "z"]}
    manifest = ModelManifest.from_dict(data)
    assert mirror_axes(manifest.test_time_augmentation) == ("y", "z")
    assert manifest.to_dict()["test_time_augmentation"] == {"mirror_axes": ["y", "z"]}
    data["test_time_augmentation"] = {"mirror_axes": []}  # a model that must not be mirrored
    assert mirror_axes(ModelManifest.from_dict(data).test_time_augmentation) == ()
    for bad in ({"mirror_axes": ["left"]}, {"mirror_axes": ["x", "x"]}, {"axes": ["x"]}, ["x"]):
        data["test_time_augmentation"] = bad
        with pytest.raises(UNetPlusPlusError, match="test_time_augmentation"):
            ModelManifest.from_dict(data)


def test_tta_follows_the_manifest_axes(sphere_model):
    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", threads=1)
    predictor.manifest.test_time_augmentation = {"mirror_axes": ["z"]}
    image = make_sphere_image((24, 24, 24), radius_mm=10)
    result = predictor.segment(volume_from_sitk([image], channel_names=["CT"]), depth=2, tta=True)
    assert result.info["tta"] == {"mirror_axes": ["z"], "passes": 2}


@pytest.mark.parametrize("task", ["liver", "brain-tumor", "lung-nodule"])
def test_shipped_models_record_the_measured_tta_gain_and_cost(repo_root, task):
    manifest = ModelManifest.load(
        repo_root / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models" / task
    )
    tta = manifest.validation["tta"]
    assert tta["command"].startswith("python scripts/evaluate_review.py " + task)
    assert tta["cases"] and tta["per_depth"]
    for row in tta["per_depth"].values():
        assert set(row) >= {"dice", "dice_tta", "seconds", "seconds_tta"}
        assert row["seconds_tta"] > 0 and row["seconds"] > 0
    axes = mirror_axes(manifest.test_time_augmentation)
    assert tta["mirror_axes"] == list(axes)
    if task == "liver":  # the abdomen is not left-right symmetric: no left-right mirroring
        assert axes == ("y", "z")

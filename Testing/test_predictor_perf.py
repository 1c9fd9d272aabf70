"""Predictor memory and speed measures: a class-by-class argmax, buffers reused across tiles."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import make_sphere_image, rotation_matrix
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest, save_model_package
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.engine.predictor import Predictor

SPHERE = Path(__file__).parent / "fixtures" / "sphere_model" / "model.json"


@pytest.fixture(scope="module")
def four_class_predictor(tmp_path_factory) -> Predictor:
    """A random-weight, four-class model (every class shows up somewhere)."""
    data = json.loads(SPHERE.read_text())
    data["network"]["out_channels"] = 4
    data["labels"] = [
        {**copy.deepcopy(data["labels"][0]), "value": v, "name": f"class {v}"} for v in (1, 2, 3)
    ]
    data["postprocess"] = {"largest_component": False}
    manifest = ModelManifest.from_dict(data)
    torch.manual_seed(3)
    network = UNetPlusPlus3D.from_config(manifest.network)
    folder = tmp_path_factory.mktemp("four-class")
    save_model_package(folder, network.state_dict(), manifest)
    return Predictor.from_manifest_path(folder / "model.json", device="cpu", threads=1)


def test_class_by_class_argmax_equals_the_argmax_of_all_probabilities(four_class_predictor):
    image = make_sphere_image(
        (30, 26, 22), spacing=(1.7, 2.3, 2.9), direction=rotation_matrix((20, -15, 30)), noise=40
    )
    volume = volume_from_sitk([image], channel_names=["CT"])
    streamed = four_class_predictor.segment(volume, depth=2)
    full = four_class_predictor.segment(volume, depth=2, return_probabilities=True)
    assert streamed.probabilities is None
    np.testing.assert_array_equal(streamed.labels.array, full.labels.array)
    np.testing.assert_array_equal(full.probabilities.array.argmax(axis=0), full.labels.array)
    assert set(np.unique(streamed.labels.array)) == {0, 1, 2, 3}
    assert streamed.labels.array.dtype == np.uint8


def test_repeated_runs_with_reused_buffers_are_identical(four_class_predictor):
    image = make_sphere_image((40, 40, 40), spacing=(2.0, 2.0, 2.0), noise=40, seed=1)
    volume = volume_from_sitk([image], channel_names=["CT"])
    first = four_class_predictor.segment(volume, depth=3, return_probabilities=True)
    second = four_class_predictor.segment(volume, depth=3, return_probabilities=True)
    assert first.info["device"] == "cpu"
    np.testing.assert_array_equal(first.probabilities.array, second.probabilities.array)


def test_a_second_call_reuses_the_packed_weights_of_the_first(sphere_model, monkeypatch):
    """A warm click repacks no weight for oneDNN (issue 14: ~0.2 s of each warm click)."""
    from UNetPlusPlusLib.engine import cpu_inference

    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", threads=1, executor="ours")
    image = make_sphere_image((24, 24, 24), spacing=(2.0, 2.0, 2.0), noise=40, seed=2)
    volume = volume_from_sitk([image], channel_names=["CT"])
    first = predictor.segment(volume, depth=2)
    packs = []
    original = cpu_inference.Workspace.packed

    def counting(self, conv, channels, input_shape):
        before = len(self._packed)
        result = original(self, conv, channels, input_shape)
        packs.append(len(self._packed) - before)
        return result

    monkeypatch.setattr(cpu_inference.Workspace, "packed", counting)
    second = predictor.segment(volume, depth=2)
    assert packs and sum(packs) == 0  # every convolution found its packed weight
    np.testing.assert_array_equal(first.labels.array, second.labels.array)

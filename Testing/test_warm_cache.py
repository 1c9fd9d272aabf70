"""`unetpp serve` keeps the last model and input volume, and reloads them when they change."""

from __future__ import annotations

import os

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.warm_cache import WarmCache


def test_the_volume_is_read_again_only_when_its_file_changes(tmp_path):
    path = tmp_path / "ct.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16)), str(path))
    cache = WarmCache()
    first = cache.volume([str(path)], ["CT"])
    assert cache.volume([str(path)], ["CT"]) is first
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((4, 5, 6), np.int16)), str(path))
    os.utime(path, ns=(0, os.stat(path).st_mtime_ns + 10**9))  # a later modification time
    again = cache.volume([str(path)], ["CT"])
    assert again is not first and again.array.max() == 1.0


def test_the_model_is_loaded_once_per_manifest_and_device(sphere_model):
    cache = WarmCache()
    manifest = ModelManifest.load(sphere_model)
    first = cache.predictor(manifest, "cpu", 1)
    assert cache.predictor(ModelManifest.load(sphere_model), "cpu", 1) is first
    assert cache.predictor(manifest, "cpu", 2) is not first


def test_input_checks_and_mr_statistics_are_computed_once_per_volume(monkeypatch):
    """A click checks and measures the whole volume once, not at every click (issue 14); the
    checks need no Predictor (the CLI runs them before importing torch)."""
    from types import SimpleNamespace

    from UNetPlusPlusLib.engine import sanity
    from UNetPlusPlusLib.engine.volume import Volume

    calls = []
    real = sanity.check_model_input
    monkeypatch.setattr(
        sanity,
        "check_model_input",
        lambda m, v, **k: calls.append(v) or real(m, v, **k) + ["borderline"],
    )
    channel = SimpleNamespace(name="T1", modality="MR", normalization={"kind": "mr"})
    manifest = SimpleNamespace(name="m", channels=[channel], path="m/model.json", sha256="0")
    array = np.zeros((1, 4, 5, 6), np.float32)
    array[0, 1:3, 1:4, 1:5] = [2.0, 4.0, 6.0, 8.0]
    array[0, 0, 0, :] = [1.5, 2.5, 3.5, 4.5, 5.5, 6.5]  # many values: not a label map
    volume = Volume(array, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), ("T1",))
    cache = WarmCache()
    assert cache.input_checks(manifest, volume) == ["borderline"] and len(calls) == 1
    norms = cache.channel_norms(manifest, volume)
    inside = array[array != 0].astype(np.float64)
    assert norms[0]["mean"] == inside.mean() and norms[0]["std"] == inside.std()  # non-zero voxels
    norms[0]["mean"] = -1.0  # a caller's change does not reach the cache
    assert cache.channel_norms(manifest, volume)[0]["mean"] == inside.mean()
    assert cache.input_checks(manifest, volume) == ["borderline"] and len(calls) == 1
    other = Volume(array.copy(), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), ("T1",))
    cache.input_checks(manifest, other)
    assert len(calls) == 2  # another volume is checked
    empty = Volume(np.zeros_like(array), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), np.eye(3), ("T1",))
    with pytest.raises(UNetPlusPlusError, match="empty"):
        cache.input_checks(manifest, empty)  # refusals reach the caller

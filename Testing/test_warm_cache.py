"""`unetpp serve` keeps the last model and input volume, and reloads them when they change."""

from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
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

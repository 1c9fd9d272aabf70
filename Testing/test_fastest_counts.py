"""The ``fastest`` executor says which executor ran how many of a run's tiles
(``info["tiles_by_executor"]``): its two executors agree on >= 99.99 % of voxels, not all, so
that is what explains two runs of one input differing in a few boundary voxels."""

from __future__ import annotations

import torch
from helpers import make_sphere_image
from UNetPlusPlusLib.engine import executors
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.predictor import Predictor


def _fastest_on_torch(predictor, monkeypatch) -> executors.FastestExecutor:
    """A fastest executor whose library is torch eager (always installed), probing at once."""
    monkeypatch.setattr(executors.FastestExecutor, "OURS_FIRST", 1)
    return executors.FastestExecutor(
        predictor.model, threads=1, candidate="torch", busy=lambda: False
    )


def test_fastest_counts_the_tiles_each_executor_returned(sphere_predictor, monkeypatch):
    fastest = _fastest_on_torch(sphere_predictor, monkeypatch)
    tile = torch.zeros(1, 1, 32, 32, 32)
    ran = []
    with torch.no_grad():
        for _ in range(10):
            fastest.run(tile, 2)
            ran.append(fastest.chosen)
    assert "torch" in ran  # the probe ran the library
    assert dict(fastest.tiles_by_executor) == {name: ran.count(name) for name in set(ran)}
    fastest.run(torch.zeros(2, 1, 32, 32, 32), 2)  # a pass of two tiles counts two
    assert sum(fastest.tiles_by_executor.values()) == len(ran) + 2


def test_a_segmentation_reports_its_own_tiles_per_executor(sphere_model, monkeypatch):
    image = make_sphere_image((40, 36, 30), spacing=(2.0, 2.0, 2.0), radius_mm=12, noise=10)
    volume = volume_from_sitk([image], channel_names=["CT"])
    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", threads=1)
    predictor.executor = _fastest_on_torch(predictor, monkeypatch)
    first = predictor.segment(volume, depth=2).info
    second = predictor.segment(volume, depth=2).info  # the same executor: counts are per run
    assert first["executor"] == "fastest"
    tiles = sum(first["tiles_by_executor"].values())
    assert tiles >= 2
    assert sum(second["tiles_by_executor"].values()) == tiles
    totals = predictor.executor.tiles_by_executor
    assert sum(totals.values()) == 2 * tiles
    assert set(first["tiles_by_executor"]) <= {"ours", "torch"}


def test_other_executors_report_no_counts(sphere_model):
    image = make_sphere_image((40, 36, 30), spacing=(2.0, 2.0, 2.0), radius_mm=12, noise=10)
    volume = volume_from_sitk([image], channel_names=["CT"])
    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", threads=1, executor="ours")
    assert "tiles_by_executor" not in predictor.segment(volume, depth=2).info

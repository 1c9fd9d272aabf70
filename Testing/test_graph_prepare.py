"""Graphs prepared before the first segmentation (engine/graph_prepare.py, `unetpp models
prepare`, the step after `unetpp models install`): the first segmentation finds them and the
probe's choice, exports and compiles nothing; damaged or foreign cache files are rebuilt."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers import make_sphere_image
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import executor_backends, executors, fastest, graph_prepare, probe
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.onnx_export import graph_cache_dir
from UNetPlusPlusLib.engine.predictor import Predictor

pytestmark = pytest.mark.skipif(
    "openvino" not in executors.available_executors(), reason="OpenVINO is not installed"
)
DEPTHS = ["L1", "L2", "L3", "L4"]


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    """A fresh user cache; the probe decides "ours" after 2 pairs whatever the timings (its
    rule is tested in test_probe.py), and the 1-minute load average reads the same at the
    preparation as at the first run (a remembered choice is trusted at about the load it was
    made at, ``ProbeMemory.same_load``; under ``-n 2`` the real load moved between the two and
    the first run probed again), so what the first run does is deterministic."""
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    monkeypatch.setattr(probe, "load_average", lambda: 1.0)
    monkeypatch.setattr(
        executors.FastestExecutor,
        "decide",
        staticmethod(lambda ours, library: "ours" if min(len(ours), len(library)) >= 2 else None),
    )
    return tmp_path / "home"


@pytest.fixture(scope="module")
def long_volume():
    """A volume of 48 tiles of 32^3 (24 passes of 2): more than ``OURS_FIRST`` passes, so an
    unprepared first run makes OpenVINO's graph during the run."""
    image = make_sphere_image((96, 96, 64), spacing=(2.0, 2.0, 2.0), radius_mm=14, noise=10)
    return volume_from_sitk([image], channel_names=["CT"])


def _files(folder: Path) -> dict:
    """Every file under ``folder`` but probe.json: path -> (inode, mtime ns, size)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "probe.json":
            info = path.stat()
            out[str(path.relative_to(folder))] = (info.st_ino, info.st_mtime_ns, info.st_size)
    return out


def _first_run(sphere_model, volume):
    predictor = Predictor.from_manifest_path(sphere_model, device="cpu", threads=2)
    predictor.segment(volume, depth="auto")
    return predictor.executor


def test_the_first_segmentation_uses_the_prepared_graphs_and_choice(
    sphere_model, long_volume, monkeypatch
):
    manifest = ModelManifest.load(sphere_model)
    folder = graph_cache_dir(manifest.sha256)
    tile_shape = tuple(graph_prepare.probe_tile(manifest).shape)
    assert tile_shape == (2, 1, 32, 32, 32)  # the batch and tile a CPU segmentation runs

    # unprepared: the run itself exports and compiles OpenVINO's graph of its depth (L3)
    unprepared = _first_run(sphere_model, long_volume)
    assert (folder / "L3.onnx").is_file() and unprepared.tiles_by_executor["openvino"] > 0
    shutil.rmtree(folder)

    report = graph_prepare.prepare_model(manifest, threads=2)
    assert report.exported == DEPTHS and not (report.kept or report.rebuilt or report.failed)
    assert (report.probe_depth, report.pick) == (3, "ours")
    assert (folder / "probe.json").is_file() and list((folder / "openvino").glob("*/*.blob"))
    prepared = _files(folder)

    first = _first_run(sphere_model, long_volume)
    assert first.picked(tile_shape, 3) == "ours"  # the remembered choice, from the first tile
    assert first._library is None  # OpenVINO not even made: no export, no compile
    assert set(first.tiles_by_executor) == {"ours"}
    assert _files(folder) == prepared  # no graph or compiled blob written or replaced

    # the choice is kept per OpenVINO version: after an upgrade the first run probes again
    version = executor_backends.library_version("openvino")
    remembered = json.loads((folder / "probe.json").read_text())
    assert list(remembered) == [f"openvino@{version}:L3:2x1x32x32x32:t2"]
    monkeypatch.setattr(fastest, "library_version", lambda name: version + ".1")
    upgraded = _first_run(sphere_model, long_volume)
    assert upgraded._library is not None and upgraded.tiles_by_executor["openvino"] > 0


def test_preparing_again_checks_and_rebuilds_damaged_or_foreign_files(sphere_model):
    manifest = ModelManifest.load(sphere_model)
    folder = graph_prepare.prepare_model(manifest, threads=2, probe=False).folder
    (folder / "L2.onnx").write_bytes(b"not a graph")  # damaged
    shutil.copyfile(folder / "L1.onnx", folder / "L3.onnx")  # compiles, but another graph
    blobs = sorted((folder / "openvino").glob("*/*.blob"))
    for blob in blobs:  # OpenVINO's compiled blobs cut short (read-only as it writes them)
        blob.chmod(0o600)
        with open(blob, "r+b") as stream:
            stream.truncate(16)
    old, fresh = folder / ".export-old.onnx", folder / ".export-live.onnx"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    stale = time.time() - 2 * graph_prepare.STALE_TEMPORARY_S
    os.utime(old, (stale, stale))

    report = graph_prepare.prepare_model(manifest, threads=2, probe=False)
    assert report.kept == ["L1", "L4"] and report.rebuilt == ["L2", "L3"]
    assert not report.failed and report.pick is None
    assert report.removed_temporaries == 1 and not old.exists() and fresh.exists()
    assert all(blob.stat().st_size > 1000 for blob in (folder / "openvino").glob("*/*.blob"))

    model = Predictor.from_manifest_path(sphere_model, device="cpu", threads=2).model
    tile = graph_prepare.probe_tile(manifest, seed=1)
    with torch.inference_mode():
        for depth in (2, 3):  # depth=k is head k again, through the rebuilt graphs
            ours = executors.OursExecutor(model, 2).run(tile, depth)
            graph = executors.OpenVinoExecutor(model, 2, weights_sha256=manifest.sha256)
            assert graph_prepare.graph_agrees(graph.run(tile, depth), ours)
        wrong = executors.OursExecutor(model, 2).run(tile, 1)
        assert not graph_prepare.graph_agrees(wrong, ours)  # the check tells depths apart


def test_install_prepares_the_model_unless_told_not_to(sphere_model, home, tmp_path, capsys):
    package = tmp_path / "pkg"
    shutil.copytree(Path(sphere_model).parent, package)
    sha256 = ModelManifest.load(sphere_model).sha256
    assert main(["models", "install", "--no-prepare", str(package)]) == 0
    assert not (home / "graphs" / sha256).exists()
    assert main(["models", "remove", "sphere-test"]) == 0
    capsys.readouterr()

    assert main(["models", "install", str(package)]) == 0
    out = capsys.readouterr().out
    assert "preparing sphere-test" in out and "graphs exported L1, L2, L3, L4" in out
    folder = graph_cache_dir(sha256)
    assert sorted(p.name for p in folder.glob("*.onnx")) == [f"{d}.onnx" for d in DEPTHS]
    assert "ours" in (folder / "probe.json").read_text()


def test_install_with_a_graph_cache_that_cannot_be_written_warns_once_and_installs(
    sphere_model, home, tmp_path, capsys
):
    """The warning says what segmentations do (the built-in CPU path), not that "its first
    segmentation prepares them", which it cannot where the cache cannot be written (before:
    both, the first in parentheses inside the second)."""
    package = tmp_path / "pkg"
    shutil.copytree(Path(sphere_model).parent, package)
    home.mkdir(parents=True)
    (home / "graphs").write_text("a file where the graph folder goes")
    assert main(["models", "install", str(package)]) == 0
    err = capsys.readouterr().err
    assert err.count("warning: ") == 1, err
    assert "sphere-test is installed, but its graphs could not be prepared: OpenVINO's graph" in err
    assert err.rstrip().endswith("segmentations run on the built-in CPU path meanwhile.")
    assert "first segmentation prepares" not in err
    assert (home / "models" / "sphere-test" / "model.json").is_file()


def test_prepare_names_what_it_did_and_skips_without_openvino_in_use(
    sphere_model, home, monkeypatch, capsys
):
    monkeypatch.setenv("UNETPP_EXECUTOR", "ours")
    assert main(["models", "prepare", str(sphere_model)]) == 0
    out = capsys.readouterr().out
    assert out == (
        "sphere-test: nothing to prepare (segmentations run on the ours executor, not OpenVINO)\n"
    )
    assert not (home / "graphs").exists()
    assert main(["models", "prepare", "no-such-model"]) == 2
    captured = capsys.readouterr()
    assert "no-such-model" in captured.err and "Traceback" not in captured.err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc (Linux)")
def test_a_graph_cache_that_cannot_be_written_is_one_clear_error(sphere_model, monkeypatch, capsys):
    monkeypatch.setenv("UNETPP_HOME", "/proc/unetpp-test-home")  # mkdir fails, even as root
    assert main(["models", "prepare", str(sphere_model)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith(
        "sphere-test: not prepared: OpenVINO's graph of depth L1 could not be exported or "
        "compiled in /proc/unetpp-test-home/graphs/"
    )
    assert "segmentations run on the built-in CPU path meanwhile." in captured.out
    assert captured.err == "error: 1 of 1 model(s) not prepared: sphere-test.\n"

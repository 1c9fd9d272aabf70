"""The module's background preparation (adapter/background_prepare.py) with real processes: one
model at a time, at the lowest priority, through a PythonSlicer-like launcher; killed with its
tree by shutdown, leaving no stamp and no partial graph; and the graph cache shared by two
preparing processes and a segmentation running at the same time."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from helpers import make_sphere_image
from launcher import alive, descendants, living, make_launcher, wait_for_descendant
from UNetPlusPlusLib.adapter.background_prepare import BackgroundPrepare
from UNetPlusPlusLib.adapter.process import child_environment
from UNetPlusPlusLib.engine import executors, prepare_stamp
from UNetPlusPlusLib.engine.cpu_cores import default_thread_count
from UNetPlusPlusLib.engine.manifest import ModelManifest, load_weights, save_model_package
from UNetPlusPlusLib.engine.onnx_export import graph_cache_dir

pytestmark = [
    pytest.mark.skipif(
        "openvino" not in executors.available_executors(), reason="OpenVINO is not installed"
    ),
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc (Linux)"),
]
PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "UNetPlusPlus"
TIMEOUT_S = 600.0  # generous: the machine is shared; no timing is asserted


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    return tmp_path / "home"


def _other_model(sphere_model: Path, folder: Path) -> ModelManifest:
    """The sphere model with its weights changed slightly: another sha256, another graph folder."""
    manifest = ModelManifest.load(sphere_model)
    weights = load_weights(manifest)
    weights = {k: v * 1.01 if v.is_floating_point() else v for k, v in weights.items()}
    manifest = ModelManifest.from_dict({**manifest.to_dict(), "name": "sphere-two"})
    return save_model_package(folder, weights, manifest)


def _niceness(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text()
    return int(fields[fields.rindex(")") + 2 :].split()[16])


def _preparing_groups() -> set[int]:
    """Process groups of this test's living descendants that run `models prepare`."""
    groups = set()
    for pid in descendants(os.getpid()):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if b"prepare" in command and b"models" in command:
                groups.add(os.getpgid(pid))
        except OSError:
            continue
    return groups


def _complete_graphs(folder: Path) -> list[str]:
    """The names of the graphs in ``folder``, each checked as a whole ONNX model."""
    import onnx

    names = []
    for path in sorted(folder.glob("L*.onnx")):
        onnx.checker.check_model(onnx.load(str(path)))
        names.append(path.name)
    return names


def _threads() -> int:
    return default_thread_count(child_environment())


def test_models_are_prepared_one_at_a_time_at_the_lowest_priority(sphere_model, tmp_path):
    one = ModelManifest.load(sphere_model)
    two = _other_model(sphere_model, tmp_path / "two")
    preparation = BackgroundPrepare(python=make_launcher(tmp_path))
    assert preparation.request([one, two, one]) == ["sphere-test", "sphere-two"]
    assert preparation.started == 1 and preparation.busy
    group = wait_for_descendant(preparation.pid)  # the launcher and the real interpreter
    assert {_niceness(pid) for pid in group} == {19}
    assert preparation.request([two]) == []  # waiting already

    lines, deadline = [], time.monotonic() + TIMEOUT_S
    while preparation.busy:
        assert len(_preparing_groups()) <= 1  # never two preparations at once
        lines += preparation.poll()
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    assert preparation.started == 2
    assert any(line.startswith("sphere-test: graphs exported L1, L2, L3, L4") for line in lines)
    assert any(line.startswith("sphere-two: graphs exported L1, L2, L3, L4") for line in lines)
    for manifest in (one, two):
        assert prepare_stamp.is_prepared(manifest.sha256, _threads())
        assert _complete_graphs(graph_cache_dir(manifest.sha256)) == [
            "L1.onnx", "L2.onnx", "L3.onnx", "L4.onnx"
        ]  # fmt: skip
    assert not living(group)
    assert preparation.request([one, two]) == [] and preparation.started == 2  # prepared


def test_shutdown_kills_the_tree_and_leaves_no_stamp_and_no_partial_graph(sphere_model, tmp_path):
    manifest = ModelManifest.load(sphere_model)
    folder = graph_cache_dir(manifest.sha256)
    preparation = BackgroundPrepare(python=make_launcher(tmp_path))
    assert preparation.request([manifest]) == ["sphere-test"]
    group = wait_for_descendant(preparation.pid)
    deadline = time.monotonic() + TIMEOUT_S
    while not (list(folder.glob(".export-*")) or list(folder.glob("L*.onnx"))):
        assert time.monotonic() < deadline and preparation.busy, preparation.poll()
        time.sleep(0.005)
    preparation.shutdown()  # mid-export or just after a graph: the whole tree goes
    deadline = time.monotonic() + 30
    while living(group):
        assert time.monotonic() < deadline, "the preparation outlived shutdown"
        time.sleep(0.05)
    assert not preparation.busy and preparation.request([manifest]) == []
    assert not (folder / prepare_stamp.STAMP_FILE).exists()
    assert not prepare_stamp.is_prepared(manifest.sha256, _threads())
    kept = _complete_graphs(folder)  # whatever was renamed into place is whole

    again = BackgroundPrepare(python=make_launcher(tmp_path))
    assert again.request([manifest]) == ["sphere-test"]
    deadline = time.monotonic() + TIMEOUT_S
    while again.busy:
        again.poll()
        assert time.monotonic() < deadline, again.log
        time.sleep(0.05)
    assert prepare_stamp.is_prepared(manifest.sha256, _threads()), again.log
    assert set(kept) <= set(_complete_graphs(folder)) and len(_complete_graphs(folder)) == 4


def test_two_preparations_and_a_segmentation_share_the_graph_cache(sphere_model, tmp_path):
    image = make_sphere_image((96, 96, 64), spacing=(2.0, 2.0, 2.0), radius_mm=14, noise=10)
    source = tmp_path / "ct.nrrd"
    sitk.WriteImage(image, str(source))
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    cli = [sys.executable, "-m", "UNetPlusPlusLib.cli"]
    prepare = [*cli, "models", "prepare", str(sphere_model)]
    labels = tmp_path / "labels.nrrd"
    segment = [*cli, "segment", str(source), "--model", str(sphere_model), "--depth", "3"]
    segment += ["--labelmap", str(labels), "--quiet"]
    processes = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in (prepare, prepare, segment)
    ]
    outputs = [process.communicate(timeout=TIMEOUT_S) for process in processes]
    for process, (_out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
        assert "Traceback" not in err
    for out, _err in outputs[:2]:
        assert out.startswith("sphere-test: ")
    manifest = ModelManifest.load(sphere_model)
    folder = graph_cache_dir(manifest.sha256)
    assert _complete_graphs(folder) == ["L1.onnx", "L2.onnx", "L3.onnx", "L4.onnx"]
    assert prepare_stamp.is_prepared(manifest.sha256, default_thread_count(env))
    assert not list(folder.glob(".export-*")) and not list(folder.glob(".stamp-*"))

    result = sitk.ReadImage(str(labels))
    assert result.GetSize() == image.GetSize() and result.GetOrigin() == image.GetOrigin()
    assert np.count_nonzero(sitk.GetArrayFromImage(result)) > 1000  # the ball was found
    assert not any(alive(p.pid) for p in processes)


def test_the_logic_prepares_the_shipped_models_once_and_again_after_shutdown(
    sphere_model, tmp_path, monkeypatch
):
    pytest.importorskip("slicer")
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic
    from UNetPlusPlusLib.engine import model_search

    monkeypatch.setattr(model_search, "builtin_models_dir", lambda: sphere_model.parent.parent)
    assert [m.name for m in model_search.builtin_manifests()] == ["sphere-test"]
    logic = SegmentationLogic(python=make_launcher(tmp_path))
    assert logic.prepare_builtins() == ["sphere-test"] and logic.preparing
    assert logic.prepare_builtins() == []  # once
    group = wait_for_descendant(logic._prepare.pid)
    logic.shutdown()  # scene close or exit: the tree goes, nothing waits
    deadline = time.monotonic() + 30
    while living(group):
        assert time.monotonic() < deadline, "the preparation outlived shutdown"
        time.sleep(0.05)
    assert not logic.preparing and logic.poll_preparation() == []

    assert logic.prepare_builtins() == ["sphere-test"]  # asked for again after shutdown
    lines, deadline = [], time.monotonic() + TIMEOUT_S
    while logic.preparing:
        lines += logic.poll_preparation()
        assert time.monotonic() < deadline, lines
        time.sleep(0.05)
    assert any(line.startswith("sphere-test: graphs exported") for line in lines), lines
    manifest = ModelManifest.load(sphere_model)
    assert logic.prepare_models([manifest]) == []  # stamped: nothing to do
    logic.shutdown()


def test_the_panel_prepares_on_entering_after_install_and_stops_with_the_module():
    from test_ui import _method_calls

    panel = _method_calls("UNetPlusPlusPanel")
    assert "self.setupPreparation()" in panel["setup"]
    assert "self.prepareModelsInBackground()" in panel["enter"]
    assert "self.prepareModelsInBackground()" in panel["onSceneEndClose"]
    assert "self.stopPreparationTimer()" in panel["cleanup"]
    assert "self.shutdownLogic()" in panel["onAboutToQuit"]  # kills the preparation too
    training = _method_calls("TrainingControl")
    assert "self.prepareModelsInBackground([manifest])" in training["onModelInstalled"]
    control = _method_calls("PrepareControl")
    assert "self.logic.prepareBuiltInModels()" in control["prepareModelsInBackground"]
    assert "self._prepareTimer.stop()" in control["onPollPreparation"]

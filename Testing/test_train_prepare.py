"""`unetpp train` prepares the model it wrote at the end (cli_prepare.prepare_trained), so the
install (CLI or the Slicer panel's) finds it prepared; `--no-prepare` leaves it out; nothing is
prepared where segmentations do not use OpenVINO."""

from __future__ import annotations

import json

import pytest
from test_fine_tune import TINY
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine import executors, prepare_stamp
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.training.cli import main as train_main

pytestmark = pytest.mark.skipif(
    "openvino" not in executors.available_executors(), reason="OpenVINO is not installed"
)


@pytest.fixture()
def cases(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    return write_slicer_dataset(tmp_path / "cases", cases=4, segments=("liver",))


def test_train_prepares_its_model_and_install_finds_it_prepared(
    cases, sphere_model, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    out = tmp_path / "tuned"
    args = [str(cases), "-o", str(out), "--init", str(sphere_model), *TINY, "--progress-json"]
    assert train_main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    manifest = ModelManifest.load(out)
    assert f"preparing {manifest.name} for its first segmentation (once) ..." in lines
    assert any(x.startswith(f"{manifest.name}: graphs exported L1, L2, L3, L4") for x in lines)
    result = json.loads(lines[-1])["result"]
    assert result["model_dir"] == str(out) and result["prepare_s"] > 0
    assert prepare_stamp.is_prepared(manifest.sha256)

    assert main(["models", "install", str(out)]) == 0  # the installed copy: the same weights
    assert f"{manifest.name}: already prepared" in capsys.readouterr().out.splitlines()


def test_no_prepare_and_an_executor_without_openvino_prepare_nothing(
    cases, sphere_model, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    out = tmp_path / "unprepared"
    args = [str(cases), "-o", str(out), "--init", str(sphere_model), *TINY, "--progress-json"]
    assert train_main([*args, "--no-prepare"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[-1])["result"]
    assert "prepare_s" not in result
    assert not (tmp_path / "home" / "graphs").exists()

    monkeypatch.setenv("UNETPP_EXECUTOR", "ours")
    assert train_main([*args, "--overwrite"]) == 0
    assert "preparing" not in capsys.readouterr().out
    assert not (tmp_path / "home" / "graphs").exists()


def test_the_panels_training_installs_a_prepared_model(cases, sphere_model, tmp_path, monkeypatch):
    """The panel's fine-tune (a launcher-started `unetpp train`, then the install in the
    module's process): the training process prepared the graphs, so the install says so and
    the module has nothing to prepare in the background."""
    from launcher import make_launcher
    from UNetPlusPlusLib.adapter.background_prepare import BackgroundPrepare
    from UNetPlusPlusLib.adapter.training_job import TrainingJob

    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)
    parent = ModelManifest.load(sphere_model)
    tiny = [x for x in TINY if x not in ("--labels", "liver", "--no-progress")]
    job = TrainingJob(
        cases, init=parent, labels=["liver"], device="cpu", name="sphere-mine",
        python=make_launcher(tmp_path), extra_args=tiny,
    )  # fmt: skip
    job.start()
    events = job.wait(timeout=600)
    assert job.state == "succeeded", (job.error, job.log[-5:])
    assert "Installed sphere-mine" in events[-1].message
    assert "Prepared for its first segmentation in " in events[-1].message
    assert prepare_stamp.is_prepared(job.installed.sha256)
    assert BackgroundPrepare(python=make_launcher(tmp_path)).request([job.installed]) == []

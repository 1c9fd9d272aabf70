"""Fine-tuning from a shipped-like model keeps its settings; install puts it beside its parent.

Issue 12, CLI path: ``unetpp train --init <task | model.json>`` then ``unetpp models install``.
Tiny runs from the sphere fixture model (Testing/fixtures/sphere_model): 24^3 synthetic cases,
one iteration at learning rate 1e-12 (--lr must be > 0), so the weights stay the parent's (to
within 1e-9) and still segment a ball.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_training_dataset import SIZE, _image, ball, write_slicer_dataset
from UNetPlusPlusLib import cli
from UNetPlusPlusLib.engine import model_search, registry
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.cli import main as train_main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

POSTPROCESS = {"largest_component": True}
TTA = {"mirror_axes": ["y", "z"]}  # e.g. the liver: a left-right mirror is not anatomy
TINY = ["--labels", "liver", "--epochs", "1", "--iterations-per-epoch", "1", "--lr", "1e-12"]
TINY += ["--batch-size", "1", "--no-progress", "--no-augment", "--threads", "1"]
TINY += ["--precision", "fp32", "--max-val-cases", "1"]


@pytest.fixture(scope="module")
def parent_dir(sphere_model, tmp_path_factory):
    """A copy of the sphere model with post-processing set, in its own models folder."""
    folder = tmp_path_factory.mktemp("shipped") / "sphere-test"
    shutil.copytree(sphere_model.parent, folder)
    data = json.loads((folder / "model.json").read_text())
    data["postprocess"] = POSTPROCESS
    data["test_time_augmentation"] = TTA
    (folder / "model.json").write_text(json.dumps(data, indent=2))
    return folder


@pytest.fixture()
def models_env(parent_dir, tmp_path, monkeypatch):
    """The parent found as a model (UNETPP_MODELS) and as the only shipped one; a fresh user
    model folder (UNETPP_HOME)."""
    monkeypatch.setenv("UNETPP_MODELS", str(parent_dir.parent))
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(model_search, "builtin_models_dir", lambda: parent_dir.parent)
    return tmp_path / "home" / "models"


@pytest.fixture(scope="module")
def tuned(parent_dir, tmp_path_factory):
    """A fine-tune started from the parent's model.json on four exported cases."""
    root = tmp_path_factory.mktemp("tune")
    data = write_slicer_dataset(root / "cases", cases=4, segments=("liver",))
    out = root / "tuned"
    assert train_main([str(data), "-o", str(out), "--init", str(parent_dir), *TINY]) == 0
    return out


def test_fine_tune_on_other_labels_takes_the_datasets_task(parent_dir, tmp_path):
    """Tester 6: `train --init liver` on LIDC nodules wrote a 'nodule' model with task 'liver',
    listed (and offered in Slicer) under the liver task. New labels: the dataset's task."""
    data = write_slicer_dataset(tmp_path / "nodules", cases=4, segments=("nodule",))
    tiny = [*TINY]
    tiny[tiny.index("liver")] = "nodule"
    out = tmp_path / "tuned"
    assert train_main([str(data), "-o", str(out), "--init", str(parent_dir), *tiny]) == 0
    child = ModelManifest.load(out / "model.json")
    assert [label.name for label in child.labels] == ["nodule"]
    assert child.task == "nodules" != ModelManifest.load(parent_dir / "model.json").task


def test_fine_tune_keeps_the_parents_settings_and_records_its_origin(parent_dir, tuned):
    parent = ModelManifest.load(parent_dir / "model.json")
    child = ModelManifest.load(tuned / "model.json")
    assert child.postprocess == POSTPROCESS  # was {} before issue 12
    assert child.test_time_augmentation == TTA  # all three axes before issue 11's retrain
    assert child.prompt == parent.prompt
    assert child.channels[0].normalization == parent.channels[0].normalization
    # the export's segment carries a tumour code; the parent's liver code is kept
    assert child.labels[0].terminology == parent.labels[0].terminology
    assert child.labels[0].color == parent.labels[0].color
    assert child.task == parent.task and child.name == "sphere-test-ft-cases"
    origin = child.training["fine_tuned_from"]
    assert origin["name"] == "sphere-test" and origin["sha256"] == parent.sha256
    assert child.training["dataset"] == "cases" and child.training["training_seconds"] > 0
    assert set(child.validation["per_depth"]) >= {"1", "2", "3", "4"}
    card = (tuned / "CARD.md").read_text()
    assert "fine-tuned from sphere-test" in card and "| L1 |" in card


def test_init_takes_a_task_name(models_env, tuned, tmp_path):
    out = tmp_path / "by-name"
    data = tuned.parent / "cases"
    args = [str(data), "-o", str(out), "--init", "sphere-test", "--name", "mine", *TINY]
    args += ["--cache-dir", str(tuned / "cache")]
    assert train_main(args) == 0
    child = ModelManifest.load(out / "model.json")
    assert child.name == "mine" and child.postprocess == POSTPROCESS
    assert child.training["fine_tuned_from"]["name"] == "sphere-test"


def test_unknown_init_is_one_error_line(models_env, tuned, tmp_path, capsys):
    args = [str(tuned.parent / "cases"), "-o", str(tmp_path / "x"), "--init", "spleen", *TINY]
    assert train_main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No model for 'spleen'") and "sphere-test" in err
    assert not (tmp_path / "x").exists()


def test_install_lists_it_next_to_its_parent_and_it_segments(models_env, tuned, capsys):
    assert cli.main(["models", "install", "--no-prepare", str(tuned)]) == 0
    assert (models_env / "sphere-test-ft-cases" / "model.json").is_file()
    kept = {p.name for p in (models_env / "sphere-test-ft-cases").iterdir()}
    assert {"CARD.md", "train.log", "weights.safetensors"} <= kept
    assert not kept & {"cache", "checkpoint"}  # training state stays out of the install
    names = [m.name for m in registry.list_models()]
    assert names.index("sphere-test-ft-cases") == names.index("sphere-test") + 1
    assert registry.find_model("sphere-test").name == "sphere-test"  # the task keeps the parent
    capsys.readouterr()
    assert cli.main(["models", "list"]) == 0
    assert "fine-tuned from sphere-test" in capsys.readouterr().out
    installed = registry.find_model("sphere-test-ft-cases")
    array = np.zeros((SIZE,) * 3, np.float32)
    truth = ball((12, 12, 12), radius=6)
    array[truth] = 300.0
    result = Predictor(installed, device="cpu", threads=1).segment(
        volume_from_sitk([_image(array)])
    )
    found = result.labels.array == 1
    dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
    assert dice > 0.8


def test_install_refuses_a_shipped_name_and_leaves_nothing(models_env, tuned, tmp_path):
    clash = tmp_path / "clash"
    shutil.copytree(tuned, clash, ignore=shutil.ignore_patterns("cache", "checkpoint"))
    data = json.loads((clash / "model.json").read_text())
    data["name"] = "sphere-test"
    (clash / "model.json").write_text(json.dumps(data))
    with pytest.raises(UNetPlusPlusError, match="like a shipped model"):
        registry.install_model(str(clash))
    assert not [p for p in models_env.iterdir() if p.name != ".lock"]
    assert cli.main(["models", "install", "--no-prepare", str(clash)]) == 2


def test_install_refuses_tampered_weights(models_env, tuned, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tuned, bad, ignore=shutil.ignore_patterns("cache", "checkpoint"))
    weights = bad / "weights.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(UNetPlusPlusError, match="sha256"):
        registry.install_model(str(bad))
    assert not (models_env / "sphere-test-ft-cases").exists()


def test_progress_json_reports_epochs_dice_and_the_result(tuned, tmp_path, capsys):
    out = tmp_path / "json"
    args = ["train", str(tuned.parent / "cases"), "-o", str(out), "--init", str(tuned.parent)]
    args[-1] = str(tuned)  # start from the fine-tuned package itself: any package works
    args += [*TINY, "--epochs", "2", "--val-every", "2", "--progress-json"]
    args += ["--cache-dir", str(tuned / "cache")]
    assert cli.main(args) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    epochs = [x for x in lines if x.get("stage") == "epoch"]
    assert [(x["done"], x["total"]) for x in epochs] == [(1, 2), (2, 2)]
    assert all(isinstance(x["loss"], float) and x["eta_s"] >= 0 for x in epochs)
    assert "dice" not in epochs[0] and set(epochs[1]["dice"]) >= {"1", "2", "3", "4"}
    assert lines[-1]["result"]["model_dir"] == str(out)
    assert lines[-1]["result"]["name"] == "sphere-test-ft-cases-ft-cases"


def test_cancel_file_stops_training_and_leaves_no_model(tuned, tmp_path, capsys):
    cancel = tmp_path / "cancel"
    cancel.touch()
    out = tmp_path / "cancelled"
    args = ["train", str(tuned.parent / "cases"), "-o", str(out), "--init", str(tuned), *TINY]
    args += ["--cache-dir", str(tuned / "cache"), "--cancel-file", str(cancel)]
    assert cli.main(args + ["--progress-json"]) == 3
    assert not out.exists()
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {
        "error": "Cancelled by the user."
    }

"""The training loop: the loss falls, resume is exact, the package segments through the engine.

Tiny runs: four synthetic 24^3 cases (a bright ball), widths (4, 8, 16, 32, 64, 4), 32^3 tiles,
a handful of iterations.
"""

from __future__ import annotations

import argparse
import json
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from safetensors.torch import load_file
from test_training_dataset import SIZE, _image, ball, write_slicer_dataset
from UNetPlusPlusLib.engine.image_read import volume_from_sitk
from UNetPlusPlusLib.engine.manifest import ModelManifest
from UNetPlusPlusLib.engine.predictor import Predictor
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.resources import builtin_datasets_dir
from UNetPlusPlusLib.training import trainer as trainer_module
from UNetPlusPlusLib.training.cli import add_train_arguments, main, run_train
from UNetPlusPlusLib.training.validation import recommend_depth

DATASETS = builtin_datasets_dir()  # UNetPlusPlusLib/Resources/Datasets (package data)

TINY = [
    "--labels", "tumor", "--tile", "32", "32", "32", "--features", "4", "8", "16", "32", "64",
    "4", "--batch-size", "2", "--lr", "0.003", "--no-progress", "--threads", "1",
    "--precision", "fp32",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_slicer_dataset(tmp_path_factory.mktemp("slicer") / "data", cases=4)


CURVES: list = []  # the epochs of each training_curve.png the `trained` run drew


def drawing_spy(patch: pytest.MonkeyPatch, every_s: float) -> list:
    """The epochs each drawing of the training curve shows, with the curve redrawn at most
    every ``every_s`` seconds (and after the last epoch)."""
    drawn: list = []
    real = trainer_module.plot_history

    def counting(history, path):
        drawn.append([h["epoch"] for h in history])
        return real(history, path)

    patch.setattr(trainer_module, "plot_history", counting)
    patch.setattr(trainer_module, "CURVE_EVERY_S", every_s)
    return drawn


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "model"
    args = [str(data_dir), "-o", str(out), *TINY, "--epochs", "4", "--iterations-per-epoch", "6"]
    with pytest.MonkeyPatch.context() as patch:  # epochs far shorter than the redraw interval
        drawn = drawing_spy(patch, every_s=1e9)
        assert main(args + ["--val-every", "2"]) == 0
    CURVES[:] = drawn
    return out


def test_a_few_iterations_lower_the_loss(trained):
    history = json.loads((trained / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["loss"] < 0.93 * history[0]["loss"]
    assert "validation" in history[1] and "validation" not in history[0]
    assert (trained / "training_curve.png").stat().st_size > 1000
    assert "epoch 4/4" in (trained / "train.log").read_text()


def test_validations_before_the_last_score_every_depth_from_one_pass(trained):
    """Epoch 2's validation gets all depths from one pass per tile (no per-depth seconds); the
    last one, which the manifest records, runs and times each depth on its own."""
    lines = [x for x in (trained / "train.log").read_text().splitlines() if "validation on" in x]
    assert len(lines) == 2
    assert "L1=" in lines[0] and "s/case" not in lines[0]
    assert all(f"L{k}=" in lines[1] for k in (1, 2, 3, 4, "ensemble"))
    assert lines[1].count("s/case") == 5


def test_short_epochs_draw_the_curve_once_after_the_last(trained):
    """A drawing costs 0.2-0.4 s of CPU: epochs shorter than CURVE_EVERY_S do not each redraw
    it, and the last epoch always does (test_resume_continues_bit_for_bit: every epoch when the
    interval has passed)."""
    assert CURVES == [[1, 2, 3, 4]]


def test_the_training_curve_keeps_its_labels_inside_the_figure(trained, tmp_path, monkeypatch):
    """The curve has fixed margins (tight_layout drew every epoch's figure twice): its axes,
    tick and axis labels and legend must still lie inside the image."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from UNetPlusPlusLib.training.package import plot_history

    saved: list = []
    real_savefig = Figure.savefig

    def keep(figure, path, **kwargs):
        saved.append(figure)
        return real_savefig(figure, path, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    history = json.loads((trained / "history.json").read_text())
    long = [dict(h, epoch=i + 1) for i, h in enumerate(history * 25)]  # 100 epochs
    plot_history(long, tmp_path / "curve.png")
    plot_history(history[:2], tmp_path / "short.png")
    figure, short = saved
    renderer = FigureCanvasAgg(figure).get_renderer()
    width, height = figure.bbox.width, figure.bbox.height
    for axes in figure.axes:
        box = axes.get_tightbbox(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, box
    for axes in short.axes:  # whole epochs only (not 1.0, 1.2, ...: fewer labels to draw)
        assert [float(t) for t in axes.get_xticks() if 0 < t < 3] == [1.0, 2.0]


def test_package_records_every_depth_and_the_pruning_rule(trained):
    manifest = ModelManifest.load(trained / "model.json")
    per_depth = manifest.validation["per_depth"]
    assert sorted(per_depth) == ["1", "2", "3", "4", "ensemble"]
    for figures in per_depth.values():
        assert set(figures["dice"]) == {"tumor"}
        assert figures["seconds_per_volume"] > 0
    assert manifest.recommended_depth == recommend_depth(per_depth, 0.01)
    assert manifest.labels[0].terminology["type"]["code"] == "108369006"
    assert manifest.training["epochs"] == 4 and "unetpp train" in manifest.training["command"]


def test_written_package_segments_through_the_engine(trained):
    predictor = Predictor.from_manifest_path(trained / "model.json", device="cpu", threads=1)
    mask = ball((11, 13, 12), 4.5)
    rng = np.random.default_rng(99)
    array = rng.normal(-800, 20, mask.shape)
    array[mask] = rng.normal(100, 20, int(mask.sum()))
    image = _image(array.astype(np.int16), origin=(-10.0, 5.0, 3.0))
    result = predictor.segment(volume_from_sitk([image]))  # the recommended depth
    assert result.labels.array.shape == (SIZE,) * 3
    assert result.labels.origin == pytest.approx((-10.0, 5.0, 3.0))
    found = result.labels.array == 1
    dice = 2 * (found & mask).sum() / (found.sum() + mask.sum())
    assert dice > 0.5, dice


def _weights(path):
    return load_file(str(path))


def test_resume_continues_bit_for_bit(data_dir, tmp_path, monkeypatch):
    common = [*TINY, "--epochs", "2", "--iterations-per-epoch", "1", "--val-every", "5"]
    common += ["--batch-size", "1", "--tile", "32", "16", "16"]
    common += ["--cache-dir", str(tmp_path / "cache")]
    straight = tmp_path / "straight"
    with pytest.MonkeyPatch.context() as patch:  # the redraw interval passed: every epoch
        drawn = drawing_spy(patch, every_s=0.0)
        assert main([str(data_dir), "-o", str(straight), *common]) == 0
    assert drawn == [[1], [1, 2]]

    interrupted = tmp_path / "interrupted"
    original = trainer_module.Trainer._save_epoch

    def save_then_stop(self, epoch):
        original(self, epoch)
        if epoch == 1:
            raise KeyboardInterrupt  # the machine goes down after the first checkpoint

    monkeypatch.setattr(trainer_module.Trainer, "_save_epoch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        main([str(data_dir), "-o", str(interrupted), *common])
    monkeypatch.setattr(trainer_module.Trainer, "_save_epoch", original)
    assert not (interrupted / "model.json").exists()
    assert main([str(data_dir), "-o", str(interrupted), *common, "--resume"]) == 0

    a, b = _weights(straight / "weights.safetensors"), _weights(interrupted / "weights.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    a_opt = _weights(straight / "checkpoint" / "optimizer.safetensors")
    b_opt = _weights(interrupted / "checkpoint" / "optimizer.safetensors")
    assert all(torch.equal(a_opt[k], b_opt[k]) for k in a_opt)
    histories = [json.loads((run / "history.json").read_text()) for run in (interrupted, straight)]
    for history in histories:  # the final validation's seconds are measured, not reproduced
        assert history[-1].pop("final_validation") and history[-1].pop("seconds_per_volume")
    assert histories[0] == histories[1]


def test_resume_refuses_changed_settings(data_dir, trained):
    args = [str(data_dir), "-o", str(trained), *TINY, "--resume", "--epochs", "5"]
    args[args.index("--lr") + 1] = "0.1"
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    with pytest.raises(UNetPlusPlusError, match="'lr' was 0.003 in the checkpoint"):
        run_train(parser.parse_args(args))
    args = [str(data_dir), "-o", str(trained), *TINY, "--resume", "--train-fraction", "0.5"]
    args += ["--epochs", "5"]  # a finished run without more epochs is refused before this
    with pytest.raises(UNetPlusPlusError, match="'train_fraction' was 1.0 in the checkpoint"):
        run_train(parser.parse_args(args))  # a learning-curve run keeps its training cases


def test_fine_tuning_starts_from_a_package(data_dir, trained, tmp_path):
    out = tmp_path / "tuned"
    args = [str(data_dir), "-o", str(out), "--labels", "tumor", "--init", str(trained)]
    args += ["--epochs", "1", "--iterations-per-epoch", "1", "--lr", "1e-12", "--no-progress"]
    args += ["--no-augment", "--cache-dir", str(trained / "cache")]
    assert main(args) == 0
    log = (out / "train.log").read_text()
    assert "fine-tuning from" in log and "output heads kept" in log
    tuned = ModelManifest.load(out / "model.json")
    assert tuned.network == ModelManifest.load(trained / "model.json").network
    # learning rate 1e-12 (0 is refused): the weights are those of the initial model
    a, b = _weights(trained / "weights.safetensors"), _weights(out / "weights.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-9) for k in a)


def test_cli_reports_user_errors_in_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere"), "-o", str(tmp_path / "out")]) == 2
    assert "error: Data folder" in capsys.readouterr().err


def test_tiny_run_on_public_lung_nodule_crops(shared_data, repo_root, tmp_path):
    out = tmp_path / "nodule"
    args = [str(shared_data / "lung-nodule" / "lidc-vois"), "-o", str(out)]
    args += ["--dataset-json", str(DATASETS / "lidc-vois.json")]
    args += ["--max-cases", "2", "--epochs", "1", "--iterations-per-epoch", "2"]
    args += ["--features", "4", "8", "16", "32", "64", "4", "--threads", "1", "--no-progress"]
    assert main(args) == 0
    manifest = ModelManifest.load(out / "model.json")
    assert manifest.prompt == {"kind": "point", "box_mm": [32, 32, 20]}
    assert manifest.labels[0].terminology["type"]["meaning"] == "Nodule"
    assert manifest.validation["label_source"].startswith("expert")
    case = manifest.validation["cases"][0]
    image = sitk.ReadImage(str(shared_data / "lung-nodule/lidc-vois/image" / f"{case}.nii.gz"))
    centre = image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])
    predictor = Predictor(manifest, device="cpu", threads=1)
    result = predictor.segment(volume_from_sitk([image]), point=centre)
    assert result.labels.array.shape == sitk.GetArrayViewFromImage(image).shape


def test_the_recorded_commit_is_read_once_at_the_start(monkeypatch):
    from UNetPlusPlusLib.training import package

    package.git_commit.cache_clear()
    calls = []

    def fake_run(*args, **kwargs):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, stdout=f"commit{len(calls)}\n", stderr="")

    monkeypatch.setattr(package.subprocess, "run", fake_run)
    first = package.git_commit()
    assert package.git_commit() == first == "commit1" and len(calls) == 1
    package.git_commit.cache_clear()


def test_validation_label_source_names_only_the_validation_cases_sources(tmp_path):
    """The liver model's card said its validation labels included 'clinician-corrected' ones,
    a source of a training case only."""
    from types import SimpleNamespace

    from UNetPlusPlusLib.training.dataset_types import CaseFiles, SourceDescription
    from UNetPlusPlusLib.training.package import validation_label_sources

    def source(name, label_source):
        return SourceDescription(name, ["*.nii.gz"], "*.nii.gz", {"liver": [1]}, label_source)

    expert, model, corrected = (
        source("lits", "expert (LiTS)"),
        source("ts", "model output (TotalSegmentator)"),
        source("s0009", "clinician-corrected"),
    )

    def files(case_id, src):
        return CaseFiles(case_id, case_id, [tmp_path / f"{case_id}.nii.gz"], tmp_path / "l", src)

    train = [files("liver_0", expert), files("s0009", corrected), files("ts-dicom", model)]
    val = [files("liver_1", expert), files("ts-ct", model)]
    trainer = SimpleNamespace(
        train_files=train,
        val_files=val,
        val_cases=[SimpleNamespace(case_id=f.case_id) for f in val],
        dataset=SimpleNamespace(label_sources=lambda: "every source"),
    )
    assert validation_label_sources(trainer) == "expert (LiTS); model output (TotalSegmentator)"
    trainer.val_cases = trainer.val_cases[:1]  # --max-val-cases 1
    assert validation_label_sources(trainer) == "expert (LiTS)"
    # one patient only: validation on the training cases, which are then named
    trainer.val_files, trainer.val_cases = [], [SimpleNamespace(case_id="s0009")]
    assert validation_label_sources(trainer) == "clinician-corrected"

"""The training plan: fingerprint, geometry and schedule rules, overrides, plan.json, budget runs.

Pure plan computations use synthetic fingerprints; the two runs train the tiny network of
test_training_loop on four synthetic 24^3 cases, with the step timing replaced by fixed figures
so the fitted schedule does not depend on the machine's load (no timed assertions).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training import fingerprint as fingerprint_module
from UNetPlusPlusLib.training import run_plan
from UNetPlusPlusLib.training import steps as steps_module
from UNetPlusPlusLib.training import trainer as trainer_module
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.fingerprint import (
    CaseFingerprint,
    DatasetFingerprint,
    case_fingerprint,
)
from UNetPlusPlusLib.training.planner import (
    NARROW_FEATURES,
    WIDE_FEATURES,
    DeviceInfo,
    Plan,
    parse_duration,
    plan_geometry,
)
from UNetPlusPlusLib.training.schedule import (
    LAST_VALIDATION_FACTOR,
    fit_schedule,
    validation_count,
)

CPU2 = DeviceInfo("cpu", "test CPU", 2, False)
GPU = DeviceInfo("cuda", "test GPU", 8, True, 24.0)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fingerprint(size, spacing, foreground_mm, cases=5) -> DatasetFingerprint:
    rows = [
        CaseFingerprint(
            case_id=f"c{i}",
            size_xyz=list(size),
            spacing_xyz=list(spacing),
            intensity=[{"mean": 0.0, "std": 1.0, "p00_5": -1.0, "p50": 0.0, "p99_5": 1.0}],
            label_ml=[1.0],
            foreground_mm_xyz=list(foreground_mm),
        )
        for i in range(cases)
    ]
    return DatasetFingerprint(rows, ["CT"], ["liver"])


# ----------------------------------------------------------------------------- fingerprint
def test_case_fingerprint_measures_label_volume_extent_and_intensity():
    labels = np.zeros((10, 20, 30), np.uint8)
    labels[2:6, 5:15, 10:13] = 1  # z 4, y 10, x 3 voxels
    image = np.full((1, 10, 20, 30), -1000.0, np.float32)
    image[0][labels == 1] = 50.0
    fp = case_fingerprint("a", image, labels, (0.5, 1.0, 2.0), num_labels=1)
    assert fp.size_xyz == [30, 20, 10]
    assert fp.foreground_mm_xyz == [1.5, 10.0, 8.0]
    assert fp.label_ml == [pytest.approx(120 * 1.0 / 1000)]
    assert fp.intensity[0]["mean"] == pytest.approx(50.0)


def test_fingerprint_is_computed_once_and_cached(tmp_path, monkeypatch):
    from UNetPlusPlusLib.training.dataset import find_cases
    from UNetPlusPlusLib.training.dataset_slicer import describe_slicer_export

    data = write_slicer_dataset(tmp_path / "data", cases=2)
    dataset = describe_slicer_export(data, labels=["tumor"])
    cases = find_cases(dataset)
    first = fingerprint_module.dataset_fingerprint(dataset, cases, tmp_path / "cache", log=print)
    assert len(first.cases) == 2 and first.summary()["foreground_mm_p90"][0] > 0

    def no_reading(*args, **kwargs):
        raise AssertionError("the cached fingerprint should have been used")

    monkeypatch.setattr(fingerprint_module, "read_case", no_reading)
    again = fingerprint_module.dataset_fingerprint(dataset, cases, tmp_path / "cache", log=print)
    assert again.to_dict() == first.to_dict()


# ----------------------------------------------------------------------------- geometry
def test_cpu_plan_coarsens_spacing_and_caps_the_tile_for_a_large_organ():
    plan = plan_geometry(_fingerprint((200, 200, 200), (1, 1, 1), (100, 100, 100)), CPU2, {})
    assert plan.spacing == (2.0, 2.0, 2.0)  # at most 2x coarser
    assert math.prod(plan.tile_size) <= 64**3 and all(t % 16 == 0 for t in plan.tile_size)
    assert plan.features == NARROW_FEATURES and plan.batch_size == 2
    assert "capped" in plan.reasons["tile_size"] and "x2.00" in plan.reasons["spacing"]


def test_tile_is_never_larger_than_the_foreground_with_context():
    # LIDC-like crops: 44 x 44 x 6 voxels, nodules about 10 x 10 x 7.5 mm
    fp = _fingerprint((44, 44, 6), (0.7, 0.7, 2.5), (10, 10, 7.5))
    plan = plan_geometry(fp, CPU2, {})
    assert plan.spacing == (0.7, 0.7, 2.5)
    # 10 mm + 2 x 4 voxels of context = 15.6 mm = 22 voxels -> 32; z: 27.5 mm = 11 -> 16
    assert plan.tile_size == (32, 32, 16)
    assert plan.batch_size == 4  # small tiles on a CPU


def test_gpu_plan_keeps_the_spacing_and_uses_the_usual_width():
    plan = plan_geometry(_fingerprint((200, 200, 200), (1, 1, 1), (100, 100, 100)), GPU, {})
    assert plan.spacing == (1.0, 1.0, 1.0) and plan.features == WIDE_FEATURES
    assert plan.tile_size == (128, 128, 128)  # 150 mm -> 160, capped at 128^3 on 24 GB


def test_explicit_options_override_the_plan_and_are_shown():
    overrides = {
        "tile_size": ((48, 48, 16), "--tile"),
        "spacing": ((3.0, 3.0, 3.0), "dataset.json"),
        "batch_size": (3, "--batch-size"),
        "epochs": (7, "--epochs"),
        "precision": ("fp32", "--precision"),
    }
    fp = _fingerprint((200, 200, 200), (1, 1, 1), (100, 100, 100))
    plan = plan_geometry(fp, CPU2, overrides)
    assert plan.tile_size == (48, 48, 16) and plan.spacing == (3.0, 3.0, 3.0)
    assert plan.batch_size == 3 and plan.epochs == 7 and plan.precision == "fp32"
    fit_schedule(plan, training_cases=10, seconds_per_iteration=1.0, seconds_per_validation=5,
                 elapsed_s=3)  # fmt: skip
    assert plan.epochs == 7  # not fitted: given
    text = "\n".join(plan.describe())
    for option in ("--tile", "dataset.json", "--batch-size", "--epochs", "--precision"):
        assert f"overridden by {option}" in text
    assert "median spacing" not in text and "overridden by" not in plan.describe()[3]  # features


def test_a_time_budget_beats_the_datasets_schedule_but_not_its_geometry():
    import argparse

    from UNetPlusPlusLib.training.cli import add_train_arguments
    from UNetPlusPlusLib.training.plan_setup import collect_overrides

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    dataset = argparse.Namespace(
        spacing=(0.7, 0.7, 1.25), tile_size=(48, 48, 16), features=None,
        training={"batch_size": 4, "iterations_per_epoch": 100, "epochs": 50},
    )  # fmt: skip
    plain = collect_overrides(parser.parse_args(["d", "-o", "o"]), dataset)
    assert plain["iterations_per_epoch"] == (100, "dataset.json") and plain["epochs"][0] == 50
    budget = collect_overrides(parser.parse_args(["d", "-o", "o", "--time-budget", "10m"]), dataset)
    assert "iterations_per_epoch" not in budget and "epochs" not in budget
    assert budget["tile_size"] == ((48, 48, 16), "dataset.json") and budget["batch_size"][0] == 4
    cli = collect_overrides(
        parser.parse_args(["d", "-o", "o", "--time-budget", "10m", "--epochs", "3"]), dataset
    )
    assert cli["epochs"] == (3, "--epochs")


# ----------------------------------------------------------------------------- schedule
def test_budget_is_filled_but_not_exceeded():
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    plan.budget_s, plan.budget_given = 600.0, True
    fit_schedule(plan, 40, seconds_per_iteration=0.5, seconds_per_validation=10, elapsed_s=60)
    total = plan.estimate["total"]
    assert 0.97 * 600 <= total <= 600
    assert plan.epochs >= 20  # short epochs: a re-fit moves in steps of about 5 %
    assert plan.estimate["validations"] == validation_count(plan.epochs, plan.val_every)
    assert plan.estimate["validation"] <= 0.15 * 540 + 10
    assert plan.estimate["training"] == pytest.approx(
        plan.epochs * plan.iterations_per_epoch * 0.5, abs=0.1
    )


def test_validation_too_costly_for_the_budget_uses_an_evenly_spread_subset():
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    plan.budget_s, plan.budget_given = 600.0, True
    one_pass = 800 / LAST_VALIDATION_FACTOR  # the last validation (per depth): 800 s
    fit_schedule(plan, 650, 4.0, one_pass, elapsed_s=100, validation_cases=164)
    assert plan.validation_cases == 8  # the minimum: 7.5 % of 500 s is ~8 cases at ~4.9 s
    assert plan.measured["seconds_per_validation"] == pytest.approx(one_pass * 8 / 164, abs=0.01)
    assert plan.measured["seconds_per_last_validation"] == pytest.approx(800 * 8 / 164, abs=0.01)
    assert plan.estimate["total"] <= 600 and "8 of 164" in plan.reasons["validation_cases"]
    cheap = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    cheap.budget_s, cheap.budget_given = 600.0, True
    fit_schedule(cheap, 650, 4.0, 20 / LAST_VALIDATION_FACTOR, 100, validation_cases=164)
    assert cheap.validation_cases == 0  # all of them: the last takes 20 s of 37.5 s allowed


def test_without_a_budget_the_default_bounds_the_run_and_epochs_keep_the_rule():
    fp = _fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30))
    plan = fit_schedule(plan_geometry(fp, CPU2, {}), 3, 2.0, 4.0, 10)
    assert plan.budget_s == 3600 and not plan.budget_given
    assert plan.iterations_per_epoch == 25 and plan.estimate["total"] <= 3600
    given = plan_geometry(fp, CPU2, {"epochs": (2, "--epochs")})
    fit_schedule(given, 3, 2.0, 4.0, 10)
    assert (given.epochs, given.iterations_per_epoch) == (2, 25)  # the researcher's 2 epochs
    # epoch 1's validation from one pass (4 s), the last per depth
    assert given.estimate["total"] == pytest.approx(10 + 2 * 25 * 2.0 + 4.0 + 3.2 * 4.0)


def test_a_budget_too_short_for_one_iteration_is_a_user_error():
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    plan.budget_s, plan.budget_given = 30.0, True
    with pytest.raises(UNetPlusPlusError, match="too short"):
        fit_schedule(plan, 3, 5.0, 1.0, elapsed_s=29)


def test_a_default_budget_too_short_says_it_is_the_default():
    """With no --time-budget, a slow validation (a nodule model fine-tuned on whole CTs: ~72 min
    per validation) said "The time budget 1h00m is too short", a budget the user never gave
    (tester fresh30); it says it is the default and how to give one."""
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    assert not plan.budget_given
    with pytest.raises(UNetPlusPlusError) as error:
        fit_schedule(plan, 3, 5.0, 4000.0, elapsed_s=29)
    message = str(error.value)
    assert "default time budget on this device (1h00m" in message and "--time-budget" in message
    plan.budget_given = True  # a budget the user gave is named as before
    with pytest.raises(UNetPlusPlusError, match="^The time budget 1h00m is too short"):
        fit_schedule(plan, 3, 5.0, 4000.0, elapsed_s=29)


def test_refit_follows_the_measured_pace_within_the_budget():
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    plan.budget_s, plan.budget_given = 600.0, True
    fit_schedule(plan, 40, seconds_per_iteration=0.5, seconds_per_validation=10, elapsed_s=60)
    epochs, per_epoch = plan.epochs, plan.iterations_per_epoch * 0.5
    remaining = 600 - 60 - per_epoch - 10  # after epoch 1 at the planned pace
    assert run_plan.refit_epochs(plan, 1, remaining, per_epoch, 10) is None  # on schedule
    slower, every = run_plan.refit_epochs(plan, 1, remaining, 2 * per_epoch, 10)  # load doubled
    assert 1 <= slower < epochs
    later = [e for e in range(2, slower + 1) if e % every == 0 or e == slower]
    assert (slower - 1) * 2 * per_epoch + len(later) * 10 <= remaining
    assert len(later) <= validation_count(epochs, plan.val_every)  # no extra validations
    faster, every = run_plan.refit_epochs(plan, 1, remaining, per_epoch / 2, 10)
    assert faster > epochs and validation_count(faster, every) <= validation_count(
        epochs, plan.val_every
    )
    fixed = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2,
                          {"epochs": (3, "--epochs")})  # fmt: skip
    fixed.budget_s, fixed.budget_given = 600.0, True
    assert run_plan.refit_epochs(fixed, 1, 10, 100, 10) is None  # given epochs are kept


@pytest.mark.parametrize("text, seconds", [("30m", 1800), ("2h", 7200), ("1h30m", 5400),
                                           ("90s", 90), ("8h", 28800)])  # fmt: skip
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_a_bare_number_is_seconds_and_other_text_is_refused():
    assert parse_duration("3600") == 3600  # what scripts/retrain_gpu.sh passes
    with pytest.raises(UNetPlusPlusError, match="30m"):
        parse_duration("30 minutes")


def test_plan_json_round_trip(tmp_path):
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 2), (30, 30, 30)), CPU2,
                         {"features": ((4, 8, 16, 32, 64, 4), "--features")})  # fmt: skip
    fit_schedule(plan, 3, 1.0, 2.0, 5)
    plan.save(tmp_path)
    loaded = Plan.load(tmp_path)
    assert loaded == plan and loaded.to_dict() == json.loads((tmp_path / "plan.json").read_text())


# ----------------------------------------------------------------------------- precision
@pytest.mark.parametrize(
    "fp32_s, bf16_s, dice, chosen",
    [(1.0, 0.5, {"fp32": 0.5, "bf16": 0.5}, "bf16"),
     (1.0, 0.5, {"fp32": 0.5, "bf16": 0.3}, "fp32"),  # faster but worse
     (1.0, 0.95, {"fp32": 0.5, "bf16": 0.6}, "fp32")],  # not faster
)  # fmt: skip
def test_bf16_only_where_faster_and_not_worse(monkeypatch, fp32_s, bf16_s, dice, chosen):
    import torch
    from UNetPlusPlusLib.engine.loss import HybridLoss
    from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
    from UNetPlusPlusLib.training.augment import AugmentConfig
    from UNetPlusPlusLib.training.preprocess import PreprocessedCase
    from UNetPlusPlusLib.training.sampler import PatchSampler

    monkeypatch.setattr(steps_module, "_native_bf16", lambda: True)
    monkeypatch.setattr(
        steps_module, "_time_steps",
        lambda net, wrap, loss, batches, dtype, *a: bf16_s if dtype is torch.bfloat16 else fp32_s,
    )  # fmt: skip
    monkeypatch.setattr(
        steps_module, "_short_run_dice",
        lambda net, wrap, loss, b, h, dtype, *a: dice[
            "bf16" if dtype is torch.bfloat16 else "fp32"],
    )  # fmt: skip
    labels = np.zeros((16, 16, 16), np.uint8)
    labels[4:10, 4:10, 4:10] = 1
    case = PreprocessedCase("a", "a", np.zeros((1, 16, 16, 16), np.float32), labels,
                            np.argwhere(labels)[:, [0, 0, 1, 2]] * [0, 1, 1, 1] + [1, 0, 0, 0],
                            np.zeros(1, np.float32))  # fmt: skip
    sampler = PatchSampler([case], (16, 16, 32))
    network = UNetPlusPlus3D(1, 2, (2, 4, 8, 16, 32, 2))
    result = steps_module.calibrate(
        network, steps_module.DeepSupervision, HybridLoss(), sampler, sampler,
        AugmentConfig(enabled=False), (1, 1, 1), 1, (16, 16, 32), torch.device("cpu"),
        1e-3, 0.0, "auto", 0, lambda m: None, steps=1,
    )  # fmt: skip
    assert result.precision == chosen
    assert result.note.startswith(chosen)


# ----------------------------------------------------------------------------- runs
TINY = [
    "--labels", "tumor", "--features", "4", "8", "16", "32", "64", "4", "--lr", "0.003",
    "--no-progress", "--threads", "1", "--precision", "fp32",
]  # fmt: skip


@pytest.fixture()
def fixed_timing(monkeypatch):
    """Calibration answers 6 s per iteration and 2 s per inference tile (a validation of a
    24^3 case at a 32^3 tile ~6.4 s: a 2-minute budget validates every few epochs), whatever
    the load; no re-fit to the budget at the real pace."""
    real = steps_module.calibrate

    def calibrate(*args, **kwargs):
        result = real(*args, **kwargs)
        result.seconds_per_iteration, result.seconds_per_tile = 6.0, 2.0
        return result

    monkeypatch.setattr(run_plan, "calibrate", calibrate)
    monkeypatch.setattr(run_plan, "refit_epochs", lambda *args: None)


def test_plan_only_prints_the_plan_and_stops(tmp_path, capsys, fixed_timing):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"
    assert main([str(data), "-o", str(out), *TINY, "--time-budget", "2h", "--plan-only"]) == 0
    printed = capsys.readouterr().out
    assert "training plan:" in printed and "ETA" in printed and "budget 2h00m" in printed
    plan = Plan.load(out)
    assert plan.budget_s == 7200 and plan.sources["features"] == "--features"
    assert not (out / "checkpoint").exists() and not (out / "model.json").exists()


def test_budget_run_and_resume_keep_the_plan(tmp_path, capsys, monkeypatch, fixed_timing):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), *TINY, "--time-budget", "2m", "--tile", "32", "32", "32"]
    args += ["--iterations-per-epoch", "3", "--batch-size", "1"]
    original = trainer_module.Trainer._save_epoch

    def save_then_stop(self, epoch):
        original(self, epoch)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(trainer_module.Trainer, "_save_epoch", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        main(args)
    monkeypatch.setattr(trainer_module.Trainer, "_save_epoch", original)
    printed = capsys.readouterr().out
    assert printed.index("training plan:") < printed.index("epoch 1/")  # plan and ETA first
    plan = json.loads((out / "plan.json").read_text())
    assert plan["budget_s"] == 120 and plan["estimate"]["total"] <= 120
    assert plan["epochs"] >= 2 and plan["measured"]["seconds_per_iteration"] == 6.0

    assert plan["sources"]["iterations_per_epoch"] == "--iterations-per-epoch"
    resume = args[:5] + ["--no-progress", "--threads", "1", "--resume"]  # the plan has the rest
    assert main(resume) == 0
    resumed = json.loads((out / "plan.json").read_text())  # the same plan, with this session
    assert [r["after_epoch"] for r in resumed.pop("resumes")] == [1] and plan.pop("resumes") == []
    assert resumed == plan
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == list(range(1, plan["epochs"] + 1))
    log = (out / "train.log").read_text()
    assert "resumed after epoch 1" in log and "ETA for the rest" in log
    manifest = json.loads((out / "model.json").read_text())
    assert manifest["training"]["iterations_per_epoch"] == plan["iterations_per_epoch"]
    assert manifest["training"]["plan"]["budget_s"] == 120
    card = (out / "CARD.md").read_text()  # the per-depth table of this run
    assert "| depth | tumor | mean Dice | s / volume |" in card
    for depth in ("L1", "L2", "L3", "L4", "ensemble"):
        assert f"| {depth} |" in card or f"**{depth}** (recommended)" in card
    assert "budget 120 s" in card


def test_a_fixed_schedule_with_a_budget_stops_at_an_epoch_boundary_and_resumes(
    tmp_path, capsys, monkeypatch
):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    out = tmp_path / "out"
    args = [str(data), "-o", str(out), *TINY, "--tile", "32", "32", "32", "--batch-size", "1",
            "--epochs", "3", "--iterations-per-epoch", "1"]  # fmt: skip
    monkeypatch.setattr(trainer_module, "CURVE_EVERY_S", 1e9)  # drawn only when a session ends
    assert main(args + ["--time-budget", "1"]) == 0  # a session of 1 s: one epoch, then stop
    printed = capsys.readouterr().out
    assert "stopping after epoch 1 of 3" in printed
    # said before training: 1 s (less the package's 2 s) cannot hold an epoch
    assert printed.index("warning: the time budget 1s cannot hold one epoch") < printed.index(
        "epoch 1/3"
    )
    assert not (out / "model.json").exists()
    assert (out / "training_curve.png").stat().st_size > 1000  # the stopped session's epoch
    plan = json.loads((out / "plan.json").read_text())
    # the checkpoint's recorded pace, made slow (60 s per iteration) so that the warning below
    # does not depend on how fast this machine is today: a tiny epoch can fit 1 s when idle
    slow = {"seconds_per_iteration": 60.0, "seconds_per_validation": 1.0}
    real, calls = run_plan.one_pass_pace, []

    def checkpoint_slow(pace):  # the first call reads the checkpoint's, the second plan.json's
        calls.append(pace)
        return (dict(slow), False) if len(calls) == 1 else real(pace)

    monkeypatch.setattr(run_plan, "one_pass_pace", checkpoint_slow)
    # another short session: 0.05 s, which no epoch fits however fast the machine (at 1 s, an
    # idle machine trained epochs 2 and 3 in it and finished: CI, session 18)
    assert main(args + ["--resume", "--time-budget", "0.05"]) == 0
    resumed = json.loads((out / "plan.json").read_text())  # the same plan, with this session
    assert [r["after_epoch"] for r in resumed.pop("resumes")] == [1] and plan.pop("resumes") == []
    assert resumed == plan
    printed = capsys.readouterr().out
    assert "stopping after epoch 2 of 3" in printed
    # said before training, as for the new run, at the pace the checkpoint recorded (before,
    # a resumed session said nothing and passed its limit)
    said = "warning: the time budget 0.05s of this session cannot hold one epoch (~"
    assert printed.index(said) < printed.index("epoch 2/3")
    assert "at the pace the checkpoint recorded" in printed and "epoch 2 of 3 will pass" in printed
    assert main(args + ["--resume"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3] and (out / "model.json").is_file()

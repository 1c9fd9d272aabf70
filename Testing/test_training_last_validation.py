"""Every finished run's model.json carries each depth's seconds per volume, and a resumed run
reads an older validation pace as it was measured.

A budget re-fit that cut the epochs to those already done ended the run on a validation from one
pass (no seconds per depth): model.json and CARD.md showed "-" for seconds per volume; ended on
an epoch without a validation, the package recorded an earlier epoch's Dice. plan.json files and
checkpoints written before validations ran from one pass hold a per-depth validation pace, which
a resumed run read as a one-pass pace (its ETA 3.2x too high on validations). Tiny runs: four
synthetic 24^3 cases, one 32^3 tile, one iteration per epoch, no training curve drawn (0.3-1 s
of CPU each); the calibration answers fixed figures and the budget is reported spent after a
chosen epoch (a slower machine), so the plan and the re-fit do not depend on the machine's speed.
"""

from __future__ import annotations

import json
import re
import shutil
from types import SimpleNamespace

import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.training import run_plan
from UNetPlusPlusLib.training import trainer as trainer_module
from UNetPlusPlusLib.training.checkpoint import read_checkpoint_state
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.planner import Plan
from UNetPlusPlusLib.training.schedule import LAST_VALIDATION_FACTOR, one_pass_pace
from UNetPlusPlusLib.training.steps import Calibration

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--features", "4", "8", "16", "32", "64", "4", "--tile", "32", "32", "32"]
TINY += ["--batch-size", "1", "--iterations-per-epoch", "1", "--lr", "0.003"]
DEPTHS = ["1", "2", "3", "4", "ensemble"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_slicer_dataset(tmp_path_factory.mktemp("data") / "data", cases=4)


def _budget_run(patch: pytest.MonkeyPatch, data, out, spent_after: int, *extra: str) -> None:
    """A 10-minute budget run. Calibration: 1 s per iteration, 0.01 s per inference tile
    (hundreds of epochs, validated every one); the budget is reported spent once
    ``spent_after`` epochs are done, so the real re-fit cuts the run to them."""
    calibration = Calibration(1.0, 0.01, "fp32", "", {"fp32_step_s": 1.0})
    patch.setattr(run_plan, "calibrate", lambda *args, **kwargs: calibration)
    patch.setattr(trainer_module, "plot_history", lambda history, path: None)
    real = trainer_module.Trainer._budget_used

    def used(self) -> float:
        spent = len(getattr(self, "history", [])) >= spent_after
        return float(self.plan.budget_s) if spent else real(self)

    patch.setattr(trainer_module.Trainer, "_budget_used", used)
    assert main([str(data), "-o", str(out), *TINY, "--time-budget", "10m", *extra]) == 0


@pytest.fixture(scope="module")
def cut_after_one(data, tmp_path_factory):
    """A budget run planned for many epochs and cut to the first by the re-fit after it."""
    out = tmp_path_factory.mktemp("cut") / "out"
    with pytest.MonkeyPatch.context() as patch:
        _budget_run(patch, data, out, 1)
    return out


def _validation_lines(out) -> list[str]:
    log = (out / "train.log").read_text()
    return [line for line in log.splitlines() if "validation on" in line]


def _assert_timed_package(out) -> dict:
    manifest = json.loads((out / "model.json").read_text())
    per_depth = manifest["validation"]["per_depth"]
    assert sorted(per_depth) == DEPTHS
    assert all(per_depth[d]["seconds_per_volume"] > 0 for d in DEPTHS), per_depth
    card = (out / "CARD.md").read_text()
    rows = [line for line in card.splitlines() if re.match(r"\| (\*\*)?(L\d|ensemble)", line)]
    assert len(rows) == 5 and not any(line.endswith("| - |") for line in rows), rows
    return manifest


def _assert_history_agrees(out, manifest: dict) -> list[dict]:
    """history.json marks one entry, the last epoch's, as the final validation: the Dice per
    depth and seconds per volume model.json records, and CARD.md's table shows."""
    history = json.loads((out / "history.json").read_text())
    marked = [h for h in history if h.get("final_validation")]
    assert marked == [history[-1]] and history[-1]["epoch"] == manifest["training"]["epochs"]
    per_depth = manifest["validation"]["per_depth"]
    assert history[-1]["validation"] == {d: v["mean_dice"] for d, v in per_depth.items()}
    assert history[-1]["seconds_per_volume"] == {
        d: v["seconds_per_volume"] for d, v in per_depth.items()
    }
    card = (out / "CARD.md").read_text()
    for depth in per_depth:
        name = "ensemble" if depth == "ensemble" else f"L{depth}"
        line = next(x for x in card.splitlines() if re.match(rf"\| (\*\*)?{name}\b", x))
        cells = [c.strip() for c in line.strip("|").split("|")]
        mean = history[-1]["validation"][depth]
        seconds = history[-1]["seconds_per_volume"][depth]
        assert cells[-2:] == [f"{mean:.3f}", f"{seconds:.2f}"], (line, mean, seconds)
    return history


def test_a_refit_that_ends_the_run_early_still_times_every_depth(cut_after_one):
    out = cut_after_one
    plan = json.loads((out / "plan.json").read_text())
    (refit,) = plan["refits"]
    assert refit["after_epoch"] == 1 and refit["epochs"] == 1 and refit["epochs_before"] > 1
    assert plan["val_every"] == 1  # epoch 1 was validated, from one pass (not the last then)
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and "validation" in history[0]
    manifest = _assert_timed_package(out)
    one_pass, timed = _validation_lines(out)  # epoch 1's, then one per depth: not three
    assert "s/case" not in one_pass and timed.count("s/case") == 5
    log = (out / "train.log").read_text()
    assert "the last validation scored every depth from one pass" in log
    # the budget was spent (a slower machine): the overrun of the final validation is said
    assert re.search(r"warning: the time budget \(10m00s\) has 0s left; the validation of "
                     r"the final weights .* will pass it by about [\d.]+s", log)  # fmt: skip
    dice = {d: v["mean_dice"] for d, v in manifest["validation"]["per_depth"].items()}
    assert dice == history[0]["validation"]  # the same weights, the same Dice
    _assert_history_agrees(out, manifest)
    # the checkpoint's history is not marked: a --resume trains on from it
    assert "final_validation" not in read_checkpoint_state(out)["history"][-1]


def test_a_run_cut_after_an_epoch_without_validation_validates_its_weights(
    data, tmp_path, monkeypatch
):
    """--val-every 2, the budget spent after epoch 3: epoch 2's Dice (other weights) and no
    seconds were recorded for the epoch-3 weights."""
    out = tmp_path / "out"
    _budget_run(monkeypatch, data, out, 3, "--val-every", "2")
    assert json.loads((out / "plan.json").read_text())["epochs"] == 3
    history = json.loads((out / "history.json").read_text())
    # epoch 3's Dice came from the finish step's validation: recorded in history.json too
    assert ["validation" in h for h in history] == [False, True, True]
    _assert_history_agrees(out, _assert_timed_package(out))
    one_pass, timed = _validation_lines(out)  # epoch 2's, then one of the final weights
    assert "s/case" not in one_pass and timed.count("s/case") == 5


def test_an_older_pace_is_converted_once():
    old = {"seconds_per_iteration": 0.5, "seconds_per_validation": 32.0}
    converted, changed = one_pass_pace(old)
    assert changed and old == {"seconds_per_iteration": 0.5, "seconds_per_validation": 32.0}
    assert converted == {
        "seconds_per_iteration": 0.5,
        "seconds_per_validation": 10.0,
        "seconds_per_last_validation": 32.0,
    }
    assert one_pass_pace(converted) == (converted, False)  # the key marks the new form
    for unmeasured in ({}, {"seconds_per_iteration": 0.5}, {"seconds_per_validation": "x"}):
        assert one_pass_pace(unmeasured) == (unmeasured, False)


class _Resumed(run_plan.PlanningMixin):
    """What the ETA of a resumed fixed-schedule run reads: no plan.json pace, no epoch yet."""

    def __init__(self, plan) -> None:
        self.config = SimpleNamespace(epochs=3, iterations_per_epoch=2, val_every=1)
        self.plan, self.logged = plan, []

    def log(self, message: str) -> None:
        self.logged.append(message)


@pytest.mark.parametrize("with_plan", [False, True])
def test_an_older_checkpoint_pace_prices_one_pass_validations(with_plan):
    """A fixed schedule's plan.json measures nothing: the ETA after --resume came from the
    checkpoint's pace, per depth before (a pre-plan checkpoint has no plan at all)."""
    run = _Resumed(Plan(spacing=(1, 1, 1), tile_size=(32, 32, 32), features=(4,), batch_size=1)
                   if with_plan else None)  # fmt: skip
    pace = {"seconds_per_iteration": 0.25, "seconds_per_validation": 32.0}
    run._read_saved_paces({"epoch": 1, "pace": pace})
    rest = run._rest(1)  # epoch 2 from one pass (10 s), epoch 3 per depth (32 s)
    assert rest["validations"] == 2 and rest["validation"] == pytest.approx(42.0)
    assert rest["training"] == pytest.approx(1.0)
    assert run.logged == [
        "the checkpoint was written before validations ran from one pass: its validation pace, "
        "per depth, is divided by 3.2 for those before the last"
    ]
    new = {"epoch": 1, "pace": {**pace, "seconds_per_last_validation": 102.4}}
    run = _Resumed(None)
    run._read_saved_paces(new)  # written since: a one-pass pace, as it is
    assert run._rest(1)["validation"] == pytest.approx(32.0 + 102.4) and run.logged == []


def test_a_resume_reads_older_per_depth_paces_as_one_pass(data, cut_after_one, tmp_path, capsys):
    """The budget run's plan.json (its pace, from the calibration, comes first) and checkpoint
    as written before: no last validation's pace. Resumed to one more epoch, validated last."""
    shutil.copytree(cut_after_one, tmp_path / "out")
    out = tmp_path / "out"
    old = {"seconds_per_iteration": 0.25, "seconds_per_validation": 32.0}  # per depth
    plan = json.loads((out / "plan.json").read_text())
    plan["measured"] = old
    (out / "plan.json").write_text(json.dumps(plan))
    state_file = out / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    state["pace"] = {"seconds_per_iteration": 0.5, "seconds_per_validation": 99.0}
    state_file.write_text(json.dumps(state))
    capsys.readouterr()
    assert main([str(data), "-o", str(out), *TINY, "--epochs", "2", "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "the checkpoint and plan.json were written before validations ran" in printed
    resumed = json.loads((out / "plan.json").read_text())
    rest = resumed["resumes"][-1]["estimate"]  # epoch 2, the last: per depth, 32 s (not 102.4)
    assert rest["validations"] == 1 and rest["validation"] == pytest.approx(32.0, abs=0.05)
    assert rest["training"] == pytest.approx(0.25, abs=0.05)
    # rewritten in the new form: a later resume converts nothing
    converted = {**old, "seconds_per_validation": 10.0, "seconds_per_last_validation": 32.0}
    assert resumed["measured"] == converted
    pace = read_checkpoint_state(out)["pace"]  # this run's measured pace, in the new form
    assert pace["seconds_per_last_validation"] == pytest.approx(  # each rounded to 0.01
        LAST_VALIDATION_FACTOR * pace["seconds_per_validation"], abs=0.025
    )
    history = _assert_history_agrees(out, _assert_timed_package(out))
    assert [h["epoch"] for h in history] == [1, 2]  # epoch 1's mark left with the checkpoint

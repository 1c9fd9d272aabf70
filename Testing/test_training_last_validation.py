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

import pytest
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.training import run_plan
from UNetPlusPlusLib.training import trainer as trainer_module
from UNetPlusPlusLib.training.cli import main
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
    assert "the last validation scored every depth from one pass" in (out / "train.log").read_text()
    dice = {d: v["mean_dice"] for d, v in manifest["validation"]["per_depth"].items()}
    assert dice == history[0]["validation"]  # the same weights, the same Dice


def test_a_run_cut_after_an_epoch_without_validation_validates_its_weights(
    data, tmp_path, monkeypatch
):
    """--val-every 2, the budget spent after epoch 3: epoch 2's Dice (other weights) and no
    seconds were recorded for the epoch-3 weights."""
    out = tmp_path / "out"
    _budget_run(monkeypatch, data, out, 3, "--val-every", "2")
    assert json.loads((out / "plan.json").read_text())["epochs"] == 3
    history = json.loads((out / "history.json").read_text())
    assert ["validation" in h for h in history] == [False, True, False]
    _assert_timed_package(out)
    one_pass, timed = _validation_lines(out)  # epoch 2's, then one of the final weights
    assert "s/case" not in one_pass and timed.count("s/case") == 5

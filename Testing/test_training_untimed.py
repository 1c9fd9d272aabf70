"""A fixed schedule (``--epochs`` without ``--time-budget``) with a settled precision times no
steps before training: the calibration's seconds would be used by nothing (no budget to fit, no
precision to compare), so it is skipped and the ETA follows the first epoch; ``--plan-only``
too (before, it always timed steps for its ETA), and its plan says "not timed". An automatic
schedule, a budget and "auto" precision on a CPU with native bfloat16 still calibrate. Tiny
runs on four synthetic 24^3 cases."""

from __future__ import annotations

import json
import types

import pytest
import torch
from test_training_dataset import write_slicer_dataset
from UNetPlusPlusLib.training import run_plan
from UNetPlusPlusLib.training import steps as steps_module
from UNetPlusPlusLib.training.cli import main
from UNetPlusPlusLib.training.planner import Plan
from UNetPlusPlusLib.training.run_plan import PlanningMixin
from UNetPlusPlusLib.training.schedule import fit_schedule

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--labels", "tumor", "--no-progress", "--threads", "1", "--precision", "fp32"]
TINY += ["--features", "4", "8", "16", "32", "64", "4", "--tile", "32", "16", "16"]
TINY += ["--batch-size", "1", "--lr", "0.003"]


@pytest.fixture()
def calibrations(monkeypatch) -> list:
    """The calls of the real ``steps.calibrate`` (it still runs): one entry each."""
    calls: list = []
    real = steps_module.calibrate

    def counting(*args, **kwargs):
        calls.append(args[12])  # the requested precision
        return real(*args, **kwargs)

    monkeypatch.setattr(run_plan, "calibrate", counting)
    return calls


def test_a_fixed_schedule_times_no_steps_and_an_automatic_one_still_does(
    tmp_path, capsys, calibrations
):
    data = write_slicer_dataset(tmp_path / "data", cases=4)
    fixed = tmp_path / "fixed"
    args = [str(data), "-o", str(fixed), *TINY, "--epochs", "1", "--iterations-per-epoch", "1"]
    assert main(args) == 0
    assert calibrations == []
    printed = capsys.readouterr().out
    assert "no steps timed: the schedule is fixed" in printed and "calibration:" not in printed
    eta = next(line for line in printed.splitlines() if line.strip().startswith("ETA"))
    assert "not timed before the first epoch" in eta and "1 iterations" in eta
    assert "epoch 1/1:" in printed and "; ETA 0s" in printed
    plan = json.loads((fixed / "plan.json").read_text())
    assert plan["estimate"] == {
        "preparation": plan["estimate"]["preparation"],
        "iterations": 1,
        "validations": 1,
        "timed": False,
    }
    assert plan["measured"] == {} and plan["precision"] == "fp32"
    assert json.loads((fixed / "model.json").read_text())["training"]["plan"]["estimate_s"] is None
    assert "not timed (fixed schedule)" in (fixed / "CARD.md").read_text()

    planned = tmp_path / "planned"  # --plan-only of the same fixed schedule: nothing timed
    cache = ["--cache-dir", str(fixed / "cache")]
    assert main([*args[:2], str(planned), *args[3:], *cache, "--plan-only"]) == 0
    assert calibrations == []
    printed = capsys.readouterr().out
    assert "no steps timed: the schedule is fixed" in printed and "calibration:" not in printed
    assert "not timed before the first epoch" in printed
    plan = json.loads((planned / "plan.json").read_text())
    assert plan["estimate"]["timed"] is False and plan["measured"] == {}
    assert not (planned / "checkpoint").exists() and not (planned / "model.json").exists()

    automatic = tmp_path / "automatic"  # the default budget sizes the run: steps are timed
    assert main([str(data), "-o", str(automatic), *TINY, *cache, "--plan-only"]) == 0
    assert calibrations == ["fp32"]
    plan = json.loads((automatic / "plan.json").read_text())
    assert plan["measured"]["seconds_per_iteration"] > 0 and plan["estimate"]["total"] > 0
    assert "calibration:" in capsys.readouterr().out


class _Planning(PlanningMixin):
    """What ``_timing_needed`` reads of a Trainer: the plan, --plan-only, the device, the
    configured epochs x iterations (``_comparison_allowed``) and the training cases."""

    def __init__(self, sources, budget_given=False, plan_only=False, device="cpu", steps=(2, 5)):
        self.plan = Plan((2.0, 2.0, 2.0), (32, 32, 32), (4, 8), 1, sources=sources)
        self.plan.budget_given = budget_given
        self.plan_only, self.device = plan_only, torch.device(device)
        epochs, iterations = steps
        self.config = types.SimpleNamespace(
            epochs=epochs, iterations_per_epoch=iterations, batch_size=1
        )
        self.train_cases = [None] * 3


@pytest.mark.parametrize(
    "sources, options, requested, native_bf16, needed",
    [
        ({"epochs": "--epochs"}, {}, "fp32", False, False),
        ({"epochs": "dataset.json"}, {}, "auto", False, False),  # auto: fp32, nothing to compare
        ({"epochs": "--epochs"}, {"device": "cuda"}, "auto", True, False),  # auto: CUDA autocast
        # fp32 against bf16: the Dice check (8 steps each) is allowed from 160 iterations on
        ({"epochs": "--epochs"}, {"steps": (19, 8)}, "auto", True, False),
        ({"epochs": "--epochs"}, {"steps": (20, 8)}, "auto", True, True),
        ({"epochs": "--epochs"}, {"budget_given": True}, "fp32", False, True),  # session limit
        ({"epochs": "--epochs"}, {"plan_only": True}, "fp32", False, False),  # "not timed"
        ({"iterations_per_epoch": "--iterations-per-epoch"}, {}, "fp32", False, True),  # budget
        ({}, {}, "fp32", False, True),  # the device's default budget sizes the run
    ],
)
def test_steps_are_timed_only_where_the_plan_uses_them(
    monkeypatch, sources, options, requested, native_bf16, needed
):
    monkeypatch.setattr(steps_module, "_native_bf16", lambda: native_bf16)
    planning = _Planning(sources, **options)
    assert planning._timing_needed(requested) is needed
    if not needed and requested == "auto" and native_bf16 and options.get("device") != "cuda":
        assert planning._untimed_precision(requested) == (
            "fp32",
            "fp32: a bf16 Dice check would cost more than 10% of this run",
        )


def test_an_untimed_schedule_is_refused_where_a_budget_needs_seconds():
    plan = Plan((2.0, 2.0, 2.0), (32, 32, 32), (4, 8), 2, epochs=3, sources={"epochs": "--epochs"})
    fit_schedule(plan, 10, None, 0.0, 4.0)
    assert (plan.iterations_per_epoch, plan.val_every) == (25, 1)  # the rule, every epoch
    assert plan.estimate == {"preparation": 4.0, "iterations": 75, "validations": 3, "timed": False}
    assert any("not timed before the first epoch" in line for line in plan.describe())
    budget = Plan((2.0, 2.0, 2.0), (32, 32, 32), (4, 8), 2, epochs=3, sources={"epochs": "x"})
    budget.budget_given, budget.budget_s = True, 600.0
    with pytest.raises(ValueError, match="needs timed steps"):
        fit_schedule(budget, 10, None, 0.0, 4.0)

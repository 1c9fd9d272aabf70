"""The plan prices validations as they run: those before the last from one pass per tile, the
last per depth (LAST_VALIDATION_FACTOR x). Every validation was priced at the per-depth cost,
so a budget run got fewer epochs than fit and the ETA after a one-pass validation was low."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from test_training_plan import CPU2, _fingerprint
from test_training_validation import _count_folds_and_workspaces
from UNetPlusPlusLib.engine.network import UNetPlusPlus3D
from UNetPlusPlusLib.training.planner import plan_geometry
from UNetPlusPlusLib.training.run_plan import PlanningMixin
from UNetPlusPlusLib.training.schedule import (
    LAST_VALIDATION_FACTOR,
    fit_schedule,
    validation_count,
    validations_seconds,
)
from UNetPlusPlusLib.training.steps import VALIDATION_PASSES, _time_forward, validation_seconds


def test_validations_end_with_one_per_depth():
    assert LAST_VALIDATION_FACTOR == VALIDATION_PASSES == 3.2  # L4 passes, and one-pass ones
    assert validations_seconds(0, 5.0) == 0.0
    assert validations_seconds(1, 5.0) == pytest.approx(16.0)
    assert validations_seconds(4, 5.0) == pytest.approx(3 * 5.0 + 16.0)


def test_the_calibration_estimates_a_one_pass_validation():
    """One 32^3 case in one 32^3 tile at 1 s per L4 tile: ~1 pass (3.2 for the last)."""
    assert validation_seconds([(32, 32, 32)], (32, 32, 32), 0.25, 1.0) == pytest.approx(1.02)


def test_a_budget_holds_the_epochs_that_fit_at_the_one_pass_price():
    plan = plan_geometry(_fingerprint((64, 64, 64), (1, 1, 1), (30, 30, 30)), CPU2, {})
    plan.budget_s, plan.budget_given = 600.0, True
    fit_schedule(plan, 40, seconds_per_iteration=0.5, seconds_per_validation=10, elapsed_s=60)
    count = validation_count(plan.epochs, plan.val_every)
    assert count >= 2 and plan.estimate["validations"] == count
    assert plan.estimate["validation"] == pytest.approx((count - 1) * 10 + 32.0, abs=0.05)
    assert plan.estimate["validation"] <= 0.15 * 540  # within the validation share
    training = plan.estimate["training"]
    assert 0.97 * 540 <= training + plan.estimate["validation"] <= 540
    assert training + count * 32.0 > 540  # what per-depth pricing of all could not have held
    assert plan.measured["seconds_per_last_validation"] == 32.0


class _Run(PlanningMixin):
    def __init__(self, epochs: int, validation_s: float) -> None:
        self.config = SimpleNamespace(epochs=epochs, iterations_per_epoch=10, val_every=1)
        self.plan = None
        self._iteration_s, self._validation_s = 0.5, validation_s


def test_the_eta_prices_the_last_validation_per_depth():
    rest = _Run(epochs=4, validation_s=2.0)._rest(2)  # epoch 3 from one pass, 4 per depth
    assert rest["validations"] == 2 and rest["training"] == pytest.approx(10.0)
    assert rest["validation"] == pytest.approx(2.0 + 3.2 * 2.0)
    assert _Run(epochs=4, validation_s=2.0)._rest(4)["validation"] == 0.0


@pytest.mark.usefixtures("one_torch_thread")
def test_the_calibration_times_a_tile_as_a_validation_runs_it(monkeypatch):
    """The L4 tile whose seconds price the validations runs in one kept workspace, as a
    validation's tiles now do (a fresh workspace per call timed the up-convolution folds and
    weight packing too, which a validation pays once)."""
    torch.manual_seed(0)
    model = UNetPlusPlus3D(1, 2, (4, 8, 8, 8, 8, 4))
    folds, workspaces = _count_folds_and_workspaces(monkeypatch)
    assert _time_forward(model, torch.randn(1, 1, 16, 16, 32), torch.device("cpu")) > 0
    assert len(workspaces) == 1 and folds and len(folds) == len(set(folds))
    assert model.training  # as it was

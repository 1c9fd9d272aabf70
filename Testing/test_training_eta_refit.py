"""The ETA after a budget re-fit that ends the run: the finish step still validates the final
weights per depth (3.2 one-pass validations), since the last epoch's validation ran from one
pass, untimed. The ETA said 0s there, and the epoch line printed the ETA of the plan before the
re-fit (e.g. "epoch 1/9 ...; ETA 2m21s", then "9 -> 2 epochs"). The real ``_refit`` and
``_rest`` on a plan fitted to a 10-minute budget; no training, no clock: a few ms of CPU."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from UNetPlusPlusLib.training.planner import Plan
from UNetPlusPlusLib.training.run_plan import PlanningMixin
from UNetPlusPlusLib.training.schedule import (
    LAST_VALIDATION_FACTOR,
    finish_reserve,
    fit_schedule,
)

BUDGET, ITERATION_S, VALIDATION_S = 600.0, 0.5, 4.0


class _Run(PlanningMixin):
    """The Trainer's state that the planning mixin reads, ``used_s`` of the budget spent."""

    def __init__(self, plan: Plan, out_dir, used_s: float) -> None:
        self.plan, self.out_dir, self._bar, self.lines = plan, out_dir, None, []
        self.config = SimpleNamespace(
            epochs=plan.epochs, iterations_per_epoch=plan.iterations_per_epoch,
            val_every=plan.val_every,
        )  # fmt: skip
        self.context = SimpleNamespace(enabled=False, is_main=True)
        self.started, self.budget_used_before = time.monotonic(), used_s
        self._iteration_s, self._validation_s = ITERATION_S, VALIDATION_S

    def log(self, line: str) -> None:
        self.lines.append(line)


def test_a_refit_that_ends_the_run_leaves_the_final_validation_in_the_eta(tmp_path):
    plan = Plan(spacing=(1.0, 1.0, 1.0), tile_size=(32, 32, 32), features=(4,), batch_size=2,
                budget_s=BUDGET, budget_given=True, device={"kind": "cpu"})  # fmt: skip
    fit_schedule(plan, 40, ITERATION_S, VALIDATION_S, 60.0)
    assert plan.epochs > 2
    epoch_s = plan.iterations_per_epoch * ITERATION_S
    # after epoch 1 the run was slowed: 15 s left, room for the final validation only
    run = _Run(plan, tmp_path, BUDGET - finish_reserve(BUDGET) - 15.0)
    run._refit(1, epoch_s)
    assert run.config.epochs == 1 and "-> 1 epochs" in run.lines[-1]
    rest = run._rest(1)
    assert rest["validations"] == 1 and rest["iterations"] == 0
    assert run._eta(1) == pytest.approx(LAST_VALIDATION_FACTOR * VALIDATION_S)  # was 0.0
    # a run that ends as planned has validated per depth in its last epoch: nothing left
    planned = _Run(plan, tmp_path, 0.0)
    assert planned._eta(planned.config.epochs) == 0.0

"""The end of a run with a time budget: the per-depth validation of the final weights fits it.

The finish step validates the final weights per depth (3.2 one-pass validations) when a re-fit
ends the run after an epoch whose validation came from one pass or that had none. A re-fit kept
a plan up to 3 % over the time left to the end, so a run at a steady pace a little slower than
planned ended up to one final validation past its budget; a schedule whose fixed iterations per
epoch (or epochs) the budget could not hold was planned anyway. Whole runs are priced with the
planner's own figures (no training, no clock): a few ms of CPU.
"""

from __future__ import annotations

import pytest
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.training.planner import Plan
from UNetPlusPlusLib.training.schedule import (
    LAST_VALIDATION_FACTOR,
    finish_reserve,
    fit_schedule,
    refit_epochs,
    validations_seconds,
)
from UNetPlusPlusLib.training.trainer import FINAL_VALIDATION, unmarked_history

BUDGET, PREPARATION, ITERATION_S, VALIDATION_S = 600.0, 60.0, 0.5, 4.0


def _plan(**fixed) -> Plan:
    """A plan fitted to a 10-minute budget: 0.5 s per iteration, 4 s per one-pass validation."""
    plan = Plan(spacing=(1.0, 1.0, 1.0), tile_size=(32, 32, 32), features=(4,), batch_size=2,
                budget_s=BUDGET, budget_given=True, device={"kind": "cpu"})  # fmt: skip
    for key, value in fixed.items():
        setattr(plan, key, value)
        plan.sources[key] = f"--{key}"
    return fit_schedule(plan, 40, ITERATION_S, VALIDATION_S, PREPARATION)


def _run(plan: Plan, pace: float) -> float:
    """Seconds a run of ``plan`` takes when every epoch and validation runs ``pace`` times the
    planned seconds, re-fitted after each epoch as the trainer does (``_refit``: the time left
    less the package's share); the finish validates the final weights per depth unless the
    last epoch's validation did."""
    epoch_s = plan.iterations_per_epoch * ITERATION_S * pace
    one_pass = VALIDATION_S * pace
    used, done = PREPARATION, 0
    while done < plan.epochs:
        done += 1
        if done == plan.epochs:  # the last epoch: its validation runs per depth
            return used + epoch_s + validations_seconds(1, one_pass)
        used += epoch_s + (one_pass if done % plan.val_every == 0 else 0.0)
        left = BUDGET - used - finish_reserve(BUDGET)
        refit = refit_epochs(plan, done, left, epoch_s, one_pass)
        if refit is not None:
            plan.epochs, plan.val_every = refit
    return used + validations_seconds(1, one_pass)  # a re-fit ended the run after ``done``


@pytest.mark.parametrize("pace", [0.8, 1.0, 1.01, 1.02, 1.03, 1.1, 1.5])
def test_a_run_at_a_steady_pace_ends_within_its_budget(pace):
    """1.01-1.03: the plan stays within 3 % of the time left, which kept it to the end and
    passed the budget; now the re-fit ends it while the final validation still fits."""
    plan = _plan()
    assert plan.estimate["total"] <= BUDGET - finish_reserve(BUDGET)  # the package's share
    ended = _run(plan, pace)
    assert ended <= BUDGET - finish_reserve(BUDGET), (ended, plan.epochs)
    if pace <= 1.0:  # on (or ahead of) plan: the budget is used, not given away
        assert ended >= 0.95 * BUDGET


def test_a_plan_over_the_time_left_is_kept_only_while_the_run_can_still_stop():
    plan = _plan()
    epoch_s = plan.iterations_per_epoch * ITERATION_S
    done = plan.epochs - 1  # the next epoch is the last: it and its per-depth validation
    last = epoch_s + validations_seconds(1, VALIDATION_S)
    over = 0.02 * BUDGET  # within the 3 % a re-fit ignores
    epochs, _every = refit_epochs(plan, done, last - over, epoch_s, VALIDATION_S)
    assert epochs == done  # end now: the finish step's validation still fits
    assert LAST_VALIDATION_FACTOR * VALIDATION_S <= last - over
    early = refit_epochs(plan, 2, _cost(plan, 2, epoch_s) - over, epoch_s, VALIDATION_S)
    assert early is None  # far from the end, a later re-fit can still cut: kept


def _cost(plan: Plan, done: int, epoch_s: float) -> float:
    later = [e for e in range(done + 1, plan.epochs + 1)
             if e % plan.val_every == 0 or e == plan.epochs]  # fmt: skip
    return (plan.epochs - done) * epoch_s + validations_seconds(len(later), VALIDATION_S)


@pytest.mark.parametrize(
    "fixed, least",
    [({"iterations_per_epoch": 1200}, "1200 iterations"), ({"epochs": 1100}, "1100 iterations")],
)
def test_a_budget_that_cannot_hold_the_given_schedule_is_refused(fixed, least):
    """540 s hold ~1000 iterations and the final validation: one epoch of 1200 (or 1100 epochs
    of one) was planned anyway and overran the budget."""
    with pytest.raises(UNetPlusPlusError, match=f"too short.*{least}.*final weights"):
        _plan(**fixed)
    assert _plan(iterations_per_epoch=900).epochs == 1  # one epoch and its validation fit


def test_a_resumed_history_drops_the_final_mark():
    """The resumed run's last epoch is the final validation; older entries read as they are."""
    marked = {"epoch": 2, "loss": 0.5, "validation": {"1": 0.7}, FINAL_VALIDATION: True,
              "seconds_per_volume": {"1": 0.2}}  # fmt: skip
    older = [{"epoch": 1, "loss": 0.9}, {"epoch": 2, "loss": 0.5, "validation": {"1": 0.7}}]
    assert unmarked_history([older[0], marked]) == older
    assert unmarked_history(older) == older

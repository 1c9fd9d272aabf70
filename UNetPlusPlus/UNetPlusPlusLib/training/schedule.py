"""The training schedule of a plan (:mod:`.planner`): iterations per epoch, epochs and
validation interval, fitted to a time budget once a few real training steps were timed
(:func:`fit_schedule`) and re-fitted after each epoch from the pace measured so far
(:func:`refit_epochs`; a shared machine's load changes). Split from planner.py, which makes
the geometry (spacing, tile, width, batch) before any measurement.
"""

from __future__ import annotations

import math
import time
from typing import Optional

from ..errors import UNetPlusPlusError
from .planner import Plan, format_duration

DEFAULT_BUDGET_S = {"cpu": 3600.0, "cuda": 4 * 3600.0}
MIN_ITERATIONS = 5
DEFAULT_ITERATIONS = (25, 250)  # bounds of the iterations-per-epoch rule
MAX_EPOCHS_DEFAULT = 100
MAX_EPOCHS_BUDGET = 1000
BUDGET_EPOCHS = 20  # with a budget, at least this many epochs: re-fits in steps of ~5 %
VALIDATION_SHARE = 0.15  # at most this share of the budget goes to validation
ONE_VALIDATION_SHARE = 0.075  # one validation at most: room for two within VALIDATION_SHARE
MIN_VALIDATION_CASES = 8
# Validations before the last score every depth from one pass per tile; the last runs and times
# each depth on its own: 3.2x the CPU of a one-pass validation (bench/validation_one_pass.py).
LAST_VALIDATION_FACTOR = 3.2
FINISH_SHARE = 0.01  # of the budget kept for writing the package (at least FINISH_MIN_S)
FINISH_MIN_S = 2.0
REFIT_TOLERANCE = 0.03  # share of the budget: a plan this close to the time left is kept


def finish_reserve(budget_s: float) -> float:
    """Seconds of a budget kept for writing the model package: 1 %, at least 2 s."""
    return max(FINISH_MIN_S, FINISH_SHARE * float(budget_s))


def validation_count(epochs: int, val_every: int) -> int:
    """Validations in a run: every ``val_every`` epochs and after the last."""
    return len({e for e in range(1, epochs + 1) if e % val_every == 0} | {epochs})


def validations_seconds(count: int, one_pass_s: float) -> float:
    """Seconds of ``count`` validations that end with the run's last: ``count - 1`` from one
    pass at ``one_pass_s`` each, the last per depth (:data:`LAST_VALIDATION_FACTOR` times
    that); 0.0 for none."""
    return 0.0 if count <= 0 else (count - 1 + LAST_VALIDATION_FACTOR) * one_pass_s


def one_pass_pace(pace: dict) -> tuple[dict, bool]:
    """``pace`` (plan.json's ``measured`` or a checkpoint's ``pace``) with its validation pace
    per one-pass validation, and whether it was converted. Those written before validations were
    priced so (no ``seconds_per_last_validation``) hold a per-depth ``seconds_per_validation``:
    it becomes the last validation's, and ``seconds_per_validation`` that divided by
    :data:`LAST_VALIDATION_FACTOR`. A pace with the key, or without a validation pace, is
    returned as it is."""
    value = pace.get("seconds_per_validation")
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if "seconds_per_last_validation" in pace or not number or value < 0:
        return pace, False
    converted = dict(pace, seconds_per_validation=round(value / LAST_VALIDATION_FACTOR, 2))
    converted["seconds_per_last_validation"] = round(float(value), 2)
    return converted, True


def default_iterations(training_cases: int, batch_size: int) -> int:
    """Iterations per epoch: each training case about twice per epoch, within 25..250."""
    low, high = DEFAULT_ITERATIONS
    return int(min(high, max(low, math.ceil(2 * training_cases / batch_size))))


def needs_timing(plan: Plan) -> bool:
    """Whether fitting the schedule needs timed steps: with a budget (given, or the device
    default when the epochs are not fixed); not for fixed epochs without ``--time-budget``."""
    return plan.budget_given or "epochs" not in plan.sources


def fit_schedule(
    plan: Plan,
    training_cases: int,
    seconds_per_iteration: Optional[float],
    seconds_per_validation: float,
    elapsed_s: float,
    validation_cases: int = 0,
) -> Plan:
    """Fill iterations per epoch, epochs and validation interval, and the estimate.

    With a budget (given, or the device default when neither epochs nor iterations are fixed)
    the run is sized so preparation (``elapsed_s`` so far) + training + validation fit it; an
    explicit budget is filled, the default one only bounds the run (at most 100 epochs). Raises
    UNetPlusPlusError when the budget cannot hold a single iteration. Where the last validation
    (per depth) of all ``validation_cases`` would take more than 7.5 % of the budget, the plan
    validates on an evenly spread subset (at least 8 cases) unless ``validation_cases`` is fixed.

    ``seconds_per_validation`` is one validation from one pass per tile (those before the
    last); the last is priced at :data:`LAST_VALIDATION_FACTOR` times it
    (:func:`validations_seconds`).

    ``seconds_per_iteration`` None (nothing timed; only where :func:`needs_timing` is False):
    the estimate holds the counts and the preparation, no seconds (the ETA comes with the
    first epoch). Raises ValueError for None where the schedule needs timing.
    """
    fixed = set(plan.sources)
    if seconds_per_iteration is None and needs_timing(plan):
        raise ValueError("a schedule fitted to a budget needs timed steps")
    rule = default_iterations(training_cases, plan.batch_size)
    if "iterations_per_epoch" not in fixed:
        plan.iterations_per_epoch = rule
        plan.reasons["iterations_per_epoch"] = (
            f"each of the {training_cases} training case(s) about twice per epoch (25..250)"
        )
    if "val_every" not in fixed:
        plan.val_every = 1
        plan.reasons["val_every"] = "every epoch"
    if seconds_per_iteration is None:
        plan.estimate = {
            "preparation": round(elapsed_s, 1),
            "iterations": plan.epochs * plan.iterations_per_epoch,
            "validations": validation_count(plan.epochs, plan.val_every),
            "timed": False,
        }
        return plan
    t_iter = max(seconds_per_iteration, 1e-6)
    t_val = max(seconds_per_validation, 0.0)
    schedule_fixed = {"epochs", "iterations_per_epoch"} <= fixed
    use_budget = plan.budget_given or "epochs" not in fixed
    if plan.budget_s is None and use_budget:
        plan.budget_s = DEFAULT_BUDGET_S.get(plan.device.get("kind", "cpu"), 3600.0)
    if use_budget and validation_cases and t_val > 0 and "validation_cases" not in fixed:
        limit = ONE_VALIDATION_SHARE * (float(plan.budget_s or 0) - elapsed_s)
        last = LAST_VALIDATION_FACTOR * t_val
        subset = max(MIN_VALIDATION_CASES, int(validation_cases * limit / last))
        if subset < validation_cases:
            plan.validation_cases = subset
            plan.reasons["validation_cases"] = (
                f"{subset} of {validation_cases}, evenly spread: the last validation of all "
                f"would take ~{last:.0f} s, over 7.5% of the budget"
            )
            t_val *= subset / validation_cases
    if use_budget and not schedule_fixed:
        _fit_to_budget(plan, fixed, rule, t_iter, t_val, elapsed_s)
    count = validation_count(plan.epochs, plan.val_every)
    training = plan.epochs * plan.iterations_per_epoch * t_iter
    validation = validations_seconds(count, t_val)
    total = elapsed_s + training + validation
    plan.measured.update(
        seconds_per_iteration=round(t_iter, 4),
        seconds_per_validation=round(t_val, 2),
        seconds_per_last_validation=round(LAST_VALIDATION_FACTOR * t_val, 2),
    )
    plan.estimate = {
        "preparation": round(elapsed_s, 1),
        "training": round(training, 1),
        "validation": round(validation, 1),
        "validations": count,
        "iterations": plan.epochs * plan.iterations_per_epoch,
        "total": round(total, 1),
        "finish_epoch": time.time() + total - elapsed_s,
    }
    return plan


def refit_epochs(
    plan: Plan, done: int, remaining_s: float, epoch_s: float, validation_s: float
) -> Optional[tuple[int, int]]:
    """(epochs, validation interval) that fit ``remaining_s`` after ``done`` epochs at the
    measured pace (seconds per epoch without validation, seconds per one-pass validation; the
    last costs more, :func:`validations_seconds`), keeping the planned number of validations;
    None when the plan is kept (or has no given budget, or fixed epochs). Never fewer epochs
    than ``done``.

    Ending after ``done`` is priced too: the finish step then validates the final weights per
    depth (:data:`LAST_VALIDATION_FACTOR` one-pass validations). A plan within 3 % of
    ``remaining_s`` is kept, but one over it only while the next epoch as planned still leaves
    room for that validation, so a run at the measured pace ends within its budget."""
    if not plan.budget_given or "epochs" in plan.sources or not plan.budget_s:
        return None
    planned = validation_count(plan.epochs, plan.val_every)
    stop_s = validations_seconds(1, validation_s)  # the finish's validation of the weights

    def interval(epochs: int) -> int:
        if "val_every" in plan.sources:
            return plan.val_every
        return max(1, math.ceil(epochs / planned))

    def cost(epochs: int) -> float:
        if epochs <= done:
            return stop_s
        every = interval(epochs)
        later = [e for e in range(done + 1, epochs + 1) if e % every == 0 or e == epochs]
        return (epochs - done) * epoch_s + validations_seconds(len(later), validation_s)

    nxt = done + 1  # the next epoch as planned, then the end
    next_validated = nxt < plan.epochs and nxt % plan.val_every == 0
    next_then_stop = epoch_s + (validation_s if next_validated else 0.0) + stop_s
    close = abs(cost(plan.epochs) - remaining_s) <= REFIT_TOLERANCE * plan.budget_s
    if close and next_then_stop <= remaining_s:
        return None
    last = min(MAX_EPOCHS_BUDGET, done + 3 * plan.epochs + 10)
    fitting = [e for e in range(done, last + 1) if cost(e) <= remaining_s]
    epochs = max(fitting) if fitting else done
    if epochs == plan.epochs:
        return None
    return epochs, interval(epochs)


def _fit_to_budget(plan: Plan, fixed: set, rule: int, t_iter: float, t_val: float, elapsed: float):
    budget = float(plan.budget_s or 0)
    available = budget - elapsed - finish_reserve(budget)
    allowed = MAX_EPOCHS_BUDGET  # validations within VALIDATION_SHARE, the last per depth
    if t_val > 0:
        allowed = max(1, int(VALIDATION_SHARE * available / t_val - (LAST_VALIDATION_FACTOR - 1)))
    # the shortest run: one epoch (or the fixed epochs) and the validation of the final weights
    least = (plan.epochs if "epochs" in fixed else 1) * (
        plan.iterations_per_epoch if "iterations_per_epoch" in fixed else 1
    )
    if least * t_iter + validations_seconds(1, t_val) > available:
        raise _too_short(plan, elapsed, least, t_iter, t_val)
    count = 1
    for _round in range(4):  # validations depend on epochs and vice versa; settles quickly
        iterations = int((available - validations_seconds(count, t_val)) / t_iter)
        if iterations < least:  # more validations than the one: at most every epoch's
            raise _too_short(plan, elapsed, least, t_iter, t_val)
        if "epochs" in fixed:
            plan.iterations_per_epoch = max(1, iterations // plan.epochs)
            plan.reasons["iterations_per_epoch"] = "fills the budget"
        elif "iterations_per_epoch" in fixed:
            epochs = max(1, iterations // plan.iterations_per_epoch)
            cap = MAX_EPOCHS_BUDGET if plan.budget_given else MAX_EPOCHS_DEFAULT
            plan.epochs = min(epochs, cap)
        else:
            epochs = iterations // rule
            if plan.budget_given:  # short epochs, so a re-fit can keep to the budget closely
                epochs = max(epochs, min(BUDGET_EPOCHS, iterations // MIN_ITERATIONS))
            if epochs < 2:
                epochs = 2 if iterations >= 2 * MIN_ITERATIONS else 1
            epochs = min(epochs, MAX_EPOCHS_BUDGET if plan.budget_given else MAX_EPOCHS_DEFAULT)
            plan.epochs = epochs
            if plan.budget_given or iterations // epochs < rule:
                plan.iterations_per_epoch = max(1, iterations // epochs)
                plan.reasons["iterations_per_epoch"] = "fills the budget"
        if "epochs" not in fixed:
            plan.reasons["epochs"] = (
                "fills the budget" if plan.budget_given else "fits the default budget"
            )
            if not plan.budget_given and plan.epochs == MAX_EPOCHS_DEFAULT:
                plan.reasons["epochs"] = "at most 100 epochs without a budget"
        if "val_every" not in fixed:
            plan.val_every = max(1, math.ceil(plan.epochs / allowed))
            plan.reasons["val_every"] = (
                "every epoch" if plan.val_every == 1 else "validation within 15% of the budget"
            )
        new_count = validation_count(plan.epochs, plan.val_every)
        if new_count == count:
            break
        count = new_count


def _too_short(plan: Plan, elapsed: float, least: int, t_iter: float, t_val: float):
    """The error of a budget that cannot hold the shortest run (``least`` iterations)."""
    budget = float(plan.budget_s or 0)
    what = "one iteration" if least == 1 else f"{least} iterations (the given schedule's least)"
    which = f"The time budget {format_duration(budget)}"
    if not plan.budget_given:  # not the user's: say so (it read as a budget they had given)
        which = (
            f"The default time budget on this device ({format_duration(budget)}; no "
            "--time-budget was given)"
        )
    return UNetPlusPlusError(
        f"{which} is too short: preparation took "
        f"{format_duration(elapsed)}, {what} take(s) ~{least * t_iter:.1f} s, the validation "
        f"of the final weights (every depth) ~{validations_seconds(1, t_val):.0f} s and "
        f"writing the package ~{finish_reserve(budget):.0f} s; give a longer --time-budget, "
        "fewer --iterations-per-epoch or --epochs, or fewer/smaller cases."
    )

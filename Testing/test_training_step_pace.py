"""The ETA of training steps without what is not a step's (training/step_pace.py): the progress
bar's ETA was tqdm's, iterations left over the rate between two updates of the bar, so a
validation's seconds counted as the next iteration's (after 30 s of validation between 1 s
steps, 30 iterations read about 5 minutes); and the run's first step (warm-up) entered the
first epoch's pace, which the epoch line's ETA, the budget re-fit and the session stop
extrapolate. Given step times throughout; the bar runs on a clock the test sets, so nothing
here depends on the machine's speed."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm
from UNetPlusPlusLib.training.step_pace import (
    BAR_FORMAT,
    WARM_UP_STEPS,
    StepPace,
    steady_step_seconds,
)


def test_the_warm_up_steps_are_left_out_of_the_mean():
    assert WARM_UP_STEPS == 1
    assert steady_step_seconds([6.0, 1.0, 1.0, 1.0], 1) == pytest.approx(1.0)
    assert steady_step_seconds([6.0, 1.0, 1.0, 1.0], 0) == pytest.approx(2.25)
    assert steady_step_seconds([6.0], 1) == pytest.approx(6.0)  # nothing else to go by
    assert steady_step_seconds([], 1) == 0.0


def _epoch(pace: StepPace, seconds) -> None:
    pace.start_epoch()
    for value in seconds:
        pace.add(value)


def test_only_the_processs_first_step_is_warm_up():
    pace = StepPace()
    assert pace.per_step() is None and pace.eta(10) is None
    _epoch(pace, [6.0, 1.0, 1.0, 1.0])
    assert pace.per_step() == pytest.approx(1.0)  # the whole epoch's mean: 2.25
    assert pace.eta(8) == pytest.approx(8.0)
    _epoch(pace, [1.5, 1.5])  # a later epoch's first step is one of its steps
    assert pace.per_step() == pytest.approx(1.5)
    assert pace.eta(4) == pytest.approx(6.0)


def test_while_only_the_warm_up_ran_the_eta_takes_the_earlier_pace():
    """The first step alone says nothing of the next ones: the calibration's (or the
    checkpoint's) seconds per step stand in, else the ETA is unknown."""
    pace = StepPace()
    _epoch(pace, [6.0])
    assert pace.eta(10, fallback=1.2) == pytest.approx(12.0)
    assert pace.eta(10) is None and pace.eta_text(10) == "?"
    pace.add(1.0)
    assert pace.eta(10, fallback=1.2) == pytest.approx(10.0)
    assert pace.eta_text(10) == "10s"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bars_eta_leaves_out_a_validation_between_epochs():
    """The bar as the Trainer makes it: 5 steps of 1 s (the first 6 s, warm-up), then a 30 s
    validation, then one step of 1 s; 34 steps left. tqdm's own estimate from its rate (what the
    bar showed) is several times the steps' pace; the bar's ETA is 34 x 1 s."""
    clock, text = _Clock(), io.StringIO()
    bar = tqdm(total=40, file=text, mininterval=0, miniters=1, bar_format=BAR_FORMAT)
    bar._time = clock
    bar.start_t = bar.last_print_t = 0.0
    pace = StepPace()

    def step(seconds: float) -> None:
        clock.now += seconds
        pace.add(seconds)
        bar.set_postfix({"eta": pace.eta_text(bar.total - bar.n - 1)}, refresh=False)
        bar.update(1)

    pace.start_epoch()
    for seconds in (6.0, 1.0, 1.0, 1.0, 1.0):
        step(seconds)
    clock.now += 30.0  # validation and checkpoint: no step
    pace.start_epoch()
    step(1.0)
    shown = text.getvalue().split("\r")[-1]
    assert "eta=34s" in shown, shown
    rate = bar.format_dict["rate"]
    assert (bar.total - bar.n) / rate > 3 * 34  # tqdm's estimate, inflated by the validation
    assert "<" not in shown  # tqdm's own remaining time is not shown
    bar.close()

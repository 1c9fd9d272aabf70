"""training/planner.format_duration: how the plan, the ETA and the budget warnings show a
duration. A resumed session's budget of 0.05 s read "the time budget 0s"."""

from __future__ import annotations

import pytest
from UNetPlusPlusLib.training.planner import format_duration


@pytest.mark.parametrize(
    "seconds, shown",
    [
        (-2.0, "0s"),  # time left, already spent
        (0.0, "0s"),
        (0.004, "<0.01s"),
        (0.05, "0.05s"),
        (0.125, "0.12s"),
        (0.5, "0.5s"),
        (0.96, "0.96s"),
        (3.25, "3.2s"),
        (9.94, "9.9s"),
        (9.95, "10s"),  # not "10.0s" nor "9.9s"
        (10.4, "10s"),
        (42.0, "42s"),
        (59.6, "1m00s"),
        (570.0, "9m30s"),
        (3599.6, "1h00m"),
        (3725.0, "1h02m"),
    ],
)
def test_format_duration(seconds, shown):
    assert format_duration(seconds) == shown


def test_a_sub_second_budget_is_not_shown_as_nothing():
    """Every positive duration shows a positive figure (or '<0.01s'), never '0s'."""
    for seconds in (1e-6, 0.01, 0.049, 0.3, 0.999, 1.0, 1.05):
        shown = format_duration(seconds)
        assert shown != "0s" and shown.endswith("s"), (seconds, shown)
        if not shown.startswith("<"):
            assert float(shown[:-1]) > 0

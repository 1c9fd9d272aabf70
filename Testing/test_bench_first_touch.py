"""bench/first_touch_cost.py: what touching fresh memory costs, measured in fresh processes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import first_touch_cost  # noqa: E402


def test_touch_seconds_measures_a_fresh_process():
    seconds = first_touch_cost.touch_seconds(0.01)  # 10 MiB
    assert 0.0 < seconds < 60.0


def test_main_prints_both_conditions_and_the_ratio_key(capsys):
    first_touch_cost.main(["--gib", "0.01", "--rounds", "2", "--pause", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"\s*after a pause: median [0-9.]+ s/GiB \([0-9.]+, [0-9.]+\)", lines[0])
    assert re.fullmatch(r"\s*just freed: median [0-9.]+ s/GiB \([0-9.]+, [0-9.]+\)", lines[1])
    assert re.fullmatch(r"first_touch_paused_vs_freed=[0-9.]+", lines[2])


@pytest.mark.parametrize(
    "option, value", [("--rounds", "0"), ("--gib", "0"), ("--gib", "nan"), ("--pause", "-1")]
)
def test_senseless_values_are_one_usage_error(capsys, option, value):
    """--rounds 0 ended in statistics.StatisticsError, --gib 0 in ZeroDivisionError, --pause -1
    in time.sleep's ValueError: tracebacks, not a usage error."""
    with pytest.raises(SystemExit) as stop:
        first_touch_cost.main([option, value])
    assert stop.value.code == 2
    error = capsys.readouterr().err
    assert f"argument {option}" in error and "Traceback" not in error

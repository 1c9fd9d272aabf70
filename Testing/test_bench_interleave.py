"""bench/benchlib/interleave.py: the interleaved loop of the A/B bench jobs, and the
wait-policy job built on it (``wait_policy_ab``: one fresh process per variant)."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

from benchlib import interleave, wait_policy_ab  # noqa: E402


def test_rounds_outer_groups_in_turn_each_member_once():
    groups = [["a", "b", "c"], ["x", "y"]]
    got = list(interleave.order(2, groups))
    assert got == [(0, m) for m in "abcxy"] + [(1, m) for m in "abcxy"]


def test_rotation_puts_each_member_first_in_turn():
    groups = [["a", "b", "c"], ["x", "y"]]
    got = [m for _, m in interleave.order(3, groups, rotate=True)]
    assert got == list("abcxy" + "bcayx" + "cabxy")
    # the toggles job's former inline rule: names[r % n:] + names[:r % n]
    names = ["main", "none", "norm", "pool"]
    for r in range(9):
        assert interleave.rotated(names, r) == names[r % 4 :] + names[: r % 4]
    assert interleave.rotated((1, 2), 3) == [2, 1]  # two members: ABBA over two rounds
    assert interleave.rotated([], 5) == []


def test_collect_keeps_one_sample_per_round_in_run_order():
    ran = []

    def measure(member):
        ran.append(member)
        return len(ran)

    samples = interleave.collect(2, [["a", "b"], ["c"]], measure, rotate=True)
    assert ran == ["a", "b", "c", "b", "a", "c"]
    assert samples == {"a": [1, 5], "b": [2, 4], "c": [3, 6]}
    assert list(samples) == ["a", "b", "c"]  # first-run order: the jobs' JSON key order


def test_summarize_is_the_jobs_former_formula():
    times = {"t:L1": {"ours": [0.010, 0.012, 0.011], "old": [0.011, 0.012, 0.013]}}
    got = interleave.summarize(times, "ours")
    ratios = [a / b for a, b in zip(times["t:L1"]["old"], times["t:L1"]["ours"])]
    assert got == {
        "t:L1": {
            "ours": round(statistics.median(times["t:L1"]["ours"]), 5),
            "old": round(statistics.median(times["t:L1"]["old"]), 5),
            "old/ours": round(statistics.median(ratios), 3),
        }
    }
    ms = interleave.summarize({"k": {"none": [0.002], "all": [0.001]}}, "none", 1e3, 2)
    assert ms == {"k": {"none": 2.0, "all": 1.0, "all/none": 0.5}}


def test_wait_policy_children_get_their_variant_and_no_inherited_choice(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    monkeypatch.setenv("UNETPP_OPENMP_ENV", "1")
    spin = wait_policy_ab.child_env("spin", managed=False, threads=2)
    assert spin["GOMP_SPINCOUNT"] == "300000" and "OMP_WAIT_POLICY" not in spin
    assert spin["OMP_NUM_THREADS"] == "2" and "UNETPP_WAIT_POLICY" not in spin
    passive = wait_policy_ab.child_env("passive", managed=False, threads=1)
    assert passive["OMP_WAIT_POLICY"] == "PASSIVE" and "GOMP_SPINCOUNT" not in passive
    managed = wait_policy_ab.child_env("spin", managed=True, threads=2)
    assert managed["UNETPP_WAIT_POLICY"] == "spin"
    assert not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "UNETPP_OPENMP_ENV"} & set(managed)
    with pytest.raises(SystemExit):
        wait_policy_ab.parse_args(["--variants", "passive,sleepy"])


def test_wait_policy_module_does_not_load_torch_before_the_variant_is_set():
    """OpenMP reads its wait policy once, when torch loads: the worker must import torch only
    after its environment is final (the driver sets it, ``--managed`` calls apply())."""
    code = "import sys, benchlib.wait_policy_ab; print('torch' in sys.modules)"
    env = {"PYTHONPATH": f"{BENCH}:{BENCH.parent / 'UNetPlusPlus'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "False"


def test_summary_table_medians_and_per_round_ratio():
    def result(ours_ms, cpu_ms=5.0):
        return {"wall_ms": {"n": {"L1": ours_ms}}, "cpu_ms": {"n": {"L1": cpu_ms}}}

    samples = {
        ("spin", "ours"): [result(10.0), result(12.0), result(11.0)],
        ("spin", "openvino"): [result(11.0), result(12.0), result(9.9)],
    }
    lines = wait_policy_ab.summary(samples)
    assert "spin/ours" in lines[1] and "openvino/ours spin" in lines[1]
    row = lines[2].split()
    assert row[:2] == ["n", "L1"]
    assert row[2:4] == ["11.00", "(5.0)"]  # median wall (CPU)
    assert float(row[-1]) == pytest.approx(1.0, abs=1e-3)  # median of 1.1, 1.0, 0.9


def test_time_cells_selects_each_mode_before_its_runs_and_keeps_a_median_per_round():
    log: list = []

    class Runner:
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, tile, depth) -> None:
            log.append((self.name, tile, depth))

    runners = {"old": Runner("old"), "ours": Runner("ours")}
    cells = {"a:L1": (1, "tile-a", runners), "b:L4": (4, "tile-b", runners)}
    selected: list = []
    times = interleave.time_cells(3, cells, ["old", "ours"], reps=2, select=selected.append)
    assert set(times) == {"a:L1", "b:L4"}
    assert all(len(times[key][mode]) == 3 for key in times for mode in ("old", "ours"))
    assert len(selected) == 3 * 2 * 2  # rounds x cells x modes, once before each mode's reps
    assert len(log) == 3 * 2 * 2 * 2  # ... and each mode ran its tile ``reps`` times
    first = [entry for entry in log if entry[1] == "tile-a"][:4]
    assert first == [("old", "tile-a", 1)] * 2 + [("ours", "tile-a", 1)] * 2
    assert selected[:2] == ["old", "ours"]

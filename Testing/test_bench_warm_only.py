"""``python -m benchlib.e2e_bench --warm-only --cases ...``: the warm requests of the chosen
cases only (session 17's before/after rows in docs/BENCHMARK_LOAD.md), no cold run."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # as test_bench.py


def test_warm_only_runs_no_cold_case_and_keeps_the_chosen_cases(monkeypatch, capsys):
    from benchlib import e2e, e2e_bench, warm

    cases = {name: {"inputs": [name], "args": []} for name in e2e_bench.CASES}
    calls: dict = {"cold": 0, "warm": []}

    def cold(*args, **kwargs):
        calls["cold"] += 1
        raise AssertionError("a cold run in --warm-only")

    def warm_runs(found, threads, env, depths, rounds, conditions, log):
        calls["warm"].append(list(found))
        return {
            f"nodule:{condition}": {
                "seconds": s,
                "split": e2e.split_by_stage({}, s),
                "load": 1.0,
                "depth": 3,
            }
            for condition, s in (("idle", 0.2), ("loaded", 0.3))
        }

    monkeypatch.setattr(e2e, "cases", lambda which: {k: cases[k] for k in which})
    monkeypatch.setattr(e2e, "run_case", cold)
    monkeypatch.setattr(warm, "warm_runs", warm_runs)
    e2e_bench.main(["--quick", "--warm-only", "--cases", "nodule,brain"])
    assert calls == {"cold": 0, "warm": [["brain", "nodule"]]}  # the bench's order
    assert capsys.readouterr().out.splitlines()[-1] == "loaded_vs_idle_warm=1.50"

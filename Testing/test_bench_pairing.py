"""bench/benchlib/pairing.py: the default executor and OpenVINO timed side by side (issue 14).

Synthetic timings: runners that advance a fake clock, one of them slower on the tile right after
another executor's tile (OpenVINO's threads still competing, measured +7 %)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchlib import pairing  # noqa: E402

INHERIT = 1.07  # a tile right after another executor's tile takes 7 % longer


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.last = None  # the executor of the last tile
        self.calls: list[tuple[str, int]] = []

    def __call__(self) -> float:
        return self.now


class Runner:
    """``run`` advances ``clock`` by ``seconds[depth]`` (x INHERIT right after another's tile)."""

    def __init__(self, name: str, seconds: dict, clock: Clock) -> None:
        self.name, self.seconds, self.clock = name, seconds, clock
        self.chosen = "ours"

    def run(self, tile, depth):
        took = self.seconds[depth]
        if self.clock.last not in (None, self.name):
            took *= INHERIT
        self.clock.now += took
        self.clock.last = self.name
        self.clock.calls.append((self.name, depth))


def plan(clock: Clock, default_seconds: float = 0.10, openvino_seconds: float = 0.09) -> list:
    """The job's plan order: executor by executor, depth by depth, then the next config."""
    seconds = {"ours": 0.08, "openvino": openvino_seconds, "fastest": default_seconds}
    entries = []
    for cname in ("shipped", "shipped:nodule"):
        for name in ("ours", "openvino", "fastest"):
            runner = Runner(name, {1: seconds[name], 2: 2 * seconds[name]}, clock)
            entries += [(cname, depth, name, runner, None) for depth in (1, 2)]
    return entries


def test_pairs_run_back_to_back_abba_each_after_its_own_settle_tile():
    entries = plan(Clock())
    names = [(c, d, n) for c, d, n, *_ in entries]
    assert pairing.pairs(entries, "fastest") == {
        ("shipped", 1): (4, 2),
        ("shipped", 2): (5, 3),
        ("shipped:nodule", 1): (10, 8),
        ("shipped:nodule", 2): (11, 9),
    }
    for round_index in (0, 1):
        order = pairing.schedule(entries, "fastest", round_index)
        assert sorted(i for i, _ in order) == list(range(12))  # every entry timed once
        assert [(names[i][2], settle) for i, settle in order][:2] == [
            ("ours", False),
            ("ours", False),
        ]  # the other rows as before, no settle tile
        timed = [names[i] for i, settle in order if settle]
        pairs = [timed[k : k + 2] for k in range(0, 8, 2)]
        for k, (a, b) in enumerate(pairs):
            assert a[:2] == b[:2]  # the same config and depth, back to back
            first = "fastest" if (round_index + k) % 2 == 0 else "openvino"
            assert a[2] == first and {a[2], b[2]} == {"fastest", "openvino"}
    round0 = pairing.schedule(entries, "fastest", 0)
    round1 = pairing.schedule(entries, "fastest", 1)
    assert [i for i, s in round0 if s][:2] == [i for i, s in round1 if s][:2][::-1]  # AB, BA


def test_no_pairs_when_the_default_is_openvino_or_unknown():
    entries = plan(Clock())
    for default in (None, "openvino", "torch"):
        assert pairing.pairs(entries, default) == {}
        assert pairing.schedule(entries, default, 1) == [(i, False) for i in range(12)]


def test_paired_ratio_is_exact_though_a_tile_after_openvino_is_slower():
    """The old order (the rows in plan order, fastest right after OpenVINO, no settle) timed
    fastest 7 % slow: ratio 0.09 / 0.107 = 0.84 instead of 0.90."""
    clock = Clock()
    entries = plan(clock)
    per_round = []
    for round_index in range(4):
        timings = pairing.run_round(entries, "fastest", round_index, clock)
        assert len(timings) == 12
        per_round.append(pairing.round_ratios(entries, "fastest", timings))
        seconds = dict(timings)
        assert seconds[4] == pytest.approx(0.10) and seconds[2] == pytest.approx(0.09)
    for ratios in per_round:
        assert ratios.keys() == {("shipped", 1), ("shipped", 2), ("shipped:nodule", 1),
                                 ("shipped:nodule", 2)}  # fmt: skip
        assert all(r == pytest.approx(0.9) for r in ratios.values())
    # 12 timed tiles + 8 settle tiles a round, each settle tile right before its timed one
    assert len(clock.calls) == 4 * 20
    ab = [("fastest", 1)] * 2 + [("openvino", 1)] * 2
    ba = [("openvino", 2)] * 2 + [("fastest", 2)] * 2
    config = [("ours", 1), ("ours", 2)] + ab + ba  # pair 0: the default first, pair 1: OpenVINO
    assert clock.calls[:20] == config + config
    ab, ba = (
        [("fastest", 2)] * 2 + [("openvino", 2)] * 2,
        [("openvino", 1)] * 2 + [("fastest", 1)] * 2,
    )
    config = [("ours", 1), ("ours", 2)] + ba + ab  # round 1: the other way round
    assert clock.calls[20:40] == config + config


def test_median_of_per_round_ratios_not_the_ratio_of_bests():
    assert pairing.median_ratio([0.9, 1.3, 1.1]) == pytest.approx(1.1)
    assert pairing.median_ratio([0.9, 1.1]) == pytest.approx(1.0)  # 2 rounds: their mean
    with pytest.raises(ValueError, match="no paired rounds"):
        pairing.median_ratio([])


def test_time_rounds_records_rows_samples_and_paired_ratios():
    from benchlib.executor_worker import time_rounds

    clock = Clock()
    entries = plan(clock)
    results = {"shipped": {"rows": {}}, "shipped:nodule": {"rows": {}}}
    time_rounds(results, entries, "fastest", "idle", 3, clock)
    liver = results["shipped"]
    assert liver["paired_with"] == "fastest"
    assert liver["paired"]["L1:idle"] == [0.9, 0.9, 0.9]
    assert liver["rows"]["fastest"]["L2:idle"] == pytest.approx(0.2)
    assert len(liver["samples"]["openvino"]["L2:idle"]) == 3
    assert liver["fastest_picks"] == {"L1:idle": {"ours"}, "L2:idle": {"ours"}}
    # ours keeps the plan's order without settle: its L1 tile follows the other config's tiles
    assert liver["rows"]["ours"]["L2:idle"] == pytest.approx(0.16)


def test_rows_are_seconds_per_tile_when_a_pass_runs_two_tiles():
    """The shipped models run 2 tiles per pass by default (tile_run.auto_tile_batch): every
    executor times the same 2-tile batch, and the rows give seconds per tile."""
    import torch
    from benchlib.executor_worker import time_rounds

    clock = Clock()
    entries = [(c, d, n, r, torch.zeros(2, 1, 4, 4, 4)) for c, d, n, r, _ in plan(clock)]
    results = {"shipped": {"rows": {}}, "shipped:nodule": {"rows": {}}}
    time_rounds(results, entries, "fastest", "idle", 1, clock)
    assert results["shipped"]["rows"]["fastest"]["L2:idle"] == pytest.approx(0.1)  # 0.2 / 2
    assert results["shipped"]["paired"]["L1:idle"] == [0.9]  # the same batch: ratio unchanged


def test_only_the_named_configs_are_paired():
    """The job pairs the shipped models only (``executor_worker.PAIRED``), not the large net."""
    from benchlib.executor_worker import PAIRED, time_rounds

    assert set(PAIRED) == {"shipped", "shipped:nodule", "shipped:brain"}
    clock = Clock()
    entries = plan(clock)
    assert set(pairing.pairs(entries, "fastest", {"shipped"})) == {("shipped", 1), ("shipped", 2)}
    order = pairing.schedule(entries, "fastest", 0, {"shipped"})
    assert [settle for _, settle in order] == [False] * 2 + [True] * 4 + [False] * 6
    results = {"shipped": {"rows": {}}, "shipped:nodule": {"rows": {}}}
    time_rounds(results, entries, "fastest", "loaded", 2, clock, paired={"shipped"})
    assert set(results["shipped"]["paired"]) == {"L1:loaded", "L2:loaded"}
    assert "paired" not in results["shipped:nodule"]
    assert len(results["shipped:nodule"]["samples"]["fastest"]["L1:loaded"]) == 2


def test_paired_only_rounds_add_ratios_and_leave_the_rows_alone():
    """After the full rounds the job times the default and OpenVINO alone (job key
    ``paired_rounds``): more ratios per cell for the keys' median, the same rows as before."""
    from benchlib.executor_worker import paired_only_rounds, time_rounds

    clock = Clock()
    entries = plan(clock, default_seconds=0.10, openvino_seconds=0.09)
    results = {"shipped": {"rows": {}}, "shipped:nodule": {"rows": {}}}
    time_rounds(results, entries, "fastest", "idle", 2, clock, paired={"shipped"})
    rows = {name: dict(cells) for name, cells in results["shipped"]["rows"].items()}
    samples = len(results["shipped"]["samples"]["ours"]["L1:idle"])
    clock.calls.clear()
    paired_only_rounds(results, entries, "fastest", "idle", 3, 2, clock, paired={"shipped"})
    assert results["shipped"]["paired"]["L1:idle"] == [0.9] * 5  # 2 full + 3 paired-only
    assert results["shipped"]["paired_with"] == "fastest"
    assert results["shipped"]["rows"] == rows and samples == 2
    assert "paired" not in results["shipped:nodule"]
    # only the pairs ran, each after its settle tile: 2 depths x 2 executors x 2 tiles x 3
    assert {name for name, _ in clock.calls} == {"fastest", "openvino"}
    assert len(clock.calls) == 2 * 2 * 2 * 3
    # ABBA goes on from round 2: round 2 starts with the default (2 + 0 even), round 3 not
    assert clock.calls[0][0] == "fastest" and clock.calls[8][0] == "openvino"


@pytest.mark.parametrize("default", ["openvino", None])
def test_paired_only_rounds_run_nothing_where_nothing_pairs(default):
    """With OpenVINO as the default executor (UNETPP_EXECUTOR=openvino) there is no pair: the
    paired-only rounds ran OpenVINO's tiles 4 times per condition and recorded nothing."""
    from benchlib.executor_worker import paired_only_rounds

    clock = Clock()
    entries = plan(clock)
    results = {"shipped": {"rows": {}}, "shipped:nodule": {"rows": {}}}
    paired_only_rounds(results, entries, default, "idle", 4, 2, clock, paired={"shipped"})
    assert clock.calls == [] and "paired" not in results["shipped"]

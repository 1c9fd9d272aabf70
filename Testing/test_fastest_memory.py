"""The fastest executor's memory of its probes (engine/probe.py ProbeMemory, engine/fastest.py):
a cold run starts on a remembered "ours" without making the library, trusts it as long as the
load and the machine are the same, and probes when the library was remembered."""

from __future__ import annotations

import time

import pytest
import torch
from fastest_clock import PROBE_TILE, Clock, decided_into, timed_fastest
from UNetPlusPlusLib.engine import executors


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("UNETPP_EXECUTOR", raising=False)


def test_fastest_starts_on_a_remembered_ours_and_checks_it_later(sphere_predictor, tmp_path):
    # a cold run (a new process) starts on the last recent decision for these weights, depth,
    # tile shape and threads: ours, without making the library executor (no OpenVINO import
    # or compile), then, the choice having been made at another load, probes after PRIOR_TILES
    from UNetPlusPlusLib.engine.probe import PRIOR_TILES, ProbeMemory

    load = [5.0]  # chosen at load 5 (the bench's loaded rows), recalled at load 1
    memory = ProbeMemory(tmp_path, load=lambda: load[0])
    tile = torch.zeros(PROBE_TILE)
    with torch.no_grad():
        assert decided_into(memory, sphere_predictor, 0.1, 0.5, tile) == "ours"
        load[0] = 1.0
        second = executors.FastestExecutor(  # a still clock: no tile is slower than another
            sphere_predictor.model, threads=2, candidate="torch", memory=memory, clock=Clock()
        )
        second.OURS_FIRST = 1
        ran = [(second.run(tile, 2), second.chosen)[1] for _ in range(PRIOR_TILES)]
        assert ran == ["ours"] * PRIOR_TILES and second._library is None
        ran = [(second.run(tile, 2), second.chosen)[1] for _ in range(4)]
        assert second._library is not None and "torch" in ran  # checked again
        third = executors.FastestExecutor(
            sphere_predictor.model, threads=1, candidate="torch", memory=memory
        )
        third.OURS_FIRST = 1
        third.run(tile, 2)
        third.run(tile, 2)
        assert third._library is not None  # other threads: nothing remembered, a probe
        fourth = executors.FastestExecutor(
            sphere_predictor.model, threads=2, candidate="torch", memory=memory
        )
        fourth.forget()  # forget drops remembered choices too (the bench's fresh probes)
        fourth.OURS_FIRST = 1
        fourth.run(tile, 2)
        fourth.run(tile, 2)
        assert fourth._library is not None


def test_fastest_trusts_a_remembered_ours_made_at_the_same_load(sphere_predictor, tmp_path):
    # session 16: a liver CT run (36 tiles) re-checked a remembered ours after 16 tiles and
    # spent ~0.8 s importing, compiling and running OpenVINO to confirm it; made at about the
    # current load, the choice now holds like a fresh one, for reprobe_every tiles
    from UNetPlusPlusLib.engine.probe import PRIOR_TILES, ProbeMemory

    memory = ProbeMemory(tmp_path, load=lambda: 1.3)
    tile = torch.zeros(PROBE_TILE)
    with torch.no_grad():
        assert decided_into(memory, sphere_predictor, 0.1, 0.5, tile) == "ours"
        second = executors.FastestExecutor(
            sphere_predictor.model,
            threads=2,
            candidate="torch",
            memory=ProbeMemory(tmp_path, load=lambda: 1.9),  # within 1.0 of 1.3
            clock=Clock(),
            reprobe_every=2 * PRIOR_TILES,
        )
        second.OURS_FIRST = 1
        ran = [(second.run(tile, 2), second.chosen)[1] for _ in range(2 * PRIOR_TILES)]
        assert ran == ["ours"] * (2 * PRIOR_TILES) and second._library is None
        ran = [(second.run(tile, 2), second.chosen)[1] for _ in range(4)]
        assert second._library is not None and "torch" in ran  # checked after reprobe_every


def test_fastest_trusts_a_day_old_ours_made_at_the_same_load(sphere_predictor, tmp_path):
    # session 18: a remembered ours older than 15 minutes, made at about the current load on
    # this machine, still starts a cold run on ours without making the library
    from UNetPlusPlusLib.engine.probe import PRIOR_MAX_AGE_S, ProbeMemory

    day = [time.time()]
    memory = ProbeMemory(tmp_path, clock=lambda: day[0], load=lambda: 0.5)
    tile = torch.zeros(PROBE_TILE)
    with torch.no_grad():
        assert decided_into(memory, sphere_predictor, 0.1, 0.5, tile) == "ours"
        day[0] += 86400.0
        for load, probes in ((0.9, False), (4.0, True)):  # the same load, then another
            later = executors.FastestExecutor(
                sphere_predictor.model,
                threads=2,
                candidate="torch",
                memory=ProbeMemory(tmp_path, clock=lambda: day[0], load=lambda now=load: now),
                clock=Clock(),  # a still clock: no tile is slower than another
            )
            later.OURS_FIRST = 1
            ran = [(later.run(tile, 2), later.chosen)[1] for _ in range(2)]
            # trusted: ours, no library; not trusted: one tile of ours, then the library made
            assert ran == ["ours", "ours"] and (later._library is not None) is probes, load
    assert 86400.0 > PRIOR_MAX_AGE_S


def test_fastest_probes_when_the_library_was_remembered(sphere_predictor, tmp_path):
    from UNetPlusPlusLib.engine.probe import ProbeMemory

    memory = ProbeMemory(tmp_path)
    tile = torch.zeros(PROBE_TILE)
    with torch.no_grad():
        assert decided_into(memory, sphere_predictor, 0.5, 0.1, tile) == "torch"
        second = timed_fastest(sphere_predictor, ours_s=0.5, library_s=0.1)
        second.memory = memory
        ran = [(second.run(tile, 2), second.chosen)[1] for _ in range(7)]
    # the first tile, the warm-up, 2 pairs, then the library
    assert ran == ["ours", "ours", "ours", "torch", "ours", "torch", "torch"]

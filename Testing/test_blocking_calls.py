"""The GUI-thread check of the cancel and shutdown tests (blocking_calls.py) catches what it
claims to: a poll that waits for the process, and one that spins on ``Popen.poll`` without
waiting (a busy-wait), which it missed before. The module's real polls pass it in
test_adapter_job_cancel.py and test_adapter_engine_server.py."""

from __future__ import annotations

import subprocess
import sys
import types

import pytest

pytest.importorskip("slicer")

from blocking_calls import PROBES_PER_TICK, BlockingCalls, BusyWait  # noqa: E402
from UNetPlusPlusLib.adapter import job  # noqa: E402
from UNetPlusPlusLib.adapter.process import kill_tree  # noqa: E402

# a child that lives until killed, without reading or writing anything
CHILD = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture()
def child():
    process = subprocess.Popen(CHILD, start_new_session=True)
    yield types.SimpleNamespace(_process=process, _readers=[])
    kill_tree(process)
    process.wait(10)


def test_a_poll_that_waits_for_the_process_is_recorded(child, monkeypatch):
    blocking = BlockingCalls(monkeypatch)
    blocking.watch(child)
    with blocking.inside():
        with pytest.raises(subprocess.TimeoutExpired):
            child._process.wait(0.01)
    assert blocking.calls == ["Popen.wait(0.01,)"]


def test_a_poll_that_spins_on_the_process_is_caught_not_hung(child, monkeypatch):
    """``while process.poll() is None: pass`` never blocks, so the wait check alone passed it;
    it is stopped after PROBES_PER_TICK asks and recorded."""
    blocking = BlockingCalls(monkeypatch)
    blocking.watch(child)
    with blocking.inside(), pytest.raises(BusyWait):
        while child._process.poll() is None:
            pass
    assert blocking.calls == [f"busy-wait: Popen.poll x {PROBES_PER_TICK + 1} in one tick"]


def test_a_poll_that_spins_on_the_clock_is_caught(monkeypatch):
    """A loop until a deadline (``time.monotonic`` as adapter/job.py sees it) is one too."""
    blocking = BlockingCalls(monkeypatch)
    with blocking.inside(), pytest.raises(BusyWait):
        deadline = job.time.monotonic() + 60.0
        while job.time.monotonic() < deadline:
            pass
    assert blocking.calls == [f"busy-wait: time.monotonic x {PROBES_PER_TICK + 1} in one tick"]


def test_probes_are_counted_per_tick_and_only_on_the_watched_thread(child, monkeypatch):
    blocking = BlockingCalls(monkeypatch)
    blocking.watch(child)
    for _ in range(3):  # many ticks, a few asks each: a timer's polls
        with blocking.inside():
            for _ in range(PROBES_PER_TICK):
                assert child._process.poll() is None
    for _ in range(3 * PROBES_PER_TICK):  # outside a tick: not counted
        child._process.poll()
    assert blocking.calls == []

"""``unetpp serve`` waits for a longer pause before its idle probe while other programs use the
cores (``cli_serve.BUSY_PROBE_AFTER_S``; issue 14): the probe's import and compile cannot stop
midway, so a request sent half a second after a reply waited for it (up to 1.7 s measured,
docs/BENCHMARK_LOAD.md). The order of events is asserted, no timings."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
from UNetPlusPlusLib import cli_serve
from UNetPlusPlusLib.engine import cpu_contention
from UNetPlusPlusLib.warm_cache import WarmCache

#: a request answered at once, without a model (argparse refuses it): a reply, then a pause
REQUEST = json.dumps({"id": 1, "argv": []}) + "\n"


class _Replies(io.StringIO):
    """The server's replies; ``answered`` is set by each final reply."""

    def __init__(self) -> None:
        super().__init__()
        self.answered = threading.Event()

    def write(self, text: str) -> int:
        if '"status"' in text:
            self.answered.set()
        return super().write(text)


def _events(monkeypatch, others: float, busy_after_s: float, wait_for_probe: bool) -> list:
    """Two requests to ``serve`` while other programs use ``others`` cores (``/proc/stat``
    readings made up from the clock), each sent once the previous one is answered and then
    either the idle probe ran (``wait_for_probe``) or 0.3 s passed (longer than
    ``IDLE_PROBE_AFTER_S``, here 0.05 s). Returns "request", "probe" and "end" in order."""
    from UNetPlusPlusLib.cli import build_parser

    start = time.monotonic()

    def read() -> cpu_contention.CpuReading:
        now = time.monotonic()
        return cpu_contention.CpuReading(now, others * (now - start), 0.0)

    monkeypatch.setattr(cpu_contention, "read", read)
    monkeypatch.setattr(cli_serve, "IDLE_PROBE_AFTER_S", 0.05)
    monkeypatch.setattr(cli_serve, "BUSY_PROBE_AFTER_S", busy_after_s)
    events: list[str] = []
    probed, replies, cache = threading.Event(), _Replies(), WarmCache()

    def idle_probe(stop) -> int:
        events.append("probe")
        probed.set()
        return 0

    cache.idle_probe = idle_probe

    def lines():
        for _ in range(2):
            replies.answered.clear()
            probed.clear()
            events.append("request")
            yield REQUEST
            assert replies.answered.wait(60)
            if wait_for_probe:
                assert probed.wait(60), "the server never probed"
            else:
                time.sleep(0.3)
        events.append("end")

    assert cli_serve.serve(lines(), replies, build_parser, cache=cache) == 0
    assert replies.getvalue().count('"status"') == 2
    return events


@pytest.mark.parametrize("others", [0.0, 1000.0])
def test_the_idle_probe_waits_for_a_longer_pause_while_others_use_the_cores(monkeypatch, others):
    events = _events(monkeypatch, others, busy_after_s=60.0, wait_for_probe=False)
    if others == 0.0:  # the CPUs are free: the probe runs in each pause, as before
        assert events == ["request", "probe", "request", "probe", "end"]
    else:  # shared: a request 0.3 s after the reply comes first (was: it waited for the probe)
        assert events == ["request", "request", "end"]


def test_under_load_the_probe_runs_in_a_long_enough_pause(monkeypatch):
    events = _events(monkeypatch, 1000.0, busy_after_s=0.2, wait_for_probe=True)
    assert events == ["request", "probe", "request", "probe", "end"]

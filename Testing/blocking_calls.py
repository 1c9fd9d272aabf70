"""Catch a poll or shutdown that holds the GUI thread: a blocking wait, or a busy-wait.

Used by the cancel/shutdown tests of one-shot jobs (test_adapter_job_cancel.py) and of the
persistent engine (test_adapter_engine_server.py); its own tests: test_blocking_calls.py.
It counts calls, never time, so it does not depend on the machine's load.
"""

from __future__ import annotations

import threading
import time
import types
from contextlib import contextmanager

#: A poll tick (one :meth:`BlockingCalls.inside` block) that asks the same non-blocking probe
#: (``Popen.poll``, ``Event.is_set``, the clock) more often than this is spinning on it. A
#: real poll asks each a few times (job.poll: the clock and ``Popen.poll`` once, then
#: ``kill_tree`` and ``close`` reap once each; output_complete checks each reader's EOF
#: once); a busy-wait loop asks thousands of times.
PROBES_PER_TICK = 8


class BusyWait(BaseException):
    """Raised out of a probe asked more than :data:`PROBES_PER_TICK` times in one tick, so a
    loop that spins until the process exits fails the test instead of hanging it. A
    BaseException, so the module's ``except Exception`` does not swallow it; it is recorded
    in :attr:`BlockingCalls.calls` as well, in case something swallows it anyway."""


class BlockingCalls:
    """The blocking waits made on the calling (GUI) thread inside :meth:`inside`: ``wait`` and
    ``communicate`` of the jobs' real Popen objects, ``join`` of their output readers' threads
    and ``wait`` of their EOF events, and ``time.sleep`` as adapter/job.py sees it. Each is
    recorded as ``"name(args)"`` and then made as usual. A poll that waited for the process
    (its exit, or the kill grace) would have to make one; unlike a wall-clock bound, this
    does not depend on the machine's load. Calls from other threads (the working folder's
    cleanup thread waits for the process) are not the GUI thread's: not recorded.

    Busy-waits too: ``Popen.poll``, the readers' ``Event.is_set`` and ``time.monotonic`` as
    adapter/job.py sees it are counted per :meth:`inside` block (one poll tick), and a tick
    that asks one of them more than :data:`PROBES_PER_TICK` times is recorded as
    ``"busy-wait: <probe> x N in one tick"`` (and stopped with :class:`BusyWait`)."""

    def __init__(self, monkeypatch) -> None:
        from UNetPlusPlusLib.adapter import job

        self.calls: list[str] = []
        self._thread = None
        self._probes: dict[str, int] = {}
        sleep = self._recorded(time.sleep, "time.sleep")
        monotonic = self.probed(time.monotonic, "time.monotonic")
        monkeypatch.setattr(job, "time", types.SimpleNamespace(monotonic=monotonic, sleep=sleep))

    def watch(self, running) -> None:
        """Record ``running``'s process and output readers."""
        process = running._process
        targets = [(process, "wait"), (process, "communicate")]
        for reader in running._readers:
            targets += [(reader._thread, "join"), (reader.eof, "wait")]
        for owner, name in targets:
            label = f"{type(owner).__name__}.{name}"
            setattr(owner, name, self._recorded(getattr(owner, name), label))
        process.poll = self.probed(process.poll, "Popen.poll")
        for reader in running._readers:
            reader.eof.is_set = self.probed(reader.eof.is_set, "Event.is_set")

    def _recorded(self, function, label: str):
        def call(*args, **kwargs):
            if self._thread == threading.get_ident():
                self.calls.append(f"{label}{args}{kwargs or ''}")
            return function(*args, **kwargs)

        return call

    def probed(self, function, label: str):
        """``function`` (a non-blocking probe) counted per tick on the watched thread."""

        def call(*args, **kwargs):
            if self._thread == threading.get_ident():
                count = self._probes[label] = self._probes.get(label, 0) + 1
                if count > PROBES_PER_TICK:
                    self.calls.append(f"busy-wait: {label} x {count} in one tick")
                    raise BusyWait(self.calls[-1])
            return function(*args, **kwargs)

        return call

    @contextmanager
    def inside(self):
        """Record the calls made on this thread within the block (one poll tick)."""
        self._thread = threading.get_ident()
        self._probes = {}
        try:
            yield
        finally:
            self._thread = None

"""One thread while other programs share the cores, in a process whose OpenMP spins (issue 14).

``runtime_env`` lets OpenMP's idle workers spin when the machine is quiet as the process
starts. If other programs then take the cores (a one-shot run that outlives the quiet, or
``unetpp serve`` in Slicer for hours), every barrier would spin while the sibling it waits for
is descheduled: under two busy programs a nodule tile took 17x longer than with sleeping
workers (docs/BENCHMARK_MODELS.md, "Session 12: spin when quiet"). The spin count cannot
change once OpenMP has started, but one intra-op thread has no barrier to spin at. So before
each tile and before the post-processing (resampling to the input grid, argmax),
:func:`before_parallel_work` looks at other programs' CPU use over the last :data:`WINDOW_S`
seconds (``cpu_contention``; no system call in between) and

- drops torch to one thread while they use :data:`BUSY_CORES` cores or more (1.2-1.7x slower
  than sleeping on two threads under that load, measured; not 17x);
- goes back to the earlier thread count once they use under :data:`QUIET_CORES`.

It does nothing in a process that does not spin (``runtime_env.wait_policy()`` other than
``spin``), so the passive path is unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import torch

from . import cpu_contention, runtime_env

log = logging.getLogger(__name__)

#: Seconds between two looks at the machine; other programs' cores to drop to / leave one thread.
WINDOW_S = 0.25
BUSY_CORES = 0.5
QUIET_CORES = 0.25


class SpinGuard:
    """The thread count of a spinning process, kept at one while the cores are shared.

    ``read``, ``get_threads`` and ``set_threads`` default to ``cpu_contention.read`` and torch's
    thread functions (injected in tests). ``drops`` counts the switches to one thread.
    """

    def __init__(
        self,
        read: Callable[[], Optional[cpu_contention.CpuReading]] = cpu_contention.read,
        get_threads: Callable[[], int] = torch.get_num_threads,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._read, self._get, self._set, self._clock = read, get_threads, set_threads, clock
        self._last: Optional[cpu_contention.CpuReading] = None
        self._next_look = 0.0
        self.saved_threads: Optional[int] = None  # the count to restore, while on one thread
        self.drops = 0
        self.last_others_cores: Optional[float] = None

    def check(self) -> None:
        """Look at the machine if a window has passed; switch the thread count if needed."""
        now = self._clock()
        if now < self._next_look:
            return
        self._next_look = now + WINDOW_S
        reading = self._read()
        before, self._last = self._last, reading
        if before is None or reading is None:
            return
        others = cpu_contention.others_cores(before, reading)
        if others is None:
            return
        self.last_others_cores = others
        if self.saved_threads is None and others >= BUSY_CORES and self._get() > 1:
            self.saved_threads = self._get()
            self._set(1)
            self.drops += 1
            log.info(
                "Other programs use %.1f CPU cores: inference runs on one thread until they stop "
                "(this process's OpenMP spins, chosen on a quiet machine).",
                others,
            )
        elif self.saved_threads is not None and others < QUIET_CORES:
            self._set(self.saved_threads)
            self.saved_threads = None


_GUARD = SpinGuard()


def before_parallel_work() -> None:
    """Call before each tile and other multi-threaded stages: keeps a spinning process on one
    thread while the cores are shared; nothing in a process that does not spin."""
    if runtime_env.wait_policy() == "spin":
        _GUARD.check()


def guard() -> SpinGuard:
    """This process's guard (its ``drops`` and ``saved_threads`` for reports and tests)."""
    return _GUARD

"""Fewer threads while other programs share the cores, in a process whose OpenMP spins (issue 14).

``runtime_env`` lets OpenMP's idle workers spin when the machine is quiet as the process
starts. If other programs then take the cores (a one-shot run that outlives the quiet, or
``unetpp serve`` in Slicer for hours), every barrier would spin while the sibling it waits for
is descheduled: under two busy programs a nodule tile took 17x longer than with sleeping
workers (docs/BENCHMARK_WAIT_POLICY.md, "Session 12: spin when quiet"). The spin count cannot
change once OpenMP has started, but threads that each keep a CPU are not descheduled at a
barrier, and one intra-op thread has no barrier to spin at. So before each tile and before the
post-processing (resampling to the input grid, argmax), :func:`before_parallel_work` looks at
other programs' CPU use over the last :data:`WINDOW_S` seconds (``cpu_contention``; no system
call in between) and

- while they use :data:`BUSY_CORES` cores or more and leave fewer free CPUs than we have
  threads, lowers torch's threads to the CPUs left free, at least one (on 2 cores under two busy
  programs: one thread, 1.2-1.7x slower than sleeping on two, measured; not 17x); a machine
  with more CPUs than ours and the others' need keeps every thread;
- goes back to the earlier thread count once they use under :data:`QUIET_CORES`.

It does nothing in a process that does not spin (``runtime_env.may_spin()``), so the passive
path and the user's own OpenMP settings are unchanged. A process that imported torch before
``runtime_env.apply`` (a script, a notebook, Slicer's own Python) spins at libgomp's default
unless ``OMP_WAIT_POLICY=PASSIVE``: it is guarded too.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Callable, Optional

import torch

from . import cpu_contention, runtime_env

log = logging.getLogger(__name__)

#: Seconds between two looks at the machine; other programs' cores to lower the threads at
#: (when they leave fewer free CPUs than threads) / to go back to the saved count.
WINDOW_S = 0.25
BUSY_CORES = 0.5
QUIET_CORES = 0.25


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class SpinGuard:
    """The thread count of a spinning process, kept within the CPUs other programs leave free
    (at least one) while they compute.

    ``read``, ``get_threads`` and ``set_threads`` default to ``cpu_contention.read`` and torch's
    thread functions, ``cpus`` to the CPUs this process may run on (injected in tests);
    ``start`` gives the reading the first look compares with (default none: the first look
    only reads).
    ``drops`` counts the switches to fewer threads.
    """

    def __init__(
        self,
        read: Callable[[], Optional[cpu_contention.CpuReading]] = cpu_contention.read,
        get_threads: Callable[[], int] = torch.get_num_threads,
        set_threads: Callable[[int], None] = torch.set_num_threads,
        clock: Callable[[], float] = time.monotonic,
        cpus: Optional[int] = None,
        start: Optional[Callable[[], Optional[cpu_contention.CpuReading]]] = None,
    ) -> None:
        self._read, self._get, self._set, self._clock = read, get_threads, set_threads, clock
        self._cpus = _cpu_count() if cpus is None else max(1, int(cpus))
        self._start = start  # the reading the first look compares with (runtime_env's), if any
        self._last: Optional[cpu_contention.CpuReading] = None
        self._next_look = 0.0
        self.saved_threads: Optional[int] = None  # the count to restore, while lowered
        self.lowered_threads: Optional[int] = None  # the count set instead, while lowered
        self.drops = 0
        self.last_others_cores: Optional[float] = None

    def _fit(self, threads: int, others: float, lowered: bool = False) -> int:
        """``threads`` or fewer, so that ours and the others' busy cores fit the CPUs; the
        others' cores count from 0.5 (from :data:`QUIET_CORES` once ``lowered``: hysteresis)."""
        busy = int(others + (1.0 - QUIET_CORES if lowered else 1.0 - BUSY_CORES))
        return max(1, min(threads, self._cpus - busy))

    def check(self) -> None:
        """Look at the machine if a window has passed; switch the thread count if needed.

        While lowered, a count set by someone else (a new ``Predictor`` sets its threads, e.g.
        ``unetpp serve`` switching tasks) becomes the count to restore, and the lowered one is
        set again at once: the cores are still shared."""
        if self.saved_threads is not None and self._get() != self.lowered_threads:
            self.saved_threads = self._get()
            self.lowered_threads = min(self.lowered_threads or 1, self.saved_threads)
            self._set(self.lowered_threads)
        now = self._clock()
        if now < self._next_look:
            return
        self._next_look = now + WINDOW_S
        reading = self._read()
        if self._last is None and self._start is not None:
            self._last, self._start = self._start(), None  # the first tile decides already
        before, self._last = self._last, reading
        if before is None or reading is None:
            return
        others = cpu_contention.others_cores(before, reading)
        if others is None:
            return
        self.last_others_cores = others
        if self.saved_threads is None:
            current = self._get()
            fit = self._fit(current, others)
            if others >= BUSY_CORES and fit < current:
                self.saved_threads, self.lowered_threads = current, fit
                self._set(fit)
                self.drops += 1
                log.info(
                    "Other programs use %.1f of %d CPUs: inference runs on %d thread(s) instead "
                    "of %d until they stop (this process's OpenMP threads spin while they wait).",
                    others,
                    self._cpus,
                    fit,
                    current,
                )
        elif others < QUIET_CORES:
            self._set(self.saved_threads)
            self.saved_threads = self.lowered_threads = None
        else:
            fit = self._fit(self.saved_threads, others, lowered=True)
            if fit != self.lowered_threads:
                self.lowered_threads = fit
                self._set(fit)


_GUARD = SpinGuard(start=runtime_env.start_reading)


def before_parallel_work() -> None:
    """Call before each tile and other multi-threaded stages: keeps a spinning process within
    the CPUs other programs leave free; nothing in a process that does not spin."""
    if runtime_env.may_spin():
        _GUARD.check()


def guard() -> SpinGuard:
    """This process's guard (its ``drops`` and ``saved_threads`` for reports and tests)."""
    return _GUARD


def report() -> dict:
    """This process's OpenMP wait policy and the guard's switches to fewer threads, as the
    segment result (``info["openmp"]``) and the bench report them."""
    return {"wait_policy": runtime_env.wait_policy(), "one_thread_switches": _GUARD.drops}

"""How many CPU cores other programs are using right now (Linux ``/proc/stat``; issue 14).

The machine's busy time over an interval (every CPU's user, nice, system, irq, softirq and
steal time) minus this process's own CPU time (``os.times``) is what everything else used:
other programs, and on a virtual machine the hypervisor's other guests (steal). Divided by the
interval's wall time it is a number of cores, e.g. 1.9 while two busy programs share a 2-core
machine with us. The 1-minute load average cannot say this: it lags by a minute and counts our
own threads.

Used before torch loads (``runtime_env``: spin or sleep in OpenMP barriers) and between tiles
(``spin_guard``), so it imports neither torch nor numpy. Resolution: the kernel's clock tick
(``SC_CLK_TCK``, usually 10 ms) per CPU, so a 0.1 s window on 2 cores resolves 0.05 core.
Elsewhere than Linux :func:`read` returns None and callers keep their safe default.

Source: Linux ``proc(5)``, ``/proc/stat``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional

#: /proc/stat's first line ("cpu ...") columns counted as busy: user nice system idle iowait irq
#: softirq steal (guest and guest_nice are already inside user and nice)
_BUSY_COLUMNS = (0, 1, 2, 5, 6, 7)


@dataclass(frozen=True)
class CpuReading:
    """One sample: ``wall_s`` (monotonic seconds), ``busy_s`` (CPU-seconds every CPU spent
    busy since boot) and ``own_s`` (this process's user + system CPU-seconds)."""

    wall_s: float
    busy_s: float
    own_s: float


def _tick_s() -> float:
    try:
        return 1.0 / float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 0.01


_TICK_S = _tick_s()


def read(stat_path: str = "/proc/stat") -> Optional[CpuReading]:
    """A :class:`CpuReading` now, or None where ``stat_path`` cannot be read or parsed."""
    try:
        with open(stat_path, encoding="ascii") as stat:
            fields = stat.readline().split()
        if not fields or fields[0] != "cpu":
            return None
        ticks = [int(value) for value in fields[1:9]]
    except (OSError, ValueError):
        return None
    if len(ticks) < 8:
        return None
    own = os.times()
    busy_s = sum(ticks[i] for i in _BUSY_COLUMNS) * _TICK_S
    return CpuReading(time.monotonic(), busy_s, own.user + own.system)


def others_cores(
    before: CpuReading, after: CpuReading, min_window_s: float = 0.05
) -> Optional[float]:
    """Cores used by everything but this process between two readings (>= 0), or None when
    they are less than ``min_window_s`` seconds apart (too few clock ticks to tell)."""
    wall = after.wall_s - before.wall_s
    if wall < min_window_s:
        return None
    others = (after.busy_s - before.busy_s) - (after.own_s - before.own_s)
    return max(0.0, others / wall)

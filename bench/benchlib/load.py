"""A bounded competing load: busy processes that share the cores while a measurement runs.

``competing_load(2)`` starts two pure-Python busy loops (what another program computing on a
workstation looks like to the scheduler) and stops them on exit. Each loop also ends by itself
after ``max_seconds``, so a crashed benchmark never leaves load behind.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import Iterator

_BUSY = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end:\n    pass\n"


@contextlib.contextmanager
def competing_load(processes: int = 2, max_seconds: float = 900.0) -> Iterator[list]:
    """Run ``processes`` busy loops for the duration of the block (at most ``max_seconds``)."""
    code = _BUSY.format(seconds=float(max_seconds))
    started = [
        subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL)
        for _ in range(max(0, int(processes)))
    ]
    try:
        yield started
    finally:
        for process in started:
            process.kill()
        for process in started:
            process.wait()

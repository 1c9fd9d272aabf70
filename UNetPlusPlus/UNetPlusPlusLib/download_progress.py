"""Download progress of `unetpp models install URL` on stderr.

On a terminal a tqdm bar (bytes, rate, time left); otherwise (a log, a pipe, the Slicer
module's process) one plain line at each tenth (:data:`STEPS`) of a download of known size,
and at least every :data:`EVERY_S` seconds (a slow download, or a server that gives no size);
nothing with ``--quiet``. It is the ``progress("download", done, total)`` callback of
``registry.install_model``; each file downloaded (a model.json, then its weights) starts at
``done == 0``.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

#: A plain line at each tenth (1 / STEPS) of a download of known size ...
STEPS = 10
#: ... and at least every this many seconds.
EVERY_S = 5.0


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


class DownloadProgress:
    """``progress("download", done, total)`` (bytes; ``total`` 0 when unknown) shown on
    ``stream`` (default: stderr): a tqdm bar when it is a terminal, else plain periodic lines;
    ``quiet``: nothing. ``clock``: monotonic seconds (a test passes its own)."""

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet
        self.clock = clock
        self.bar = None
        self.active = False  # a file is being downloaded
        self.last_step = -1
        self.last_time = 0.0
        self.done = self.total = 0

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        if done == 0 or not self.active:  # a new file
            self.close()
            self._start(total)
        self.done, self.total = done, total
        if self.bar is not None:
            self.bar.update(done - self.bar.n)
            return
        now = self.clock()
        step = done * STEPS // total if total else (0 if done == 0 else self.last_step)
        if step > self.last_step or now - self.last_time >= EVERY_S:
            self.last_step, self.last_time = step, now
            self._line()

    def _line(self) -> None:
        if self.total:
            said = f"{100 * self.done // self.total} % ({_megabytes(self.done)} of "
            said += f"{_megabytes(self.total)})"
        else:
            said = f"{_megabytes(self.done)} (size unknown)"
        print(f"download: {said}", file=self.stream, flush=True)

    def _start(self, total: int) -> None:
        self.active, self.last_step, self.last_time = True, -1, self.clock()
        isatty = getattr(self.stream, "isatty", None)
        if callable(isatty) and isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total or None,
                desc="download",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=self.stream,
                leave=False,
            )

    def close(self) -> None:
        """End the current file's bar or, for a download of unknown size, say how much came."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.active and not self.total:
            self._line()
        self.active = False

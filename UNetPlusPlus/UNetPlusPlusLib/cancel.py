"""Cooperative cancel across processes: a file whose existence means "stop now".

The Slicer module runs the CLI in a child process (``adapter/job.py``). To cancel, it creates the
file it passed as ``unetpp segment --cancel-file PATH``; the CLI checks it at every progress
report (between stages and between tile batches), raises :class:`CancelledError` and exits with
status 3 before writing anything. A file works the same on every platform and through Slicer's
``PythonSlicer`` launcher, which forwards no signal to the interpreter it starts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Union

from .errors import CancelledError

Progress = Callable[[str, int, int], None]


class CancelFile:
    """``cancel_file()`` is true once ``request()`` (here or in another process) made the file."""

    def __init__(self, path: Union[str, os.PathLike]) -> None:
        self.path = Path(path)

    def __call__(self) -> bool:
        return self.path.exists()

    def request(self) -> None:
        """Create the file (never blocks for long: one empty file); errors are ignored, since
        the caller kills the process tree if the cooperative route fails."""
        try:
            self.path.touch()
        except OSError:
            pass


def cancellable(progress: Progress, cancel: Optional[Callable[[], bool]]) -> Progress:
    """``progress`` that first raises :class:`CancelledError` when ``cancel()`` is true."""
    if cancel is None:
        return progress

    def report(stage: str, done: int, total: int) -> None:
        if cancel():
            raise CancelledError()
        progress(stage, done, total)

    return report

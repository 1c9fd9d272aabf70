"""Python warnings raised while ``unetpp segment`` reads its inputs, said as run warnings.

The readers warn with ``warnings.warn`` (a NIfTI header that places the image nowhere or whose
sform and qform disagree, skipped DICOM slices, DICOM files in sub-folders that were not read).
The CLI printed them as ``warning: ...`` text only: ``--progress-json`` gave no
``{"warning": ...}`` event and its result no entry in ``warnings``, ``unetpp serve`` no reply,
and the summary line did not count them (tester 22). :func:`said_as_run_warnings` routes them
through the run's ``warn`` instead.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Callable, Iterator

_PACKAGE = Path(__file__).resolve().parent


@contextlib.contextmanager
def said_as_run_warnings(warn: Callable[[str], None], said: list[str]) -> Iterator[None]:
    """Within the block, each UserWarning raised by this package's code is appended to
    ``said`` (whitespace collapsed) and given to ``warn``; other warnings (a library's, or
    another thread's meanwhile) go on to the display they had. The warnings filters apply
    as before."""
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as records:
            try:
                yield
            finally:
                caught = list(records)
    finally:  # also when the block refuses the input: what was warned before is said
        for record in caught:
            if issubclass(record.category, UserWarning) and _ours(record.filename):
                text = " ".join(str(record.message).split())
                said.append(text)
                warn(text)
            else:
                warnings.showwarning(
                    record.message, record.category, record.filename, record.lineno, record.file
                )


def _ours(filename: str) -> bool:
    try:
        return Path(filename).resolve().is_relative_to(_PACKAGE)
    except (OSError, ValueError):
        return False

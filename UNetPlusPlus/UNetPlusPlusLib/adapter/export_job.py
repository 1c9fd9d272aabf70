"""The file-writing half of a training export, run in a thread: :class:`ExportJob`.

:func:`.training_export.start_training_export` takes from MRML, on Slicer's main thread, all
that the case's files need, and hands the rest (compressing and writing the files, renaming
them into place, the case's record) to an :class:`ExportJob`, which touches no MRML: Slicer
stays responsive while the files are written. The panel polls it (``finished``, ``stage``)
from a timer and takes its :meth:`~ExportJob.result` when it is done.

The thread is not a daemon: if Slicer quits during a write, Python waits for the write to end
(seconds), so no half-written file is left; :meth:`~ExportJob.cancel` makes it stop at the next
file instead, everything it wrote removed.
"""

from __future__ import annotations

import threading
from typing import Callable, Generic, Optional, TypeVar

from ..errors import UNetPlusPlusError

T = TypeVar("T")


class ExportCancelled(UNetPlusPlusError):
    """The export was cancelled before its files were put in place: nothing was written."""


class ExportJob(Generic[T]):
    """Run ``work(job)`` in a thread of its own (``start=False``: in :meth:`run`, by the
    caller). ``work`` reports what it is doing through :meth:`say` and calls
    :meth:`check_cancelled` between steps; its return value is :meth:`result`'s."""

    def __init__(self, work: Callable[[ExportJob], T], start: bool = True) -> None:
        self._work = work
        self._done = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._stage = ""
        self._value: Optional[T] = None
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        if start:
            self._thread = threading.Thread(target=self.run, name="unetpp-export", daemon=False)
            self._thread.start()

    def run(self) -> None:
        """Do the work here (the thread's target); its error is kept for :meth:`result`."""
        try:
            self._value = self._work(self)
        except BaseException as error:  # noqa: BLE001 - handed to the caller by result()
            self._error = error
        finally:
            self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def stage(self) -> str:
        """What the job is doing now ("Writing case001.nrrd (1 of 2)"), for the panel."""
        with self._lock:
            return self._stage

    def say(self, text: str) -> None:
        with self._lock:
            self._stage = text

    def cancel(self) -> None:
        """Ask the job to stop before its next file; what it wrote is removed."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self, what: str) -> None:
        """Raise :class:`ExportCancelled` (``what`` names the export) if cancelled."""
        if self._cancel.is_set():
            raise ExportCancelled(f"{what} was cancelled; nothing was written.")

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the job to finish (at most ``timeout`` s); whether it has."""
        return self._done.wait(timeout)

    def result(self) -> T:
        """The work's return value; raises its error. Waits for it to finish."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

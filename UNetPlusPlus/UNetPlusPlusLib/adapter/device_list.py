"""The engine's device list, asked of the engine's own process, in the background, once.

Listing CUDA devices needs torch, and importing torch (and initialising CUDA) in Slicer's
process costs seconds and memory when the panel opens. So the panel asks the engine:
``<python> -m UNetPlusPlusLib.cli devices --json``, started by :meth:`DeviceQuery.poll`'s first
call and read without blocking; the answer is cached per interpreter for the whole session.
No Qt, no torch here.
"""

from __future__ import annotations

import json
import queue
import tempfile
import time
from typing import Optional

from .process import LineReader, drain, kill_tree, spawn

#: Shown until the engine answers, and if it cannot (torch missing, a broken CUDA set-up).
CPU_ONLY: list[dict] = [{"id": "cpu", "name": "CPU", "memory": None}]

_CACHE: dict[str, list[dict]] = {}  # interpreter -> the engine's answer


class DeviceQuery:
    """``poll()`` returns the device list (``[{"id", "name", "memory"}]``, memory in bytes or
    None) once the engine has answered, and None until then; never blocks."""

    def __init__(self, python: str, timeout: float = 120.0) -> None:
        self.python = python
        self.timeout = timeout  # s; after it the query is abandoned (CPU only)
        self.error: Optional[str] = None
        self._process = None
        self._lines: queue.Queue = queue.Queue()
        self._readers: list[LineReader] = []
        self._started_at: Optional[float] = None
        self._result: Optional[list[dict]] = _CACHE.get(python)

    @property
    def ready(self) -> bool:
        return self._result is not None

    def poll(self) -> Optional[list[dict]]:
        """The devices, or None while the engine is still answering (the first call asks)."""
        if self._result is not None:
            return self._result
        if self._process is None:
            self._start()
            return self._result
        exited = self._process.poll() is not None
        if exited and all(reader.eof.is_set() for reader in self._readers):
            self._finish()
        elif time.monotonic() - self._started_at > self.timeout:
            self._fail(f"the engine did not list its devices within {self.timeout:g} s")
        return self._result

    def close(self) -> None:
        """Stop a query still running (scene close, module cleanup); the cache is kept, and a
        later ``poll()`` asks again if no answer had come."""
        if self._result is None and self._process is not None:
            kill_tree(self._process)
            self._process, self._readers, self._lines = None, [], queue.Queue()

    def _start(self) -> None:
        command = [self.python, "-m", "UNetPlusPlusLib.cli", "devices", "--json"]
        self._started_at = time.monotonic()
        try:
            self._process = spawn(command, cwd=tempfile.gettempdir())
        except OSError as error:
            self._fail(f"cannot start {self.python} ({error})")
            return
        self._readers = [
            LineReader(self._process.stdout, "stdout", self._lines),
            LineReader(self._process.stderr, "stderr", self._lines),
        ]

    def _finish(self) -> None:
        lines = drain(self._lines)
        for name, line in lines:
            if name == "stdout" and line.startswith("["):
                try:
                    devices = json.loads(line)
                except json.JSONDecodeError:
                    break
                if isinstance(devices, list) and all(isinstance(d, dict) for d in devices):
                    self._result = _CACHE[self.python] = devices
                    return
        errors = [line for name, line in lines if name == "stderr" and line.strip()]
        self._fail(errors[-1] if errors else f"exit status {self._process.returncode}")

    def _fail(self, reason: str) -> None:
        kill_tree(self._process)
        self.error = f"Cannot list the GPUs ({reason}); only the CPU is offered."
        self._result = list(CPU_ONLY)  # not cached: a later session may succeed

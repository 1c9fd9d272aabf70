"""One persistent engine process (``unetpp serve``) for the module's runs, restarted after a crash.

Starting Python, importing torch and loading the model costs seconds (more than a nodule
click's inference, and a large share of a whole-volume run at a shallow depth), so every Segment
run of the module (whole volume, ROI, click; ``SegmentationLogic.persistent``) goes to one
process that stays alive between runs. :class:`EngineServer` starts
``<python> -m UNetPlusPlusLib.cli serve`` once (through PythonSlicer's launcher in Slicer, which
forwards stdin), sends each request as a JSON line on its stdin and routes the replies, by
request id, into the queue of the :class:`~.job.SegmentationJob` that asked. If the process has
died (a crash, or :meth:`kill` after a cancel that was not honoured within the job's grace), the
next :meth:`submit` starts a new one. :meth:`shutdown` kills the whole process tree without
waiting. What the process keeps in memory between runs is bounded in ``warm_cache.py``.

Queue items are ``(name, line)`` as for a one-shot job's pipes: ``("stdout", json)`` for the
server's progress/result/error lines (without their id), ``("stderr", text)`` for its log, and
finally ``("server", "done")`` after the result or error, or ``("server", "died")`` if the process
ended first. No Qt here, and nothing blocks.
"""

from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import IO, Hashable, Optional, Sequence

from .files import remove_folder, write_inputs
from .geometry import NativeImages
from .process import kill_tree, spawn

DONE, DIED = "done", "died"


class _Connection:
    """One server process, its pending requests and the threads that route its output."""

    def __init__(self, command: Sequence[str]) -> None:
        self.process = spawn(command, cwd=tempfile.gettempdir(), stdin=subprocess.PIPE)
        self.pending: dict[int, queue.Queue] = {}
        self.lock = threading.Lock()
        self.closed = threading.Event()  # stdout ended: the process is gone
        routes = ((self.process.stdout, self._route), (self.process.stderr, self._log))
        for stream, target in routes:
            thread = threading.Thread(target=target, args=(stream,), name="unetpp-serve")
            thread.daemon = True
            thread.start()

    def alive(self) -> bool:
        return not self.closed.is_set() and self.process.poll() is None

    def send(self, ident: int, argv: Sequence[str], lines: queue.Queue) -> None:
        """Write one request; raises OSError if the process cannot take it."""
        with self.lock:
            self.pending[ident] = lines
        try:
            self.process.stdin.write(json.dumps({"id": ident, "argv": list(argv)}) + "\n")
            self.process.stdin.flush()
        except (OSError, ValueError) as error:
            with self.lock:
                self.pending.pop(ident, None)
            raise OSError(f"the engine process does not accept requests ({error})") from error

    def _route(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                try:
                    reply = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(reply, dict) or "id" not in reply:
                    continue  # the "ready" line
                ident = reply.pop("id")
                with self.lock:
                    lines = self.pending.get(ident)
                    if lines is not None and ("result" in reply or "error" in reply):
                        del self.pending[ident]
                if lines is not None:
                    lines.put(("stdout", json.dumps(reply)))
                    if "result" in reply or "error" in reply:
                        lines.put(("server", DONE))
        except (OSError, ValueError):
            pass
        finally:
            self.closed.set()
            with self.lock:
                orphans, self.pending = list(self.pending.values()), {}
            for lines in orphans:
                lines.put(("server", DIED))

    def _log(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self.lock:
                    targets = list(self.pending.values())
                for lines in targets:  # requests run one at a time: the log is theirs
                    lines.put(("stderr", line.rstrip("\r\n")))
        except (OSError, ValueError):
            pass


class EngineServer:
    """``submit()`` requests to one long-lived ``unetpp serve`` process (see the module doc)."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.starts = 0  # how many processes were started (1 + restarts after crashes)
        self._connection: Optional[_Connection] = None
        self._next_id = 0
        self._folder: Optional[Path] = None  # input files shared by successive requests
        self._inputs: list[tuple[Hashable, list[Path]]] = []  # the last two (key, paths)

    def inputs(self, key: Hashable, images: NativeImages) -> list[Path]:
        """Input files for ``images``: written once per ``key`` (the volume nodes and their
        modification times) and reused by the next runs, so the server's cached volume stays
        valid too. The last two sets are kept (a request may still read the previous one)."""
        for known, paths in self._inputs:
            if known == key and all(path.is_file() for path in paths):
                return paths
        if self._folder is None or not self._folder.is_dir():
            self._folder = Path(tempfile.mkdtemp(prefix="unetpp-serve-"))
            self._inputs = []
        folder = Path(tempfile.mkdtemp(prefix="inputs-", dir=self._folder))
        try:
            paths = write_inputs(images, folder)
        except BaseException:
            remove_folder(folder)
            raise
        self._inputs.append((key, paths))
        while len(self._inputs) > 2:
            _, old = self._inputs.pop(0)
            remove_folder(old[0].parent)
        return paths

    @property
    def command(self) -> list[str]:
        return [self.python, "-m", "UNetPlusPlusLib.cli", "serve"]

    @property
    def pid(self) -> Optional[int]:
        """The process id of the server (the launcher, in Slicer), None before the first start."""
        return None if self._connection is None else self._connection.process.pid

    def alive(self) -> bool:
        return self._connection is not None and self._connection.alive()

    def submit(self, argv: Sequence[str], lines: queue.Queue) -> int:
        """Send ``unetpp segment`` arguments; replies go to ``lines``. Starts (or restarts) the
        process when needed; returns the request id. Raises OSError if it cannot start."""
        self._next_id += 1
        for attempt in (1, 2):
            if not self.alive():
                self._start()
            try:
                self._connection.send(self._next_id, argv, lines)
                return self._next_id
            except OSError:
                if attempt == 2:
                    raise
                self.kill()  # it died between the check and the write: start a new one
        raise AssertionError("unreachable")

    def kill(self) -> None:
        """Kill the process tree now (pending requests get ``died``); the next request
        starts a new process. Never blocks."""
        if self._connection is not None:
            kill_tree(self._connection.process)
            self._connection.closed.set()

    def shutdown(self) -> None:
        """Kill the process tree and remove the shared input files (patient images); never
        blocks. A later request starts afresh."""
        self.kill()
        remove_folder(self._folder, None if self._connection is None else self._connection.process)
        self._folder, self._inputs = None, []

    def _start(self) -> None:
        self.kill()
        self._connection = _Connection(self.command)
        self.starts += 1

"""One persistent engine process (``unetpp serve``) for the module's runs, restarted after a crash.

Starting Python, importing torch and loading the model costs seconds (more than a nodule click's
inference, and a large share of a whole-volume run at a shallow depth), so every Segment run of the
module (whole volume, ROI, click; ``SegmentationLogic.persistent``) goes to one process that stays
alive between runs. :class:`EngineServer` starts ``<python> -m UNetPlusPlusLib.cli serve`` once, at
the first run or ahead of it (:meth:`EngineServer.warm_up`, when the module is entered), through
PythonSlicer's launcher in Slicer, which forwards stdin; it sends each request as a JSON line on
its stdin and routes the replies, by request id, into the queue of the
:class:`~.job.SegmentationJob` that asked. If the process has died (a crash, or :meth:`kill` after
a cancel that was not honoured within the job's grace), the next :meth:`submit` starts a new one.
:meth:`shutdown` kills the whole process tree without waiting. What the process keeps in memory
between runs is bounded in ``warm_cache.py``.

Input files (copies of the patient's images) live in each job's own folder and are deleted when
the job ends (result read back, failure or cancel). A request names its volume by an input token
(:meth:`EngineServer.input_token`); every final reply says which token the server holds for the
next request, so :meth:`EngineServer.submit` writes a job's input files only when the server
does not hold its volume: repeated runs on one volume (nodule clicks) neither write nor read it.

Queue items are ``(name, line)`` as for a one-shot job's pipes: ``("stdout", json)`` for the
server's progress/result/error lines (without their id), ``("stderr", text)`` for its log, and
finally ``("server", "done")`` after the result or error, or ``("server", "died")`` if the process
ended first. No Qt here, and nothing blocks.
"""

from __future__ import annotations

import hashlib
import json
import queue
import subprocess
import tempfile
import threading
from typing import IO, Callable, Hashable, Optional, Sequence

from .process import kill_tree, spawn

DONE, DIED = "done", "died"


class _Connection:
    """One server process, its pending requests and the threads that route its output."""

    def __init__(self, command: Sequence[str]) -> None:
        self.process = spawn(command, cwd=tempfile.gettempdir(), stdin=subprocess.PIPE)
        self.pending: dict[int, queue.Queue] = {}
        self.lock = threading.Lock()
        self.closed = threading.Event()  # stdout ended: the process is gone
        self.held: Optional[str] = None  # input token of the volume the process holds
        routes = ((self.process.stdout, self._route), (self.process.stderr, self._log))
        for stream, target in routes:
            thread = threading.Thread(target=target, args=(stream,), name="unetpp-serve")
            thread.daemon = True
            thread.start()

    def alive(self) -> bool:
        return not self.closed.is_set() and self.process.poll() is None

    def holds(self, token: Optional[str]) -> bool:
        """Whether the process holds the volume of ``token`` for the next request: it said so
        in its last reply and no request is in flight."""
        with self.lock:
            return token is not None and not self.pending and self.held == token and self.alive()

    def send(
        self, ident: int, argv: Sequence[str], lines: queue.Queue, token: Optional[str] = None
    ) -> None:
        """Write one request; raises OSError if the process cannot take it."""
        request = {"id": ident, "argv": list(argv)}
        if token is not None:
            request["input_token"] = token
        with self.lock:
            self.pending[ident] = lines
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
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
                held = reply.pop("held_input", None)
                final = "result" in reply or "error" in reply
                with self.lock:
                    lines = self.pending.get(ident)
                    if final:  # requests run in order: this is what the next one finds
                        self.held = held if isinstance(held, str) else None
                    if lines is not None and final:
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

    @staticmethod
    def input_token(key: Hashable) -> str:
        """The name of an input volume in requests: a digest of ``key`` (the volume nodes' ids,
        voxel digests (voxel_version.py) and world matrices, and the model's channel names;
        its ``repr`` must change whenever the voxels or geometry do)."""
        return hashlib.sha256(repr(key).encode("utf-8")).hexdigest()

    def holds(self, token: Optional[str]) -> bool:
        """Whether the running process holds the volume of ``token`` (see the module doc)."""
        return self._connection is not None and self._connection.holds(token)

    @property
    def command(self) -> list[str]:
        return [self.python, "-m", "UNetPlusPlusLib.cli", "serve"]

    @property
    def pid(self) -> Optional[int]:
        """The process id of the server (the launcher, in Slicer), None before the first start."""
        return None if self._connection is None else self._connection.process.pid

    def alive(self) -> bool:
        return self._connection is not None and self._connection.alive()

    def submit(
        self,
        argv: Sequence[str],
        lines: queue.Queue,
        input_token: Optional[str] = None,
        write_inputs: Optional[Callable[[], object]] = None,
    ) -> int:
        """Send ``unetpp segment`` arguments; replies go to ``lines``. Starts (or restarts) the
        process when needed; returns the request id. ``write_inputs()`` writes the input files
        that ``argv`` names; it is called (once) unless the process holds the volume of
        ``input_token``. Raises OSError if the process cannot start, and what
        ``write_inputs`` raises."""
        self._next_id += 1
        for attempt in (1, 2):
            if not self.alive():
                self._start()
            if write_inputs is not None and not self._connection.holds(input_token):
                write_inputs()
                write_inputs = None  # written; a restarted process reads the same files
            try:
                self._connection.send(self._next_id, argv, lines, input_token)
                return self._next_id
            except OSError:
                if attempt == 2:
                    raise
                self.kill()  # it died between the check and the write: start a new one
        raise AssertionError("unreachable")

    def warm_up(self) -> bool:
        """Start the process now, if it is not running, so that its start-up (Python, the
        torch import: 2-3 s on two cores) is over before the first :meth:`submit`. Returns
        whether a process was started. Raises OSError if it cannot start. Never blocks."""
        if self.alive():
            return False
        self._start()
        return True

    def kill(self) -> None:
        """Kill the process tree now (pending requests get ``died``); the next request
        starts a new process. Never blocks."""
        if self._connection is not None:
            kill_tree(self._connection.process)
            self._connection.closed.set()

    def shutdown(self) -> None:
        """Kill the process tree (what it holds in memory goes with it); never blocks. A later
        request starts afresh. Input files belong to the jobs, which delete them."""
        self.kill()

    def _start(self) -> None:
        self.kill()
        self._connection = _Connection(self.command)
        self.starts += 1

"""The module's models prepared in the background, so that no first Segment click pays it.

``unetpp models prepare`` (engine/graph_prepare.py) exports, compiles and checks a model's
OpenVINO graphs and runs the executor probe once, about 3 CPU-s for the liver model; a
segmentation of an unprepared model pays it inside the run. The module never imports torch,
so :class:`BackgroundPrepare` runs

    <python> -m UNetPlusPlusLib.cli models prepare <model.json>

as a child process at the lowest CPU priority (``process.spawn(low_priority=True)``: ``nice -n
19`` on POSIX, ``IDLE_PRIORITY_CLASS`` on Windows), in its own process group like every engine
process (PythonSlicer is a launcher; ``process.kill_tree``). One model at a time: the others
wait in a queue. Which models need it is told without torch from the stamp the preparation
writes (``engine/prepare_stamp.needs_preparing``, with the child's environment, so the
thread count is the engine's). A segmentation started meanwhile runs as usual: both may
write the same graphs, each through a temporary file renamed when complete.

:meth:`BackgroundPrepare.shutdown` (module cleanup, scene close, application exit) empties the
queue and kills the running tree without waiting; a killed preparation leaves no stamp and no
partial graph (its temporary file is removed by a later preparation, engine/graph_prepare.py).
Nothing here blocks: :meth:`poll` (from a timer) reaps a finished child and starts the next.
No Qt, no Slicer.
"""

from __future__ import annotations

import queue
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from ..engine.manifest import ModelManifest
from .process import LineReader, child_environment, drain, kill_tree, output_complete, spawn

PIPE_GRACE_S = 1.0  # after the child exits, how long its last lines may take to arrive
LOG_LINES = 50  # the lines kept in :attr:`BackgroundPrepare.log`


def prepare_command(python: str, manifest_path: Path) -> list[str]:
    """The child's command line for one model package (its ``model.json``)."""
    return [python, "-m", "UNetPlusPlusLib.cli", "models", "prepare", str(manifest_path)]


class BackgroundPrepare:
    """A queue of models to prepare and at most one low-priority ``models prepare`` child."""

    def __init__(self, python: Optional[str] = None) -> None:
        self.python = python  # the child's interpreter; None: PythonSlicer or this one
        self.log: list[str] = []  # the children's output lines, and one line per end
        self.started = 0  # children started, for tests and the log
        self._waiting: list[ModelManifest] = []
        self._current: Optional[ModelManifest] = None
        self._process = None
        self._readers: list[LineReader] = []
        self._lines: queue.Queue = queue.Queue()
        self._exited_at: Optional[float] = None
        self._closed = False

    @property
    def busy(self) -> bool:
        """Whether a child runs or a model waits."""
        return self._current is not None or bool(self._waiting)

    @property
    def pid(self) -> Optional[int]:
        """The running child's process id (the launcher, in Slicer), or None."""
        return None if self._process is None else self._process.pid

    def request(self, manifests: Sequence[ModelManifest]) -> list[str]:
        """Queue those of ``manifests`` that need preparing (not stamped as prepared for the
        child's environment, not queued or running already) and start the first child if none
        runs; returns their names. Never blocks; never raises (a child that cannot start is
        one line in :attr:`log`)."""
        from ..engine.prepare_stamp import needs_preparing

        if self._closed:
            return []
        env = child_environment()
        taken = {m.sha256 for m in self._waiting}
        if self._current is not None:
            taken.add(self._current.sha256)
        added = []
        for manifest in manifests:
            if manifest.path is None or manifest.sha256 in taken:
                continue
            if not needs_preparing(manifest.sha256, env=env):
                continue
            taken.add(manifest.sha256)
            self._waiting.append(manifest)
            added.append(manifest.name)
        self._start_next()
        return added

    def poll(self) -> list[str]:
        """The output lines since the last call; reaps a finished child and starts the next
        model's. Never blocks."""
        fresh = self._drain()
        process = self._process
        if process is None:
            return fresh
        now = time.monotonic()
        if process.poll() is None:
            return fresh
        if self._exited_at is None:
            self._exited_at = now
        if not output_complete(process, self._readers, self._exited_at, now, PIPE_GRACE_S):
            return fresh
        fresh += self._drain()
        name = self._current.name if self._current is not None else "?"
        if process.returncode != 0:
            fresh += self._remember([f"{name}: preparation ended with status {process.returncode}"])
        self._process, self._current, self._exited_at = None, None, None
        self._start_next()
        return fresh

    def shutdown(self) -> None:
        """Empty the queue and kill the running child's process tree; never blocks, safe to
        call twice. Later requests are ignored."""
        self._closed = True
        self._waiting = []
        kill_tree(self._process)
        self._process, self._current = None, None

    # ---------------------------------------------------------------- internals
    def _start_next(self) -> None:
        while self._process is None and self._waiting and not self._closed:
            manifest = self._waiting.pop(0)
            command = prepare_command(self._python(), Path(manifest.path))
            try:
                self._process = spawn(command, cwd=tempfile.gettempdir(), low_priority=True)
            except OSError as error:
                self._remember([f"{manifest.name}: could not start its preparation: {error}"])
                continue
            self._current = manifest
            self.started += 1
            self._lines = queue.Queue()  # a killed child's late lines are not this one's
            self._readers = [
                LineReader(self._process.stdout, "stdout", self._lines),
                LineReader(self._process.stderr, "stderr", self._lines),
            ]

    def _python(self) -> str:
        from .job import python_executable

        return self.python or python_executable()

    def _drain(self) -> list[str]:
        return self._remember([line for _name, line in drain(self._lines) if line.strip()])

    def _remember(self, lines: list[str]) -> list[str]:
        self.log.extend(lines)
        del self.log[:-LOG_LINES]
        return lines

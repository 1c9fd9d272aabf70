"""Child processes for the Slicer module: start in their own group, read as UTF-8, kill the tree.

In Slicer the engine's interpreter is started through ``PythonSlicer``, a launcher that starts
the real Python as *its* child and waits for it. Terminating the launcher's ``Popen`` therefore
leaves the engine running. So every child starts as the leader of a new process group
(POSIX: ``start_new_session=True``; Windows: ``CREATE_NEW_PROCESS_GROUP``) and
:func:`kill_tree` kills the whole group (``os.killpg``) or tree (``taskkill /T /F``).

Nothing here waits: :func:`kill_tree` sends the signal (or starts ``taskkill``) and returns, and
:class:`LineReader` threads are never joined, so the GUI thread never blocks. Child output is
UTF-8 on both sides (``PYTHONIOENCODING=utf-8``; decoded with ``errors="replace"``), so
non-ASCII paths and log lines survive on Windows, whose console code page is not UTF-8.
No Qt and no Slicer here.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Mapping, Optional, Sequence, Union

from ..engine import runtime_env

_WINDOWS = sys.platform == "win32"
#: the niceness of a low-priority child on POSIX (the lowest priority)
LOWEST_NICE = 19


def package_root() -> Path:
    """The folder that holds the ``UNetPlusPlusLib`` package (put on the child's PYTHONPATH)."""
    return Path(__file__).resolve().parents[2]


def child_environment(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) plus passive OpenMP waiting (``runtime_env``), unbuffered
    UTF-8 output and our package first on ``PYTHONPATH``."""
    # no OpenMP busy-waiting in the child: Slicer shares its cores (engine/runtime_env.py)
    env = runtime_env.child_env(dict(os.environ if base is None else base))
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(package_root()), env.get("PYTHONPATH", "")) if p
    )
    return env


def low_priority_command(command: Sequence[str]) -> list[str]:
    """POSIX: ``command`` run through ``nice -n 19`` (the lowest priority; ``nice`` execs it,
    so the process id stays the group leader's), or as it is where there is no ``nice``. On
    Windows ``command`` unchanged (:func:`spawn` asks for ``IDLE_PRIORITY_CLASS`` instead)."""
    if _WINDOWS:
        return list(command)
    nice = shutil.which("nice")
    return [nice, "-n", str(LOWEST_NICE), *command] if nice else list(command)


def spawn(
    command: Sequence[str],
    cwd: Union[str, os.PathLike],
    env: Optional[Mapping[str, str]] = None,
    stdin: Union[int, None] = subprocess.DEVNULL,
    low_priority: bool = False,
) -> subprocess.Popen:
    """Start ``command`` as the leader of a new process group, pipes decoded as UTF-8 text.

    ``stdin`` is ``subprocess.DEVNULL`` (default) or ``subprocess.PIPE`` (a request channel).
    ``low_priority``: the lowest CPU priority, inherited by the launcher's child (POSIX:
    :func:`low_priority_command`; Windows: ``IDLE_PRIORITY_CLASS``, which a process started by
    an idle-priority one inherits). Raises ``OSError`` when the program cannot be started.
    """
    options: dict = {}
    if _WINDOWS:
        options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(
            subprocess, "CREATE_NO_WINDOW", 0
        )
        if low_priority:
            options["creationflags"] |= getattr(subprocess, "IDLE_PRIORITY_CLASS", 0)
    else:
        options["start_new_session"] = True
        if low_priority:
            command = low_priority_command(command)
    return subprocess.Popen(
        list(command),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(child_environment() if env is None else env),
        cwd=str(cwd),
        text=True,
        encoding="utf-8",
        errors="replace",
        bufsize=1,
        **options,
    )


def kill_tree(process: Optional[subprocess.Popen]) -> None:
    """Kill ``process`` and every process it started (its group); returns without waiting.

    Safe to call on a finished process or twice. POSIX: SIGKILL to the process group, which the
    launcher's children share. Windows: the tree through psutil when it is installed, else
    ``taskkill /T /F``, started and not waited for.
    """
    if process is None:
        return
    if _WINDOWS:
        if process.poll() is None:
            _kill_tree_windows(process)
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group id is the leader's pid
    except (ProcessLookupError, PermissionError):
        pass  # the whole group has already gone
    process.poll()  # reap the leader if it is dead, without waiting


def _kill_tree_windows(process: subprocess.Popen) -> None:
    """psutil when installed (children first, then the process); otherwise ``taskkill /T /F``,
    started and not waited for (it needs the parent alive to find the tree)."""
    try:
        import psutil
    except ImportError:
        psutil = None
    if psutil is not None:
        try:
            parent = psutil.Process(process.pid)
            for child in parent.children(recursive=True):
                try:
                    child.kill()
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
    else:
        try:
            subprocess.Popen(
                ["taskkill", "/T", "/F", "/PID", str(process.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
            return  # taskkill ends the process itself, after its children
        except OSError:
            pass
    try:
        process.kill()
    except OSError:
        pass


class LineReader:
    """A daemon thread that moves a text stream's lines into a queue; never joined.

    ``lines`` receives ``(name, line)`` tuples without the line ending; ``eof`` is set once the
    stream is exhausted (the writer and everything that inherited the pipe have exited).
    """

    def __init__(self, stream: IO[str], name: str, lines: queue.Queue) -> None:
        self.name = name
        self.eof = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(stream, lines), name=f"unetpp-{name}", daemon=True
        )
        self._thread.start()

    def _run(self, stream: IO[str], lines: queue.Queue) -> None:
        try:
            for line in stream:
                lines.put((self.name, line.rstrip("\r\n")))
        except (OSError, ValueError):
            pass  # the pipe was closed under us
        finally:
            try:
                stream.close()
            except OSError:
                pass
            self.eof.set()


def output_complete(
    process: Optional[subprocess.Popen], readers: Sequence, exited_at: float, now: float,
    grace: float,
) -> bool:  # fmt: skip
    """After ``process`` exited (at ``exited_at``, ``time.monotonic()`` seconds): whether all of
    its output has been read. False while a :class:`LineReader` has not reached EOF and less
    than ``grace`` seconds have passed (the last lines are still on their way); after that the
    process tree that still holds the pipes (an orphan: the launcher died alone) is killed and
    the output counts as complete."""
    if all(reader.eof.is_set() for reader in readers):
        return True
    if now - exited_at < grace:
        return False
    kill_tree(process)
    return True


def drain(lines: queue.Queue) -> list[tuple[str, str]]:
    """Every ``(name, line)`` waiting in ``lines``, without blocking."""
    out = []
    while True:
        try:
            out.append(lines.get_nowait())
        except queue.Empty:
            return out

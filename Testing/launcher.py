"""Launcher-like wrappers and process checks for the background-job tests (POSIX, /proc).

In Slicer, ``PythonSlicer`` is a launcher: it starts the real interpreter as its child and waits
for it, and killing the launcher leaves that child running. :func:`make_launcher` writes a script
that behaves the same way, to pass as the job's ``python``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Iterable, Optional

# The child ignores SIGTERM and the cancel file: only killing the tree stops it.
STUBBORN_CHILD = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('busy', flush=True)"
    "; time.sleep(120)"
)


def make_launcher(folder: Path, child_code: Optional[str] = None) -> str:
    """An executable script that runs ``<this python> ARGS...`` (or ``-c child_code``, ignoring
    ARGS) as its child, waits for it and exits with its status; returns its path."""
    argv = (
        f"[{sys.executable!r}, '-c', {child_code!r}]"
        if child_code
        else (f"[{sys.executable!r}, *sys.argv[1:]]")
    )
    path = folder / "PythonSlicer"
    path.write_text(
        f"#!{sys.executable}\nimport subprocess, sys\nsys.exit(subprocess.call({argv}))\n",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return str(path)


def _stat(pid: int) -> Optional[list[str]]:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()  # fields after "pid (comm) "


def alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (a zombie uses no CPU, memory or pipes)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def descendants(pid: int) -> set[int]:
    """Living processes started by ``pid`` (children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def wait_for_descendant(pid: int, timeout: float = 60.0) -> set[int]:
    """The launcher ``pid`` and its descendants, once it has started at least one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = descendants(pid)
        if found:
            return {pid, *found}
        time.sleep(0.01)
    raise AssertionError(f"launcher {pid} started no child within {timeout} s")


def living(pids: Iterable[int]) -> set[int]:
    return {pid for pid in pids if alive(pid)}

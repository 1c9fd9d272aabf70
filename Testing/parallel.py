"""Running the suite in parallel with pytest-xdist (``make test``: ``-n auto --dist worksteal``).

- :func:`auto_workers`: the worker count of ``-n auto`` (conftest's
  ``pytest_xdist_auto_num_workers``): one per CPU this process may run on, at most
  ``MAX_WORKERS`` and one per ``WORKER_MEMORY_BYTES`` of physical memory, at least 1.
- :func:`session_dir`: one scratch folder shared by every worker of a run (and by a serial run),
  made by the controlling process before the workers start and removed after they end; for data
  that one worker prepares and the others reuse (``brats_store``), under a file lock.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

#: Environment variable naming the run's shared scratch folder (inherited by the workers).
SESSION_DIR_ENV = "UNETPP_TEST_SESSION_DIR"
#: More workers than this gain little: each holds torch and its own session fixtures.
MAX_WORKERS = 8
#: Peak memory of one worker with the processes it starts (measured: see README, Tests).
WORKER_MEMORY_BYTES = 3 * 1024**3


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def physical_memory_bytes() -> Optional[int]:
    """Physical memory in bytes, or None where the OS does not say (Windows)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def auto_workers(cpus: int, memory_bytes: Optional[int]) -> int:
    """Workers for ``cpus`` CPUs and ``memory_bytes`` of memory (None: unknown, not a limit):
    ``min(cpus, MAX_WORKERS, memory // WORKER_MEMORY_BYTES)``, at least 1. A 2-CPU machine
    with 6 GiB or more gets 2."""
    workers = min(cpus, MAX_WORKERS)
    if memory_bytes is not None:
        workers = min(workers, memory_bytes // WORKER_MEMORY_BYTES)
    return max(1, int(workers))


def make_session_dir() -> Optional[str]:
    """Create the run's shared folder and name it in the environment (before xdist starts its
    workers, which inherit it). Returns its path, or None when an enclosing run made one."""
    if os.environ.get(SESSION_DIR_ENV):
        return None
    folder = tempfile.mkdtemp(prefix="unetpp-tests-")
    os.environ[SESSION_DIR_ENV] = folder
    return folder


def remove_session_dir(folder: Optional[str]) -> None:
    """Remove the folder ``make_session_dir`` made (None: nothing of ours)."""
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(SESSION_DIR_ENV, None)


def session_dir() -> Path:
    """The run's shared scratch folder (conftest's ``pytest_configure`` makes it); one of this
    process's own, removed at its exit, where none was made."""
    folder = os.environ.get(SESSION_DIR_ENV)
    if not folder:
        folder = make_session_dir()
        atexit.register(remove_session_dir, folder)
    return Path(folder)

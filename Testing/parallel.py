"""Running the suite in parallel with pytest-xdist (``make test``: ``-n auto --dist worksteal``).

- :func:`auto_workers`: the worker count of ``-n auto`` (conftest's
  ``pytest_xdist_auto_num_workers``): one per CPU this process may run on, at most
  ``MAX_WORKERS`` and one per ``WORKER_MEMORY_BYTES`` of memory, at least 1; a container's
  CPU quota and memory limit (Linux control group) count where lower than the host's.
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


#: Where Linux shows this process's control group (a container's own, in its namespace).
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _read_words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except (OSError, UnicodeDecodeError):
        return []


def cgroup_cpus(root: Path = CGROUP_ROOT) -> Optional[int]:
    """CPUs of the control group's CPU quota (``docker --cpus 2``: cgroup v2 ``cpu.max``, v1
    ``cpu/cpu.cfs_quota_us`` over ``cpu.cfs_period_us``), rounded up; None without a quota.
    The affinity mask does not show a quota: a 2-CPU container on a 16-core host saw 16."""
    v2 = _read_words(root / "cpu.max")
    quota, period = (v2[:2] if len(v2) >= 2 else []) or [
        (_read_words(root / "cpu" / name) or [""])[0]
        for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us")
    ]
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None  # "max", absent or unreadable: no quota
    return -(-quota_us // period_us) if quota_us > 0 and period_us > 0 else None


def cgroup_memory_bytes(root: Path = CGROUP_ROOT) -> Optional[int]:
    """The control group's memory limit in bytes (cgroup v2 ``memory.max``, v1
    ``memory/memory.limit_in_bytes``), or None without one ("max", or v1's near-2**63)."""
    for path in (root / "memory.max", root / "memory" / "memory.limit_in_bytes"):
        words = _read_words(path)
        if words and words[0].isdigit() and int(words[0]) < 2**60:
            return int(words[0])
    return None


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one, and its control
    group's CPU quota), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count() or 1
    quota = cgroup_cpus()
    return max(1, min(cpus, quota) if quota else cpus)


def physical_memory_bytes() -> Optional[int]:
    """Memory in bytes: physical memory, or the control group's limit where lower (a
    container's ``--memory``); None where the OS does not say (Windows)."""
    try:
        memory: Optional[int] = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        memory = None
    limit = cgroup_memory_bytes()
    if limit is not None and (memory is None or limit < memory):
        return limit
    return memory


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

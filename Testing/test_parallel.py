"""The suite on pytest-xdist workers (parallel.py, conftest.py): the worker count of `-n auto`
and the run's shared folder."""

from __future__ import annotations

import os

import parallel

GIB = 1024**3


def test_auto_workers_follow_the_cpus_within_the_memory_and_the_cap():
    assert parallel.auto_workers(2, 7 * GIB) == 2  # a 2-core CI runner gets both cores
    assert parallel.auto_workers(1, 64 * GIB) == 1
    assert parallel.auto_workers(4, None) == 4  # memory unknown: not a limit
    assert parallel.auto_workers(64, 512 * GIB) == parallel.MAX_WORKERS
    assert parallel.auto_workers(16, 2 * parallel.WORKER_MEMORY_BYTES) == 2
    assert parallel.auto_workers(2, GIB) == 1  # never 0


def test_the_run_has_one_shared_folder_named_for_its_workers():
    """conftest made it before the workers started; they (and children) see its name."""
    folder = parallel.session_dir()
    assert folder.is_dir() and os.environ[parallel.SESSION_DIR_ENV] == str(folder)
    assert parallel.make_session_dir() is None  # an enclosing run's folder is not replaced

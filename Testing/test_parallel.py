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


def test_a_containers_cpu_quota_and_memory_limit_bound_the_workers(tmp_path):
    """A container's limits (cgroup v2 and v1 files as Linux shows them) count, not only the
    host's cores and memory: `docker run --cpus 2 --memory 4g` on a 16-core 64 GiB host got
    8 workers of 3 GiB (tester 21)."""
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "memory").mkdir()
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")
    (v2 / "memory.max").write_text(f"{4 * GIB}\n")
    assert parallel.cgroup_cpus(v2) == 2 and parallel.cgroup_memory_bytes(v2) == 4 * GIB
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (v1 / "memory" / "memory.limit_in_bytes").write_text(f"{7 * GIB}\n")
    assert parallel.cgroup_cpus(v1) == 2 and parallel.cgroup_memory_bytes(v1) == 7 * GIB
    assert parallel.auto_workers(16, parallel.cgroup_memory_bytes(v2)) == 1
    (v2 / "cpu.max").write_text("max 100000\n")  # no limits: the host's figures stand
    (v2 / "memory.max").write_text("max\n")
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    (v1 / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    for root in (v2, v1, tmp_path / "none"):
        assert parallel.cgroup_cpus(root) is None and parallel.cgroup_memory_bytes(root) is None
    assert 1 <= parallel.usable_cpus() <= (os.cpu_count() or 1)

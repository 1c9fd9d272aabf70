"""The CPU thread count a segmentation uses by default, without importing torch.

``devices.configure_threads`` sets it in torch; ``prepare_stamp`` keys a prepared model by it,
in the Slicer module's process too, which never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Optional


def physical_core_count() -> int:
    """Physical cores this process may run on (hyper-threads counted once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = list(range(os.cpu_count() or 1))
    cores = set()
    for cpu in cpus:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def default_thread_count(env: Optional[Mapping[str, str]] = None) -> int:
    """``OMP_NUM_THREADS`` of ``env`` (default ``os.environ``) when it is a positive integer,
    else the physical core count: the threads of a segmentation run without ``--threads``."""
    value = (os.environ if env is None else env).get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else physical_core_count()

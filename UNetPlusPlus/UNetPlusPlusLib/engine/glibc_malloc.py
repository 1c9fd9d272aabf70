"""glibc's malloc thresholds for a training process (Linux with glibc only).

A training step allocates and frees the same large activations and gradients every iteration.
glibc serves a block of 128 KiB or more (its dynamic threshold grows to at most 32 MiB on
64-bit) with its own ``mmap`` and unmaps it on ``free``, so the next step pays a page fault per
4 KiB page again: ~8,000 minor faults per step of the tiny network (scripts/measure_tiny_step.py).
With the mmap threshold at 64 MiB and the trim threshold at 256 MiB, freed blocks stay in the
heap and are reused (docs/TRAINING_CPU.md).

Applied only by the ``unetpp train`` program (cli.py, training/cli.py), whose process ends with
the run: the setting is process-wide, and retains up to 256 MiB of freed memory.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # glibc malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20
_USER_KNOBS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")


def glibc() -> bool:
    """Whether this process runs on Linux with GNU libc (``mallopt`` and its constants)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (ValueError, OSError):  # musl and others do not know the name
        return False
    return bool(version and version.startswith("glibc"))


def keep_freed_buffers() -> bool:
    """Raise glibc's mmap threshold (64 MiB) and trim threshold (256 MiB) for this process, so
    that buffers freed by one training step are reused by the next without page faults. Returns
    whether they were set: False off glibc, and when the user tuned malloc through the
    environment (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``GLIBC_TUNABLES``:
    theirs is kept). Never raises."""
    if not glibc() or any(knob in os.environ for knob in _USER_KNOBS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )

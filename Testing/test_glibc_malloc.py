"""The ``unetpp train`` program keeps freed buffers in glibc's heap (``glibc_malloc``): a freed
48 MiB block is reused without page faults, where glibc's defaults unmap it and fault every
page in again. Only there: in-process callers (the tests, Slicer's own process) and other
commands keep glibc's defaults, and so does a user's own malloc tuning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from UNetPlusPlusLib.engine.glibc_malloc import glibc

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not glibc(), reason="mallopt thresholds are glibc's")

PROBE = r"""
import contextlib, ctypes, io, json, resource, sys
mode = sys.argv[1]
applied = None
if mode == "direct":
    from UNetPlusPlusLib.engine.glibc_malloc import keep_freed_buffers
    applied = keep_freed_buffers()
elif mode != "none":  # the program, as the unetpp script runs it (argv None)
    from UNetPlusPlusLib import cli
    sys.argv = ["unetpp", mode, "--help"]
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        cli.main()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
size = 48 << 20  # above glibc's largest dynamic mmap threshold (32 MiB)
def cycle():
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
cycle()
print(json.dumps([applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before]))
"""


def _faults(mode: str, **env: str) -> list:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environment.pop("GLIBC_TUNABLES", None)
    environment.update(env, PYTHONPATH=str(ROOT / "UNetPlusPlus"))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, env=environment
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_freed_blocks_are_reused_without_page_faults():
    pages = (48 << 20) // 4096
    assert _faults("none")[1] >= pages // 2  # glibc's defaults: mapped afresh
    assert _faults("direct") == [True, 0]
    assert _faults("direct", MALLOC_MMAP_THRESHOLD_="131072")[0] is False  # the user's kept


def test_only_the_train_program_changes_malloc():
    assert _faults("train")[1] == 0
    assert _faults("segment")[1] >= (48 << 20) // 4096 // 2

#!/usr/bin/env python
"""How `unetpp segment`'s background import of torch (torch_preload.py) overlapped the main
thread's reading and checks, in one run as a program (issue 14, cold start).

Runs the CLI as the ``unetpp`` program does (``cli.main()``, so the import starts on its thread)
and prints, in seconds from this script's start: when the import began and ended, when the main
thread reached ``torch_preload.wait()`` (every input read and checked) and left it, and the CPU
seconds of each thread up to then. ``main_at_wait`` before ``import_end``: the run waited for
torch; after: the import was hidden.

    PYTHONPATH=$PWD/UNetPlusPlus python scripts/measure_cold_overlap.py segment IMAGE... \\
        --task brain-tumor --threads 2 -o /tmp/out.seg.nrrd --overwrite --quiet
"""

from __future__ import annotations

import sys
import time

START = time.perf_counter()

from UNetPlusPlusLib import cli, torch_preload  # noqa: E402 - timed from the line above

_import, _wait = torch_preload._import, torch_preload.wait
stamps: dict[str, float] = {}


def _timed_import(module: str, outcome: dict) -> None:
    stamps["import_begin"] = time.perf_counter() - START
    cpu = time.thread_time()
    _import(module, outcome)
    stamps["import_end"] = time.perf_counter() - START
    stamps["import_thread_cpu"] = time.thread_time() - cpu


def _timed_wait() -> None:
    stamps["main_at_wait"] = time.perf_counter() - START
    stamps["main_thread_cpu"] = time.thread_time()
    _wait()
    stamps["main_after_wait"] = time.perf_counter() - START
    print(" ".join(f"{k} {v:.2f}" for k, v in stamps.items()), file=sys.stderr, flush=True)


if __name__ == "__main__":
    torch_preload._import, torch_preload.wait = _timed_import, _timed_wait
    sys.argv = ["unetpp", *sys.argv[1:]]
    sys.exit(cli.main())

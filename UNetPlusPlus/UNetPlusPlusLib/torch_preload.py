"""Import torch on a background thread while `unetpp segment` reads and checks its inputs.

A fresh `unetpp segment` process spends 1.5-2 s of CPU importing torch (single-threaded, most
of its `load` stage), and the main thread then reads and checks the input volume(s) without
torch for 0.5-2.5 s more. :func:`start` (``cli.main``, run as a program, after the options are
parsed) begins ``import torch`` on a thread at once; the main thread goes on reading and
checking, and :func:`wait` (``run_segment``, just before the network is loaded) waits for the
import to end. On two cores the two overlap: reading a ``.nii.gz`` releases the GIL while zlib
inflates and numpy converts (docs/BENCHMARK_E2E.md, "Cold start").

What does not change:

- OpenMP's wait policy (``engine/runtime_env.py``) is still chosen when torch is imported:
  the import hook installed by ``runtime_env.apply`` runs on this thread before torch loads,
  so the policy's variables are in the environment before OpenMP reads them.
- Input errors: the main thread reports them as before (one line, nothing written) without
  waiting for the import; ``cli.main`` then ends the process at once (``os._exit``, after
  flushing stdout and stderr) instead of waiting for the thread.
- A failed import (a broken install) is raised by :func:`wait` in the main thread, as the
  same exception ``import torch`` raised there before; nothing is printed from the thread.

`unetpp serve` (run as a program) starts the import as it starts, so that its first request,
which reads its inputs meanwhile, does not wait for all of it. In-process callers (tests,
``cli.main(argv)``, the Slicer module's in-process runs) never start the thread.
"""

from __future__ import annotations

import sys
import threading
from typing import Optional

#: the one preload of this process: (thread, {"error": exception or None})
_started: Optional[tuple[threading.Thread, dict]] = None


def _import(module: str, outcome: dict) -> None:
    try:
        __import__(module)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread by wait()
        outcome["error"] = error


def start(module: str = "torch") -> bool:
    """Begin importing ``module`` on a (non-daemon) thread, once per process. Returns True
    when a thread was started; False when one was started before or the module is loaded."""
    global _started
    if _started is not None or module in sys.modules:
        return False
    outcome: dict = {"error": None}
    thread = threading.Thread(
        target=_import, args=(module, outcome), name=f"unetpp-import-{module}"
    )
    _started = (thread, outcome)
    thread.start()
    return True


def started() -> bool:
    """True when :func:`start` began a background import in this process."""
    return _started is not None


def running() -> bool:
    """True while the background import is still running."""
    return _started is not None and _started[0].is_alive()


def wait() -> None:
    """Wait for the background import, if one was started; re-raise its exception (the one
    ``import torch`` would have raised here). A no-op when none was started."""
    if _started is None:
        return
    thread, outcome = _started
    thread.join()
    if outcome["error"] is not None:
        raise outcome["error"]

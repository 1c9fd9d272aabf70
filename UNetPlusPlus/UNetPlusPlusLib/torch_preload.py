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

What does change: while the import runs, the GIL switch interval is 1 ms instead of 5
(:data:`SWITCH_INTERVAL_S`), so the main thread's reading is not held up behind the import's
bytecode after each zlib or numpy call; it is restored when the import ends.

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


#: Python's GIL switch interval while the import runs (s; the default is 0.005). The main
#: thread reads and checks meanwhile in calls that release the GIL (zlib, numpy, file reads)
#: and must win it back after each; with the default it waited up to 5 ms each time, behind
#: the import's bytecode: reading the 512x512x300 liver CT took 2.6-3.3 s beside the import
#: against 0.9-1.5 s alone (1.1-1.5 CPU-s either way); at 1 ms, 2.0-2.5 s, the import no
#: slower (session 16, load ~5.5; docs/BENCHMARK_E2E.md).
SWITCH_INTERVAL_S = 0.001


def _import(module: str, outcome: dict, restore: float) -> None:
    try:
        __import__(module)
    except BaseException as error:  # noqa: BLE001 - handed to the main thread by wait()
        outcome["error"] = error
    finally:
        sys.setswitchinterval(restore)  # as soon as the import ends, waited for or not


def start(module: str = "torch") -> bool:
    """Begin importing ``module`` on a (non-daemon) thread, once per process. Returns True
    when a thread was started; False when one was started before or the module is loaded."""
    global _started
    if _started is not None or module in sys.modules:
        return False
    outcome: dict = {"error": None}
    restore = sys.getswitchinterval()
    thread = threading.Thread(
        target=_import, args=(module, outcome, restore), name=f"unetpp-import-{module}"
    )
    _started = (thread, outcome)
    sys.setswitchinterval(min(restore, SWITCH_INTERVAL_S))
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

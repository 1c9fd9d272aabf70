"""Thread-runtime settings that keep CPU inference fast when other programs share the cores.

PyTorch's CPU wheels run oneDNN on GNU OpenMP (Intel OpenMP in some builds). By default an
OpenMP worker that reaches a barrier spins, busy-waiting for its siblings. On a machine whose
cores are shared (a clinician's workstation running Slicer, other jobs), the sibling it waits for
has often been descheduled, so the spinning thread burns the time slice that sibling needed:
each of the thousands of short parallel regions of a tile then costs a scheduler quantum. A
passive wait policy (the worker sleeps on a futex) removed that collapse here: the shipped liver
network at L2 went from 0.47-0.73 s to 0.085 s per 48^3 tile (median, load ~2;
docs/BENCHMARK.md, "Under load").

OpenMP reads these variables once, when the library is loaded, i.e. when ``torch`` is first
imported. They must therefore be set before that: :func:`apply` at the top of the CLI's
``main``, :func:`child_env` for the Slicer job's child process. This module imports neither
torch nor numpy, so it is safe to import first. A value the user set explicitly is kept.

Sources: GCC libgomp manual, "OMP_WAIT_POLICY" and "GOMP_SPINCOUNT"; Intel OpenMP
"KMP_BLOCKTIME" (0 = sleep at once).
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, MutableMapping, Optional

#: Variables set unless the user chose a value: no busy-waiting in either OpenMP runtime.
CPU_RUNTIME_ENV: dict[str, str] = {
    "OMP_WAIT_POLICY": "PASSIVE",  # GNU and Intel OpenMP: idle workers sleep instead of spinning
    "KMP_BLOCKTIME": "0",  # Intel OpenMP (some torch builds, MKL): sleep right after a region
}

_state = {"applied_before_torch": None}


def child_env(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) with :data:`CPU_RUNTIME_ENV` added where unset.

    Pass the result as ``env=`` to ``subprocess.Popen`` for a process that will run inference.
    """
    env = dict(os.environ if base is None else base)
    for name, value in CPU_RUNTIME_ENV.items():
        env.setdefault(name, value)
    return env


def apply(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Set :data:`CPU_RUNTIME_ENV` in this process where unset; call before importing torch.

    Returns True when the settings take effect, i.e. torch (and so OpenMP) was not loaded yet.
    """
    target = os.environ if environ is None else environ
    already = target.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"  # set by a parent
    for name, value in CPU_RUNTIME_ENV.items():
        target.setdefault(name, value)
    effective = already or "torch" not in sys.modules
    if environ is None and _state["applied_before_torch"] is None:
        _state["applied_before_torch"] = effective
    return effective


def busy_wait_warning() -> Optional[str]:
    """A message when this process's OpenMP may busy-wait (else None), for the Predictor's log.

    A process that imported torch without a passive wait policy (e.g. a user's script that did
    not go through the CLI) still works, but slows down by up to ~7x on a shared machine.
    """
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
    if policy == "PASSIVE" and _state["applied_before_torch"] is not False:
        return None
    return (
        "OpenMP may busy-wait in this process, which slows inference down several times when "
        "other programs share the CPU cores: set OMP_WAIT_POLICY=PASSIVE before starting Python "
        "(the unetpp command and the Slicer module do this themselves)."
    )

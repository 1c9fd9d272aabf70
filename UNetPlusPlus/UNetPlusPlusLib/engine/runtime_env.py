"""Thread-runtime settings that keep CPU inference fast on a quiet machine and a busy one.

PyTorch's CPU wheels run oneDNN on GNU OpenMP (Intel OpenMP in some builds). An OpenMP worker
that reaches a barrier either spins, busy-waiting for its siblings, or sleeps on a futex and is
woken. On a machine whose cores are shared (a clinician's workstation running Slicer, other
jobs), the sibling it waits for has often been descheduled, so a spinning thread burns the time
slice that sibling needed: each of the thousands of short parallel regions of a tile then costs
a scheduler quantum. A passive wait policy removed that collapse (the shipped liver network at
L2: 0.47-0.73 s to 0.085 s per 48^3 tile, load ~2). Under the bench's two busy programs,
spinning for 1 ms (``GOMP_SPINCOUNT=100000``) made a nodule tile 17x slower than sleeping.
On a quiet machine, though, every sleeping worker must be woken (a system call, and on a
virtual machine an interrupt through the hypervisor) before each region: there sleeping cost
30-40 % per tile on the shipped models (nodule L1 16.8 against 12.0 ms, liver L4 174.6 against
134.7 ms, medians of 5 interleaved fresh processes; docs/BENCHMARK_WAIT_POLICY.md, "Session 12:
spin when quiet").

So the wait policy is chosen per process, when torch is first imported (OpenMP reads these
variables once, when the library loads): :func:`apply` (first thing in the CLI's ``main``)
starts a sample of the CPU time other programs use (``cpu_contention``) and installs a one-shot
import hook; at ``import torch`` the hook calls :func:`decide`, which waits until the sample is
:data:`SAMPLE_S` long and picks

- ``spin`` (:data:`SPIN_RUNTIME_ENV`, libgomp's own default of about 3 ms of spinning) when
  other programs used less than :data:`QUIET_CORES` cores, and
- ``passive`` (:data:`CPU_RUNTIME_ENV`) otherwise, where ``/proc/stat`` cannot be read (not
  Linux), or when torch was imported through another path first.

A process that spins and later finds the cores shared drops to one thread between tiles
(``spin_guard``): no barrier, so nothing spins (1.2-1.7x slower than sleeping on two threads
under that load, instead of 17x). ``UNETPP_WAIT_POLICY=passive`` or ``spin`` fixes the choice,
``auto`` (the default) decides as above; ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` set by the
user are kept as they are. :func:`child_env` gives a child process the passive settings marked
as ours (:data:`MARK`), so that a child which calls :func:`apply` decides again for itself and
one which does not stays passive. Long-lived processes (training, ``unetpp serve``) sleep
unless ``UNETPP_WAIT_POLICY=spin`` (:func:`prefer_passive`): the load changes under them.

This module imports neither torch nor numpy, so it is safe to import first.

Sources: GCC libgomp manual, "OMP_WAIT_POLICY" and "GOMP_SPINCOUNT" (300000 spins, about 3 ms,
is its default when the policy is unset); Intel OpenMP "KMP_BLOCKTIME" (0 = sleep at once).
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import time
from typing import Mapping, MutableMapping, Optional

from . import cpu_contention

#: The passive settings: no busy-waiting in either OpenMP runtime.
CPU_RUNTIME_ENV: dict[str, str] = {
    "OMP_WAIT_POLICY": "PASSIVE",  # GNU and Intel OpenMP: idle workers sleep instead of spinning
    "KMP_BLOCKTIME": "0",  # Intel OpenMP (some torch builds, MKL): sleep right after a region
}
#: The spinning settings, used on a quiet machine: libgomp's default spin (about 3 ms) before a
#: worker sleeps. Intel OpenMP builds keep sleeping at once (not measured here).
SPIN_RUNTIME_ENV: dict[str, str] = {"GOMP_SPINCOUNT": "300000", "KMP_BLOCKTIME": "0"}
#: The user's choice: ``auto`` (default), ``passive`` or ``spin``.
KNOB = "UNETPP_WAIT_POLICY"
#: Set beside OpenMP variables that this module wrote (not the user), so a child may decide again.
MARK = "UNETPP_OPENMP_ENV"
#: Other programs' CPU use (cores) below which the machine counts as quiet, and the sample's length.
QUIET_CORES = 0.25
SAMPLE_S = 0.1

#: the variables switched between the two policies (KMP_BLOCKTIME is "0" in both, unless set)
_OPENMP_NAMES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_state: dict = {
    "applied_before_torch": None,
    "policy": None,
    "others_cores": None,
    "sample": None,
    "knob_warning": None,
    "reading": None,
}


def _ours(env: Mapping[str, str]) -> bool:
    """True when ``env``'s OpenMP wait settings were written by this module, or are unset."""
    user_set = any(name in env for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT"))
    return env.get(MARK) == "1" or not user_set


def _write(env: MutableMapping[str, str], settings: Mapping[str, str]) -> None:
    for name in _OPENMP_NAMES:
        env.pop(name, None)
    for name, value in settings.items():
        if name in _OPENMP_NAMES:
            env[name] = value
        else:
            env.setdefault(name, value)  # KMP_BLOCKTIME: the user's value is kept
    env[MARK] = "1"


def child_env(base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """A copy of ``base`` (default ``os.environ``) for a process that will run inference.

    Unless the user set the OpenMP wait variables, it gets the passive settings
    (:data:`CPU_RUNTIME_ENV`) marked as ours: a child that calls :func:`apply` (the CLI) decides
    again from the load it sees, one that does not stays passive. Pass it as ``env=`` to
    ``subprocess.Popen``.
    """
    env = dict(os.environ if base is None else base)
    if _ours(env):
        _write(env, CPU_RUNTIME_ENV)
    env.setdefault("KMP_BLOCKTIME", CPU_RUNTIME_ENV["KMP_BLOCKTIME"])
    return env


class _DecideAtTorchImport(importlib.abc.MetaPathFinder):
    """Calls :func:`decide` once, when ``torch`` is about to be imported, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torch":
            _remove_hook()
            decide()
        return None  # the normal finders import it


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _DecideAtTorchImport)]


def apply(environ: Optional[MutableMapping[str, str]] = None) -> bool:
    """Choose OpenMP's wait policy for this process; call before importing torch.

    The user's ``OMP_WAIT_POLICY`` / ``GOMP_SPINCOUNT`` are kept. Otherwise the passive settings
    are written now and, with ``UNETPP_WAIT_POLICY`` ``auto`` (default) on Linux, a sample of
    other programs' CPU use starts; :func:`decide` ends it when torch is imported (spin if
    quiet). ``spin`` or ``passive`` fix the choice. ``environ``: a mapping to write instead of
    ``os.environ`` (no sample, no hook). Returns True when the settings take effect, i.e.
    torch (and so OpenMP) was not loaded yet.
    """
    target = os.environ if environ is None else environ
    loaded = "torch" in sys.modules
    if not _ours(target):
        target.setdefault("KMP_BLOCKTIME", CPU_RUNTIME_ENV["KMP_BLOCKTIME"])
        policy = target.get("OMP_WAIT_POLICY", "").strip().upper()
        effective = policy == "PASSIVE" or not loaded  # a parent's PASSIVE holds either way
        chosen = "passive" if policy == "PASSIVE" else "user"
    else:
        knob = target.get(KNOB, "").strip().lower() or "auto"
        if knob not in ("auto", "passive", "spin") and environ is None:
            _state["knob_warning"] = (
                f"{KNOB}={target.get(KNOB)!r} is not auto, passive or spin: OpenMP's idle "
                "threads sleep (passive)."
            )
        effective = not loaded or target.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE"
        if not loaded:
            _write(target, SPIN_RUNTIME_ENV if knob == "spin" else CPU_RUNTIME_ENV)
        chosen = "spin" if knob == "spin" and not loaded else "passive"
        if knob == "auto" and not loaded and environ is None:
            _state["sample"] = cpu_contention.read()
            if _state["sample"] is not None:
                chosen = "pending"
                _remove_hook()
                sys.meta_path.insert(0, _DecideAtTorchImport())
    if environ is None and _state["applied_before_torch"] is None:
        if loaded or chosen == "spin":  # spin_guard's first look compares with this reading
            _state["reading"] = cpu_contention.read()
        _state["applied_before_torch"] = effective
        _state["policy"] = chosen if effective else "unmanaged"
    return effective


def decide(sample_s: float = SAMPLE_S, reading: Optional[cpu_contention.CpuReading] = None) -> str:
    """End the pending sample (waiting until it is ``sample_s`` long) and write the spinning
    settings if other programs used less than :data:`QUIET_CORES` cores, else keep the passive
    ones. Returns the policy (``spin`` or ``passive``); a no-op returning the current one when
    nothing is pending or torch is loaded. ``reading``: the sample's end (tests)."""
    before = _state.get("sample")
    if _state.get("policy") != "pending" or before is None:
        return str(_state.get("policy"))
    _state["sample"] = None
    if "torch" in sys.modules and reading is None:
        _state["policy"] = "passive"  # too late to change OpenMP's settings
        return "passive"
    if reading is None:
        time.sleep(max(0.0, before.wall_s + sample_s - time.monotonic()))
        reading = cpu_contention.read()
    others = cpu_contention.others_cores(before, reading) if reading else None
    _state["others_cores"], _state["reading"] = others, reading
    if _state.get("policy") != "pending":
        # prefer_passive() ran during the sample: `unetpp serve` imports torch on a thread from
        # its start, and this wrote the spinning settings over its choice (tester 20)
        return str(_state["policy"])
    quiet = others is not None and others < QUIET_CORES
    if quiet:
        _write(os.environ, SPIN_RUNTIME_ENV)
    _state["policy"] = "spin" if quiet else "passive"
    return _state["policy"]


def prefer_passive() -> None:
    """Sleep in OpenMP barriers whatever the load at the start, for long-lived processes:
    training, and ``unetpp serve`` beside Slicer. Their load changes under them, and a spinning
    worker pool would burn the time slices that Slicer's own main thread needs; a spinning
    process under load runs on one thread (``spin_guard``), 1.2-1.9x slower than sleeping on
    two (docs/BENCHMARK_WAIT_POLICY.md, "Session 12"). Effective only before torch is imported and
    when the user left the choice to us; ``UNETPP_WAIT_POLICY=spin`` is kept (asked for)."""
    if "torch" in sys.modules or not _ours(os.environ):
        return
    if os.environ.get(KNOB, "").strip().lower() == "spin":
        return
    _remove_hook()
    _state["sample"] = None
    _write(os.environ, CPU_RUNTIME_ENV)
    _state["policy"] = "passive"


def wait_policy() -> str:
    """This process's OpenMP wait policy: ``spin``, ``passive``, ``user`` (the user's own
    variables), ``pending`` (decided at ``import torch``) or ``unmanaged`` (torch was loaded
    before :func:`apply`), or ``unset`` (never applied)."""
    return str(_state.get("policy") or "unset")


def may_spin() -> bool:
    """True when this process's OpenMP workers may busy-wait without the user asking for it
    (``spin_guard`` then keeps it on one thread while other programs compute): it chose to spin,
    or torch loaded before :func:`apply` or without it (``unmanaged``, ``unset``: libgomp's
    default spins for about 3 ms) and ``OMP_WAIT_POLICY`` is not ``PASSIVE``. False for the
    passive settings and for the user's own (``user``)."""
    policy = wait_policy()
    if policy == "spin":
        return True
    if policy not in ("unmanaged", "unset") or not _ours(os.environ):
        return False
    return os.environ.get("OMP_WAIT_POLICY", "").strip().upper() != "PASSIVE"


def start_reading() -> Optional[cpu_contention.CpuReading]:
    """The CPU reading taken when the policy was decided (or :func:`apply` found torch loaded),
    if any: ``spin_guard``'s first look compares with it instead of waiting for a second tile."""
    return _state.get("reading")


def others_cores_at_start() -> Optional[float]:
    """Other programs' CPU use (cores) measured when the policy was decided, if it was."""
    return _state.get("others_cores")


def knob_warning() -> Optional[str]:
    """A message when ``UNETPP_WAIT_POLICY`` held an unknown value (then passive), else None."""
    return _state.get("knob_warning")


def busy_wait_warning() -> Optional[str]:
    """A message when this process's OpenMP may busy-wait (else None), for the Predictor's log.

    A process that imported torch without a passive wait policy (e.g. a user's script that did
    not go through the CLI) still works, but slows down by up to ~17x on a shared machine. A
    process that chose to spin on a quiet machine is guarded (``spin_guard``): no warning.
    """
    if _state.get("policy") == "spin":
        return None
    policy = os.environ.get("OMP_WAIT_POLICY", "").strip().upper()
    if policy == "PASSIVE" and _state["applied_before_torch"] is not False:
        return None
    return (
        "OpenMP may busy-wait in this process, which slows inference down several times when "
        "other programs share the CPU cores: set OMP_WAIT_POLICY=PASSIVE before starting Python "
        "(the unetpp command and the Slicer module do this themselves)."
    )

"""The decision rule of the ``fastest`` executor's probe (engine/fastest.py).

The probe runs tiles on ours and on the library executor in interleaved pairs (ours, library,
ours, library, ...), each timed. On a shared machine single timings move by 10-50 % (other
processes, caches, frequency), and the two executors can differ by only 5-10 % (liver model, L3,
quiet machine: OpenVINO 8 % faster). The rule therefore:

- compares the two **per pair** (library / ours of two neighbouring tiles, which met nearly the
  same load), and takes the median of the pairs' log ratios, not the best of each alone;
- decides early only when that median and the ratio of the two best times agree and the median
  is clear of its noise (``z`` standard errors, the spread from the pairs' own deviations);
- decides after ``min_pairs`` pairs only a difference beyond ``close`` (10 %), after
  ``close_pairs`` any clear one, and keeps sampling while it is ambiguous, up to ``max_pairs``;
- at the cap (a tie within the noise), takes the median's faster, the library only if its
  median is not slower. (Requiring its best time not to be slower either, tried first, sent
  4 of 20 live probes where the library was 7 % faster to ours at the cap.)

Sampling longer costs little: probe tiles are real tiles of the volume, and the extra pairs are
taken only while the two are close, i.e. when running the slower one costs only that difference.
``bench/benchlib/probe_accuracy.py`` measures the fraction of right decisions against this
rule's predecessor (best of 2-4 each).

:class:`ProbeMemory` keeps the last decision per (library version, depth, tile shape, threads)
beside the graphs of the weights' sha256 (``FastestExecutor._memory_key``: a choice made with
another OpenVINO is not recalled). A cold ``unetpp segment`` otherwise pays, per depth, the
import of OpenVINO, compiling from its cache and a tile on both. (A run of fewer tiles than
``FastestExecutor.OURS_FIRST``, e.g. a 2-tile click, never gets that far: it runs on ours
alone and records nothing.) Only a remembered "ours" is acted
on (run ours, load nothing, check again after ``PRIOR_TILES`` tiles, or only after the
executor's usual ``reprobe_every`` tiles when it was made at about the same 1-minute load
average, :meth:`ProbeMemory.same_load`): a remembered OpenVINO must be loaded and compiled
anyway, and trusting ours wrongly costs at most OpenVINO's lead on a quiet machine (8 %
measured), trusting OpenVINO wrongly up to 2x under load (docs/BENCHMARK.md). A choice older
than ``PRIOR_MAX_AGE_S`` is ignored: the load changes. Why the load: a cold liver CT run (36
tiles) that re-checked a remembered "ours" after 16 tiles imported and compiled OpenVINO and
ran 7 of its tiles (1.6 s) to confirm it, about 0.8 s of a 10 s run, on every run within the
15 minutes (session 16, docs/BENCHMARK_E2E.md); a choice made at another load (the bench's
loaded rows, then idle) is still checked after 16 tiles.

A choice made at about the current load **on this machine** (the same CPU model, count and
architecture, :func:`machine_signature`) holds for ``SAME_LOAD_MAX_AGE_S`` (7 days), not 15
minutes: which executor is faster on a machine at a given load does not change by the hour,
only the load does, and ``same_load`` checks that. Session 18 measured what the 15-minute limit
cost: a cold liver CT run whose memory was older took 10.1-10.5 s against 8.6-8.9 s with a
recent one (2 + 2 alternated runs, load 0.8-1.1), the probe's import, compile and slower tiles;
a clinician's runs are usually more than 15 minutes apart, so most cold runs paid it. A wrong
trust costs at most the library's lead at that load, and long runs still probe after
``reprobe_every`` tiles.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import platform
import stat
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

MIN_PAIRS = 2  # timed pairs before a clear (beyond CLOSE) difference is decided
CLOSE = 1.1  # differences below this need CLOSE_PAIRS pairs at least
CLOSE_PAIRS = 4
MAX_PAIRS = 12  # the cap: then the median decides, ties to ours
Z = 2.0  # robust standard errors the median must clear for an early decision
SPREAD_FLOOR = 0.01  # the smallest noise assumed per pair (log ratio), 1 %


def probe_decision(
    ours: Sequence[float],
    library: Sequence[float],
    min_pairs: int = MIN_PAIRS,
    close_pairs: int = CLOSE_PAIRS,
    max_pairs: int = MAX_PAIRS,
    close: float = CLOSE,
    z: float = Z,
) -> Optional[str]:
    """``"ours"``, ``"library"``, or None (take another pair) from the timed probe tiles.

    ``ours[i]`` and ``library[i]`` (seconds, > 0) are the i-th pair, run one after the other;
    an incomplete last pair is ignored. Raises ValueError for a time that is not positive.
    """
    n = min(len(ours), len(library))
    if n < min_pairs:
        return None
    if min(min(ours[:n]), min(library[:n])) <= 0:
        raise ValueError("probe times must be positive seconds")
    logs = [math.log(b / a) for a, b in zip(ours[:n], library[:n])]
    median = statistics.median(logs)
    best = math.log(min(library[:n]) / min(ours[:n]))
    # the pairs' noise: mean absolute deviation from the median (a median of deviations is 0
    # for 3 pairs of which 2 agree), scaled to a standard deviation
    spread = max(1.2533 * statistics.fmean(abs(x - median) for x in logs), SPREAD_FLOOR)
    # the median of n pairs has a standard error of about 1.25 spread / sqrt(n)
    clear = abs(median) > z * 1.25 * spread / math.sqrt(n) and median * best > 0
    if clear and (abs(median) >= math.log(close) or n >= close_pairs):
        return "library" if median < 0 else "ours"
    if n >= max_pairs:  # ambiguous to the end: the median, a tie to the library only if equal
        return "library" if median <= 0 else "ours"
    return None


def median_ratio(ours: Sequence[float], library: Sequence[float]) -> float:
    """The median of the pairs' ratios library / ours (complete pairs only; 1.0 for none)."""
    n = min(len(ours), len(library))
    if n == 0:
        return 1.0
    return math.exp(statistics.median(math.log(b / a) for a, b in zip(ours[:n], library[:n])))


PRIOR_FILE = "probe.json"  # beside the cached graphs of one weights' sha256
PRIOR_MAX_AGE_S = 900.0  # a remembered choice older than this (15 min) is not used
PRIOR_TILES = 16  # tiles run on a remembered "ours" before the probe checks it again
#: a remembered "ours" made at a 1-minute load average within this of now (per core, at least
#: 1.0) is trusted like a fresh choice: no probe until ``FastestExecutor.reprobe_every`` tiles
SAME_LOAD_PER_CPU = 0.5
#: a remembered "ours" made at about the current load on this machine is trusted this long (7 d)
SAME_LOAD_MAX_AGE_S = 7 * 24 * 3600.0
PRIOR_MAX_BYTES = 1 << 20  # a larger probe.json is not read (its entries are ~100 bytes)


@functools.lru_cache(maxsize=1)
def machine_signature() -> str:
    """The CPU a choice was measured on: architecture, logical CPU count and model name (from
    /proc/cpuinfo on Linux, ``platform.processor()`` elsewhere), e.g. ``"x86_64/2/AMD EPYC"``.
    A graph cache shared by several machines (a network home folder) then keeps each one's
    choices apart."""
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as stream:
            for line in stream:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[-1].strip()
                    break
    except OSError:
        model = platform.processor()
    return f"{platform.machine()}/{os.cpu_count() or 0}/{model}"


def load_average() -> Optional[float]:
    """The 1-minute load average, or None where the system has none (Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def _number(value: object) -> Optional[float]:
    """``value`` as a finite float, or None for a non-number, a boolean, NaN, an infinity or an
    integer too large for a float (a hand-edited probe.json: ``"time": 1e400`` or 10**400)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


class ProbeMemory:
    """The last decision per (depth, tile shape, threads) of the weights whose graph cache
    folder is ``folder``, kept in a small JSON file there (``probe.json``).

    Written atomically (a temporary file, then a rename); an unreadable, damaged or
    unwritable file is ignored (no memory, never an error). ``clock``: seconds since the
    epoch (tests give their own).
    """

    def __init__(
        self,
        folder: Path,
        clock: Callable[[], float] = time.time,
        load: Optional[Callable[[], Optional[float]]] = None,
    ) -> None:
        self.path = Path(folder) / PRIOR_FILE
        self.clock = clock
        self.load = load_average if load is None else load  #: the 1-minute load, or None

    def _read(self) -> dict:
        """The file's JSON object, or {} when it is missing, damaged, not a regular file (a
        FIFO blocked, a link to /dev/zero was read without end) or over PRIOR_MAX_BYTES."""
        try:
            handle = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            return {}
        try:
            with os.fdopen(handle, "rb") as stream:
                if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode):
                    return {}
                raw = stream.read(PRIOR_MAX_BYTES + 1)
            if len(raw) > PRIOR_MAX_BYTES:
                return {}
            data = json.loads(raw.decode("utf-8"))
        except (OSError, ValueError, RecursionError):  # RecursionError: nested thousands deep
            return {}
        return data if isinstance(data, dict) else {}

    def _entry(self, key: str, max_age_s: float) -> Optional[dict]:
        entry = self._read().get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("pick"), str):
            return None
        stamp = _number(entry.get("time"))
        if stamp is None or not 0 <= self.clock() - stamp <= max_age_s:
            return None
        return {**entry, "time": stamp}

    def recall(self, key: str, max_age_s: float = PRIOR_MAX_AGE_S) -> Optional[str]:
        """The pick remembered for ``key`` ("ours" or a library's name), or None when there is
        none, it is older than ``max_age_s`` seconds, or the file cannot be read."""
        entry = self._entry(key, max_age_s)
        return None if entry is None else entry["pick"]

    def same_load(self, key: str, max_age_s: float = PRIOR_MAX_AGE_S) -> bool:
        """Whether the choice remembered for ``key`` (recent, as in :meth:`recall`) was made at
        about today's load: its 1-minute load average within ``SAME_LOAD_PER_CPU`` per core
        (at least 1.0) of the current one. False when either is unknown (a file written before
        loads were recorded, a system without ``os.getloadavg``)."""
        return self._same_load(self._entry(key, max_age_s))

    def _same_load(self, entry: Optional[dict]) -> bool:
        then, now = _number((entry or {}).get("load")), self.load()
        if then is None or now is None:
            return False
        return abs(now - then) <= max(1.0, SAME_LOAD_PER_CPU * (os.cpu_count() or 1))

    def trusted_ours(self, key: str) -> str:
        """How far a remembered "ours" for ``key`` may be trusted, from one read of the file:
        ``"same-load"`` when it was chosen at about the current load (:meth:`same_load`) less
        than ``PRIOR_MAX_AGE_S`` ago, or less than ``SAME_LOAD_MAX_AGE_S`` ago on this machine
        (:func:`machine_signature`); ``"recent"`` when it was chosen less than
        ``PRIOR_MAX_AGE_S`` ago at another load; ``""`` otherwise (no "ours" remembered, too
        old, another machine, an unreadable file)."""
        entry = self._entry(key, SAME_LOAD_MAX_AGE_S)
        if entry is None or entry["pick"] != "ours":
            return ""
        recent = self.clock() - entry["time"] <= PRIOR_MAX_AGE_S
        if self._same_load(entry) and (recent or entry.get("machine") == machine_signature()):
            return "same-load"
        return "recent" if recent else ""

    def remember(self, key: str, pick: str, ratio: float) -> None:
        """Record ``pick`` for ``key`` now, with the probe's median ``ratio`` (library / ours),
        this machine's :func:`machine_signature` and the 1-minute load average (when known)."""
        data = self._read()
        data[key] = {
            "pick": pick,
            "ratio": round(float(ratio), 4),
            "time": self.clock(),
            "machine": machine_signature(),
        }
        load = self.load()
        if load is not None:
            data[key]["load"] = round(float(load), 2)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=".probe-", dir=self.path.parent)
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(data, stream, indent=1, sort_keys=True)
            os.replace(temporary, self.path)
        except OSError:
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temporary)

"""The ``fastest`` executor: ours or OpenVINO, whichever runs this depth and tile shape faster now.

:class:`FastestExecutor` times the two on the tiles themselves (its rule and memory in
``probe.py``) and probes again when the load changes; ``unetpp serve`` probes between requests
(:meth:`FastestExecutor.idle_probe`). Why it is the CPU default: ``executors.py``'s docstring
and docs/BENCHMARK.md ("Executors"). ``make_executor("fastest", ...)`` (``executors.py``) makes
it, and ``executors.FastestExecutor`` is this class.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

from torch import Tensor

from .executor_backends import (
    BACKENDS,
    LIBRARY_NAMES,
    Depth,
    Executor,
    GraphExecutor,
    OursExecutor,
    available_executors,
    library_version,
)
from .graph_cache import cache_write_problem, graph_folder_in_use
from .network import UNetPlusPlus3D
from .probe import PRIOR_TILES, ProbeMemory, median_ratio, probe_decision

_LOG = logging.getLogger(__name__)


def never_busy() -> bool:
    """The default ``busy`` hook of :class:`FastestExecutor`: always probe.

    Until session 6 the default was "the 1-minute load average is at least the CPU count", and
    then ours ran without a probe. That signal lags by a minute and counts our own threads: on
    2 cores a running segmentation alone lifts it to 2. In the session-6 bench the idle rows
    ran ours at L3 (0.087 s a tile) beside OpenVINO's 0.080 s, because the load average was
    still >= 2 from the loaded rounds just before; and under load OpenVINO did win at L4 once
    probed (docs/BENCHMARK.md). The probe measures the conditions the tiles actually meet, and
    a slowed-down choice is probed again, so no load heuristic is needed."""
    return False


class FastestExecutor(Executor):
    """Ours or OpenVINO, whichever ran the current depth and tile shape faster just now.

    Per (depth, tile shape): the first ``OURS_FIRST`` tiles run on ours alone, so a short run
    (a CLI click infers 2 tiles) never imports or compiles OpenVINO, which cost it 0.25-0.35 s
    and could never be won back; the next runs on both (OpenVINO's graph is exported and
    compiled then) and returns ours; the next tiles alternate between
    the two, timed, in pairs, until :func:`probe.probe_decision` ranks them (2 pairs for a
    difference beyond 10 %, 4 or more when closer, up to 12 while it is ambiguous: the median of
    the pairs' ratios decides, a tie goes to OpenVINO only if it is not slower); the chosen one
    runs from then on, and the choice is remembered (:class:`probe.ProbeMemory`, in the graph
    cache folder, keyed also by the library's version): a later executor whose first tile of
    that depth, shape and thread count
    finds "ours" chosen less than 15 minutes ago runs ours at once, without making the library
    executor, and probes as usual after ``PRIOR_TILES`` (16) tiles, or after
    ``reprobe_every`` tiles like a choice of its own when the choice was made at about the
    current load (then up to 7 days old on the same machine:
    :meth:`probe.ProbeMemory.trusted_ours`). Both are timed again
    after ``reprobe_every`` tiles, or when the chosen one ran two tiles in a row ``slowdown``
    times slower than when it was chosen (the machine's load changed). The two agree on
    >= 99.99 % of voxels (argmax), so when the choice differs a run's labels may differ from
    another run's in a few boundary voxels.

    ``busy`` (default :func:`never_busy`) can make ours run without probing while it returns
    True; it is asked again every ``reprobe_every`` tiles. Without OpenVINO, or when it fails
    (graph cache not writable, compilation error), every tile runs on ours, with one warning;
    never an error.
    ``candidate`` names the library executor (``"openvino"``; tests use another). OpenVINO's
    request is not shared between threads: a tile from a second thread runs on ours.
    """

    name = "fastest"
    OURS_FIRST = 7  # tiles per depth and shape run on ours before the library is even made
    #: the probe's rule: (ours' times, the library's times) -> "ours", "library" or None (more)
    decide = staticmethod(probe_decision)

    def __init__(
        self,
        model: UNetPlusPlus3D,
        threads: int = 1,
        weights_sha256: Optional[str] = None,
        cache_dir: Optional[Path] = None,
        candidate: str = "openvino",
        reprobe_every: int = 64,
        slowdown: float = 2.0,
        busy: Optional[Callable[[], bool]] = None,
        clock: Callable[[], float] = time.perf_counter,
        memory: Optional[ProbeMemory] = None,
    ) -> None:
        super().__init__(model, threads)
        self.ours = OursExecutor(model, threads)
        folder: Optional[Path] = Path(cache_dir) if cache_dir is not None else None
        if memory is None and (cache_dir is not None or weights_sha256):
            folder = folder if folder is not None else graph_folder_in_use(weights_sha256)
            memory = ProbeMemory(folder)
        self._cache_folder = folder  #: for the warning of a cache that cannot be written
        self.memory = memory  #: the last decisions, beside the graphs (None: not kept)
        self._recall = True
        self.candidate = candidate
        self.reprobe_every, self.slowdown = int(reprobe_every), float(slowdown)
        self.busy = never_busy if busy is None else busy
        self.clock = clock  #: seconds; tests give a deterministic one
        self._graph_options = {"weights_sha256": weights_sha256, "cache_dir": cache_dir}
        self._library: Optional[Executor] = None
        self._usable = candidate in available_executors()
        self._lock = threading.Lock()
        self._state: dict = {}
        self.chosen = "ours"  #: the executor that ran the last tile
        #: tiles returned per executor ("ours", "openvino") since this executor was made
        self.tiles_by_executor: collections.Counter = collections.Counter()

    def _other(self) -> Executor:
        if self._library is None:
            cls = BACKENDS[self.candidate]
            if issubclass(cls, GraphExecutor):
                self._library = cls(self.model, self.threads, **self._graph_options)
            else:
                self._library = cls(self.model, self.threads)
        return self._library

    def run(self, tile: Tensor, depth: Depth) -> Tensor:
        if not self._usable or not self._lock.acquire(blocking=False):
            self.chosen = "ours"
            out = self.ours.run(tile, depth)
        else:
            try:  # errors of ours (e.g. out of memory) reach the Predictor's fallbacks as they are
                out = self._run(tile, depth)
            finally:
                self._lock.release()
        self.tiles_by_executor[self.chosen] += int(tile.shape[0])  # tiles, not passes
        return out

    def _library_run(self, tile: Tensor, depth: Depth) -> Optional[Tensor]:
        """The library's logits, or None when it failed (then ours only, from now on)."""
        try:
            return self._other().run(tile, depth)
        except Exception as error:  # noqa: BLE001 - any library failure: ours, never an error
            self._usable = False
            _LOG.debug("the %s executor failed", self.candidate, exc_info=True)
            library = LIBRARY_NAMES.get(self.candidate, self.candidate)
            folder = getattr(self._library, "cache_dir", None) or self._cache_folder
            cache = cache_write_problem(error, folder)  # named (tester 20)
            why = f": {cache}; point UNETPP_HOME at a writable folder. It" if cache else ", so it"
            warnings.warn(  # one sentence: the library's own message means nothing to a user
                f"{library} could not run this model{why} runs on the built-in CPU path "
                "instead (the same result, possibly slower).",
                stacklevel=3,
            )
            return None

    def decided(self, tile_shape: tuple, depth: Depth) -> bool:
        """Whether tiles of ``tile_shape`` at ``depth`` run on a chosen executor (no probe)."""
        return "pick" in self._state.get((str(depth), tuple(tile_shape)), {})

    def picked(self, tile_shape: tuple, depth: Depth) -> Optional[str]:
        """The executor chosen for tiles of ``tile_shape`` at ``depth`` ("ours" or the
        library's name), None while it is not decided."""
        return self._state.get((str(depth), tuple(tile_shape)), {}).get("pick")

    def forget(self) -> None:
        """Drop every choice, remembered ones too: the next tile of each depth and shape probes
        again."""
        self._state.clear()
        self._recall = False

    def _memory_key(self, tile: Tensor, depth: Depth) -> str:
        """``"openvino@2026.4.1:L3:2x1x48x48x48:t2"``: the library and its version (a choice
        made with another OpenVINO is not recalled), depth, tile shape and threads."""
        shape = "x".join(str(n) for n in tile.shape)
        version = library_version(self.candidate)
        library = f"{self.candidate}@{version}" if version else self.candidate
        return f"{library}:L{depth}:{shape}:t{self.threads}"

    def _run(self, tile: Tensor, depth: Depth) -> Tensor:
        state = self._state.setdefault((str(depth), tuple(tile.shape)), {"times": {}})
        if "pick" not in state and not state.get("warm"):
            if self.busy():  # the caller says: ours only, no compile, no probe
                state.update(pick="ours", reference=float("inf"), since=0, slow=0)
                self.chosen = "ours"
                return self.ours.run(tile, depth)
            trusted = self._recalls_ours(state, tile, depth)
            if trusted:
                # the last probe here chose ours, recently: ours without importing or compiling
                # the library, then a normal probe after `trusted` tiles
                since = max(0, self.reprobe_every - trusted)
                state.update(pick="ours", reference=None, since=since, slow=0)
                return self._run(tile, depth)
            state["last"] = tile.detach().clone()  # for idle_probe, until decided
            if state.setdefault("ours_first", 0) < self.OURS_FIRST:
                # a short run (a CLI click: 2 tiles) never pays the library's import and compile
                state["ours_first"] += 1
                self.chosen = "ours"
                return self.ours.run(tile, depth)
            # export and compile (cached on disk), warm caches; the tile's result is ours
            state["warm"] = self._library_run(tile, depth) is not None
            self.chosen = "ours"
            return self.ours.run(tile, depth)
        return self._step(state, tile, depth)

    def idle_probe(self, stop: Callable[[], bool] = lambda: False) -> int:
        """Spend idle time (``unetpp serve`` between requests) on the probe, so the next tiles
        run on the faster executor at once: for each depth and tile shape that ran here and is
        not decided, make the library (import, export, compile: the one step that cannot stop
        midway) and run probe pairs on the last tile of that depth and shape until the probe
        decides or ``stop()`` (asked before every tile) is true. The outputs are dropped.
        Returns the number of tiles run. Call it from the thread that runs the tiles, inside
        their ``reuse_buffers`` block (``Predictor.idle_probe``)."""
        if not self._usable or self.busy() or not self._lock.acquire(blocking=False):
            return 0
        ran = 0
        try:
            for (depth, _shape), state in list(self._state.items()):
                depth = depth if depth == "ensemble" else int(depth)
                while "pick" not in state and "last" in state and self._usable:
                    if stop():
                        return ran
                    if state.get("warm"):
                        self._step(state, state["last"], depth)
                    else:  # the library's first tile: made, compiled and warmed, untimed
                        state["warm"] = self._library_run(state["last"], depth) is not None
                    ran += 1
        finally:
            self._lock.release()
        return ran

    def _step(self, state: dict, tile: Tensor, depth: Depth) -> Tensor:
        """One tile after the warm-up: a timed probe tile, or the chosen executor's."""
        if "pick" not in state:
            state["last"] = tile.detach().clone() if state.get("last") is not tile else tile
        times = state["times"]  # probing: name -> timings, alternating, in pairs
        if "pick" in state:
            name = state["pick"]
        else:
            name = min(("ours", self.candidate), key=lambda n: len(times.get(n, ())))
        started = self.clock()
        out = self.ours.run(tile, depth) if name == "ours" else self._library_run(tile, depth)
        took = self.clock() - started
        if out is None:  # the library failed just now
            self.chosen = "ours"
            return self.ours.run(tile, depth)
        self.chosen = name
        if "pick" not in state:
            times.setdefault(name, []).append(took)
            verdict = self.decide(times.get("ours", []), times.get(self.candidate, []))
            if verdict is not None:
                state["pick"] = "ours" if verdict == "ours" else self.candidate
                state["reference"] = min(times[state["pick"]])
                state["since"] = state["slow"] = 0
                state.pop("last", None)
                if self.memory is not None:
                    ratio = median_ratio(times["ours"], times[self.candidate])
                    self.memory.remember(self._memory_key(tile, depth), state["pick"], ratio)
            return out
        if state["reference"] is None:  # a remembered choice: its first tile is the reference
            state["reference"] = took
        state["since"] += 1
        state["slow"] = state["slow"] + 1 if took > self.slowdown * state["reference"] else 0
        if state["since"] >= self.reprobe_every or state["slow"] >= 2:
            state.pop("pick")
            state["times"] = {}
        return out

    def _recalls_ours(self, state: dict, tile: Tensor, depth: Depth) -> int:
        """How many tiles to run ours before probing, when the memory says ours for this depth,
        tile shape and threads: ``reprobe_every`` when it was chosen at about the current load
        (within 7 days on this machine, :meth:`probe.ProbeMemory.trusted_ours`), else
        ``PRIOR_TILES`` when it was chosen in the last 15 minutes; 0 when it does not say ours
        (asked once per state, and never after :meth:`forget`)."""
        if self.memory is None or not self._recall or state.get("recalled"):
            return 0
        state["recalled"] = True
        trust = self.memory.trusted_ours(self._memory_key(tile, depth))
        return {"same-load": self.reprobe_every, "recent": PRIOR_TILES}.get(trust, 0)

"""Executors: the ways to run the (pruned) network on a tile, behind one contract.

``executor.run(tile, depth=k)`` takes a float32 tile (N, C, z, y, x) and returns the logits
(N, K, z, y, x) of head k of the full network (``"ensemble"``: log of the heads' mean softmax),
as ``UNetPlusPlus3D.forward`` does (docs/ARCHITECTURE.md, DESIGN.md "Backends").

- ``ours``: ``UNetPlusPlus3D.forward``; on the CPU the channels-last oneDNN path of
  ``cpu_inference.py``, elsewhere the modules (with autocast on CUDA).
- ``torch``: the plain ``nn`` modules (torch eager), the reference the others are checked against.
- ``onnxruntime`` / ``openvino``: the ONNX graph of each pruned depth (``onnx_export.py``),
  cached by the weights' sha256; OpenVINO also caches its compiled blobs there. OpenVINO and
  onnx are core dependencies; ONNX Runtime is optional (``pip install unetpp[executors]``);
  :func:`available_executors` lists what is here.
- ``fastest``: ours or OpenVINO, whichever is faster for this depth and tile shape right now
  (a timed probe, :class:`FastestExecutor`; its rule and memory in ``probe.py``), probed again
  when the load changes.

Why ``fastest`` is the CPU default (docs/BENCHMARK.md, "Executors"; the bench's ``executors``
worker job, 2 threads, seconds per tile, best of interleaved rounds, 2026-11-30): neither
library nor ours wins everywhere. On the shipped models' network (8..128, 48^3) OpenVINO fp32
beat ours on a quiet machine (load ~1: L1..L4 0.032/0.055/0.087/0.122 s against ours
0.044/0.083/0.139/0.201 s), but once other processes share the cores ours wins (the bench's two
busy processes on top of load ~5: ours 0.102/0.181/0.279/0.456 s against OpenVINO
0.123/0.341/0.498/0.713 s; at load ~4.5 without them, ours too), and on the large network
(16..256, 96^3) ours won both (2.42 / 7.09 s against 4.40 / 9.11 s). ONNX Runtime and torch
eager were never faster than both. So a fixed choice loses either idle or loaded; the probe
keeps the faster, at the cost of the first tile of each depth running on both (plus, on the
first run of a model, about 0.4 s to export a depth's graph and 0.3 s to compile it). In
session 6 the two were within 4 % idle at L3 and L4; session 7 cut up to 17 % of our CPU time
at L2..L4 (row 0's 8-channel convolutions grouped, cpu_inference.py). At load 3-5 ours then led
on the liver tile at every depth (L3 0.135 against 0.167 s) but OpenVINO on the nodule's
16x48x48 tile at L1, L3 and L4 (L3 0.037 against 0.043 s); no idle machine was available.
Session 8: the probe ranks by the median of interleaved pairs' ratios and samples up to 12
pairs while that is ambiguous (the best-of-2-to-4 rule had kept ours where OpenVINO was 8 %
faster), and a cold process starts on ours without loading OpenVINO when a probe of the last
15 minutes chose ours for these weights, depth, tile shape and threads (``probe.json`` beside
the graphs), checking again after 16 tiles (docs/BENCHMARK_RUNS.md, session 8). Session 9: each
model on its own tile, ours led OpenVINO in the median round nearly everywhere (load 2-10), and
``unetpp serve`` probes between requests (:meth:`FastestExecutor.idle_probe`;
docs/BENCHMARK_MODELS.md).
Ours stays the default on CUDA and wherever OpenVINO is missing or fails, and as the reference
for tests. The environment variable ``UNETPP_EXECUTOR`` overrides the default for the CLI and
Slicer.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import UNetPlusPlusError
from . import spin_guard
from .devices import is_out_of_memory
from .network import UNetPlusPlus3D, plain_modules
from .onnx_export import cached_graph, depth_name, graph_cache_dir, weights_digest
from .probe import PRIOR_TILES, ProbeMemory, median_ratio, probe_decision

Depth = Union[int, str]
NAMES = ("ours", "torch", "onnxruntime", "openvino", "fastest")
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
DEFAULT_CPU = "fastest"
_LIBRARY_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}
_LOG = logging.getLogger(__name__)


class Executor:
    """Runs ``model`` on tiles; subclasses implement :meth:`run`."""

    name = "base"

    def __init__(self, model: UNetPlusPlus3D, threads: int = 1) -> None:
        self.model = model
        self.threads = max(1, int(threads))

    def run(self, tile: Tensor, depth: Depth) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class OursExecutor(Executor):
    """``UNetPlusPlus3D.forward``: the fast CPU path, or the modules on other devices."""

    name = "ours"

    def run(self, tile: Tensor, depth: Depth) -> Tensor:
        spin_guard.before_parallel_work()  # one thread while the cores are shared, if OpenMP spins
        return self.model(tile, depth=depth)


class TorchEagerExecutor(Executor):
    """The plain ``nn`` modules: what a user of the network without our CPU path would run."""

    name = "torch"

    def run(self, tile: Tensor, depth: Depth) -> Tensor:
        with plain_modules():
            return self.model(tile, depth=depth)


class _GraphExecutor(Executor):
    """An executor over the cached ONNX graph of each depth, compiled on first use."""

    def __init__(
        self,
        model: UNetPlusPlus3D,
        threads: int = 1,
        weights_sha256: Optional[str] = None,
        cache_dir: Optional[Path] = None,
    ) -> None:
        super().__init__(model, threads)
        digest = weights_sha256 or weights_digest(model)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else graph_cache_dir(digest)
        self._compiled: dict = {}

    def run(self, tile: Tensor, depth: Depth) -> Tensor:
        """Raises UNetPlusPlusError (one sentence, the library's message chained) when the
        library cannot export, compile or run the graph; out-of-memory errors pass unchanged
        so the Predictor's smaller-tile fallback still sees them."""
        key = "ensemble" if depth == "ensemble" else int(depth)
        try:
            if key not in self._compiled:
                self._compiled[key] = self._compile_cached(key)
            array = np.ascontiguousarray(tile.detach().cpu().numpy(), dtype=np.float32)
            return torch.from_numpy(np.asarray(self._infer(self._compiled[key], array)))
        except UNetPlusPlusError:
            raise
        except Exception as error:  # noqa: BLE001 - the library's own error types
            if is_out_of_memory(error):
                raise
            raise UNetPlusPlusError(
                f"The {self.name} executor could not run this model ({type(error).__name__}); "
                "choose the built-in CPU path, which gives the same result: "
                "set UNETPP_EXECUTOR=ours."
            ) from error

    def _compile_cached(self, key: Depth):
        """Compile the cached graph of ``key`` (exported on first use). A graph that was
        already cached but does not compile (a damaged file, or one a crash or another
        program left behind) is exported again once, so it cannot disable this executor
        for good; a second failure is raised."""
        graph = Path(self.cache_dir) / f"{depth_name(key)}.onnx"
        was_cached = graph.is_file()
        try:
            return self._compile(cached_graph(self.model, key, self.cache_dir))
        except Exception:  # noqa: BLE001 - the library's own error types, re-raised below
            if not was_cached:
                raise
        graph.unlink(missing_ok=True)
        return self._compile(cached_graph(self.model, key, self.cache_dir))

    def _compile(self, graph: Path):  # pragma: no cover - abstract
        raise NotImplementedError

    def _infer(self, compiled, array: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class OnnxRuntimeExecutor(_GraphExecutor):
    """ONNX Runtime's CPU provider, ``threads`` intra-op threads that sleep rather than spin."""

    name = "onnxruntime"

    def _compile(self, graph: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def _infer(self, compiled, array: np.ndarray) -> np.ndarray:
        return compiled.run(None, {"x": array})[0]


class OpenVinoExecutor(_GraphExecutor):
    """OpenVINO's CPU plugin in float32 (``precision="bf16"`` to try bfloat16), one stream."""

    name = "openvino"

    def __init__(self, *args, precision: str = "f32", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.precision = precision

    def _compile(self, graph: Path):
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.cache_dir / "openvino")})
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": self.precision,  # f32 unless asked: exact like ours
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        return core.compile_model(str(graph), "CPU", config).create_infer_request()

    def _infer(self, compiled, array: np.ndarray) -> np.ndarray:
        return compiled.infer({0: array})[0]


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
    cache folder): a later executor whose first tile of that depth, shape and thread count
    finds "ours" chosen less than 15 minutes ago runs ours at once, without making the library
    executor, and probes as usual after ``PRIOR_TILES`` (16) tiles. Both are timed again
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
        if memory is None and (cache_dir is not None or weights_sha256):
            folder = Path(cache_dir) if cache_dir is not None else graph_cache_dir(weights_sha256)
            memory = ProbeMemory(folder)
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

    def _other(self) -> Executor:
        if self._library is None:
            cls = _CLASSES[self.candidate]
            if issubclass(cls, _GraphExecutor):
                self._library = cls(self.model, self.threads, **self._graph_options)
            else:
                self._library = cls(self.model, self.threads)
        return self._library

    def run(self, tile: Tensor, depth: Depth) -> Tensor:
        if not self._usable or not self._lock.acquire(blocking=False):
            self.chosen = "ours"
            return self.ours.run(tile, depth)
        try:  # errors of ours (e.g. out of memory) reach the Predictor's fallbacks as they are
            return self._run(tile, depth)
        finally:
            self._lock.release()

    def _library_run(self, tile: Tensor, depth: Depth) -> Optional[Tensor]:
        """The library's logits, or None when it failed (then ours only, from now on)."""
        try:
            return self._other().run(tile, depth)
        except Exception:  # noqa: BLE001 - any library failure: ours, never an error
            self._usable = False
            _LOG.debug("the %s executor failed", self.candidate, exc_info=True)
            library = _LIBRARY_NAMES.get(self.candidate, self.candidate)
            warnings.warn(  # one sentence: the library's own message means nothing to a user
                f"{library} could not run this model, so it runs on the built-in CPU path "
                "instead (the same result, possibly slower).",
                stacklevel=3,
            )
            return None

    def decided(self, tile_shape: tuple, depth: Depth) -> bool:
        """Whether tiles of ``tile_shape`` at ``depth`` run on a chosen executor (no probe)."""
        return "pick" in self._state.get((str(depth), tuple(tile_shape)), {})

    def forget(self) -> None:
        """Drop every choice, remembered ones too: the next tile of each depth and shape probes
        again."""
        self._state.clear()
        self._recall = False

    def _memory_key(self, tile: Tensor, depth: Depth) -> str:
        shape = "x".join(str(n) for n in tile.shape)
        return f"{self.candidate}:L{depth}:{shape}:t{self.threads}"

    def _run(self, tile: Tensor, depth: Depth) -> Tensor:
        state = self._state.setdefault((str(depth), tuple(tile.shape)), {"times": {}})
        if "pick" not in state and not state.get("warm"):
            if self.busy():  # the caller says: ours only, no compile, no probe
                state.update(pick="ours", reference=float("inf"), since=0, slow=0)
                self.chosen = "ours"
                return self.ours.run(tile, depth)
            if self._recalls_ours(state, tile, depth):
                # the last probe here chose ours, recently: ours without importing or compiling
                # the library, then a normal probe after PRIOR_TILES tiles
                since = max(0, self.reprobe_every - PRIOR_TILES)
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

    def _recalls_ours(self, state: dict, tile: Tensor, depth: Depth) -> bool:
        """Whether the memory says ours for this depth, tile shape and threads (asked once per
        state, and never after :meth:`forget`)."""
        if self.memory is None or not self._recall or state.get("recalled"):
            return False
        state["recalled"] = True
        return self.memory.recall(self._memory_key(tile, depth)) == "ours"


_CLASSES = {
    "ours": OursExecutor,
    "torch": TorchEagerExecutor,
    "onnxruntime": OnnxRuntimeExecutor,
    "openvino": OpenVinoExecutor,
    "fastest": FastestExecutor,
}


def available_executors() -> list[str]:
    """The executors whose libraries are installed here, in :data:`NAMES` order."""
    return [
        name for name in NAMES if name not in _MODULES or importlib.util.find_spec(_MODULES[name])
    ]


def default_executor(device: Union[str, torch.device] = "cpu") -> str:
    """The executor used when none is asked for: ``$UNETPP_EXECUTOR`` if set and usable on the
    CPU; else ``fastest`` on the CPU when OpenVINO is installed, ``ours`` otherwise and on every
    other device (see the module docstring for the measurements behind it)."""
    if torch.device(device).type != "cpu":
        return "ours"
    wanted = os.environ.get("UNETPP_EXECUTOR", "").strip().lower()
    available = available_executors()
    if wanted and wanted in available:
        return wanted
    default = DEFAULT_CPU if "openvino" in available else "ours"
    if wanted:  # a typo or a missing library must not pass for the executor that was asked for
        warnings.warn(
            f"UNETPP_EXECUTOR={wanted!r} is not an executor usable here "
            f"(usable: {', '.join(available)}); running on {default}.",
            stacklevel=2,
        )
    return default


def make_executor(
    name: str,
    model: UNetPlusPlus3D,
    device: Union[str, torch.device] = "cpu",
    threads: int = 1,
    weights_sha256: Optional[str] = None,
    cache_dir: Optional[Path] = None,
    **options,
) -> Executor:
    """An executor by name (``"auto"``: :func:`default_executor`).

    Raises UNetPlusPlusError for an unknown name, a library that is not installed, or an ONNX
    (or ``fastest``) executor asked for on a device other than the CPU.
    """
    name = default_executor(device) if name in (None, "", "auto") else str(name).lower()
    if name == "openvino-bf16":  # measured in bench/run and docs/BENCHMARK.md; never a default
        name, options = "openvino", {**options, "precision": "bf16"}
    if name not in _CLASSES:
        raise UNetPlusPlusError(f"Unknown executor {name!r}; choose one of: {', '.join(NAMES)}.")
    if name not in available_executors():
        raise UNetPlusPlusError(
            f"The {name} executor needs the '{_MODULES[name]}' package: "
            f"pip install {_MODULES[name]} (or choose another executor)."
        )
    on_cpu_only = name in _MODULES or name == "fastest"
    if on_cpu_only and torch.device(device).type != "cpu":
        raise UNetPlusPlusError(f"The {name} executor runs on the CPU only, not on {device}.")
    if on_cpu_only:
        return _CLASSES[name](
            model, threads, weights_sha256=weights_sha256, cache_dir=cache_dir, **options
        )
    return _CLASSES[name](model, threads)

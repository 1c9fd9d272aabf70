"""The executors that each run the network one way: ours, torch eager, ONNX Runtime, OpenVINO.

Each implements the contract of :mod:`.executors` (``run(tile, depth=k)``: a float32 tile
(N, C, z, y, x) in, head k's logits (N, K, z, y, x) out). ``ours`` and ``torch`` run the
network's modules; the two libraries run the cached ONNX graph of each pruned depth
(:class:`GraphExecutor`, ``onnx_export.py``). :func:`available_executors` says which are
installed. The ``fastest`` probe between ours and OpenVINO is in ``fastest.py``; choosing and
making an executor by name (``make_executor``, ``default_executor``) in ``executors.py``.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import UNetPlusPlusError
from . import spin_guard
from .devices import is_out_of_memory
from .graph_cache import cache_write_problem, graph_folder_in_use
from .network import UNetPlusPlus3D, plain_modules
from .onnx_export import cached_graph, depth_name, weights_digest

Depth = Union[int, str]
#: every executor name, ``fastest`` (``fastest.py``) included, in the order they are listed
NAMES = ("ours", "torch", "onnxruntime", "openvino", "fastest")
#: the executors that need a library, and the module that must be importable for each
LIBRARY_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
#: how messages name each library
LIBRARY_NAMES = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}


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


class GraphExecutor(Executor):
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
        self.weights_sha256 = digest  #: the weights the graphs' records must name
        # the user cache: marked as used, other torch versions' stale graphs pruned (graph_cache)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else graph_folder_in_use(digest)
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
            cache = cache_write_problem(error, self.cache_dir)
            if cache:  # name the folder, not "FileNotFoundError" (tester 20)
                raise UNetPlusPlusError(
                    f"The {self.name} executor could not run this model: {cache}. Point "
                    "UNETPP_HOME at a writable folder (or unset it), or choose the built-in CPU "
                    "path, which gives the same result: set UNETPP_EXECUTOR=ours."
                ) from error
            raise UNetPlusPlusError(
                f"The {self.name} executor could not run this model ({type(error).__name__}); "
                "choose the built-in CPU path, which gives the same result: "
                "set UNETPP_EXECUTOR=ours."
            ) from error

    def _compile_cached(self, key: Depth):
        """Compile the cached graph of ``key``, exported on first use or when it does not match
        its record (``onnx_export.cached_graph``: never a graph of another depth or weights).
        A graph that matches but does not compile (a library's own failure) is exported again
        once, so it cannot disable this executor for good; a second failure is raised."""
        graph = Path(self.cache_dir) / f"{depth_name(key)}.onnx"
        was_cached = graph.is_file()
        try:
            return self._compile(
                *cached_graph(self.model, key, self.cache_dir, self.weights_sha256)
            )
        except Exception:  # noqa: BLE001 - the library's own error types, re-raised below
            if not was_cached:
                raise
        graph.unlink(missing_ok=True)
        return self._compile(*cached_graph(self.model, key, self.cache_dir, self.weights_sha256))

    def _compile(self, graph: Path, sha256: str):  # pragma: no cover - abstract
        """Compile ``graph``, whose verified file digest is ``sha256`` (hex)."""
        raise NotImplementedError

    def _infer(self, compiled, array: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


class OnnxRuntimeExecutor(GraphExecutor):
    """ONNX Runtime's CPU provider, ``threads`` intra-op threads that sleep rather than spin."""

    name = "onnxruntime"

    def _compile(self, graph: Path, sha256: str):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def _infer(self, compiled, array: np.ndarray) -> np.ndarray:
        return compiled.run(None, {"x": array})[0]


class OpenVinoExecutor(GraphExecutor):
    """OpenVINO's CPU plugin in float32 (``precision="bf16"`` to try bfloat16), one stream."""

    name = "openvino"

    def __init__(self, *args, precision: str = "f32", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.precision = precision

    def _compile(self, graph: Path, sha256: str):
        """Compiled blobs go to ``openvino/<sha256[:16]>/``: OpenVINO keys them by the file's
        path and checks only its size and modification time, so a folder per graph content
        ties each blob to the graph it was compiled from (``graph_record``)."""
        import openvino as ov

        core = ov.Core()
        core.set_property({"CACHE_DIR": str(self.cache_dir / "openvino" / sha256[:16])})
        config = {
            "INFERENCE_NUM_THREADS": self.threads,
            "INFERENCE_PRECISION_HINT": self.precision,  # f32 unless asked: exact like ours
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": 1,
        }
        return core.compile_model(str(graph), "CPU", config).create_infer_request()

    def _infer(self, compiled, array: np.ndarray) -> np.ndarray:
        return compiled.infer({0: array})[0]


#: the executors of this module by name (every name of :data:`NAMES` but ``fastest``)
BACKENDS: dict[str, type[Executor]] = {
    "ours": OursExecutor,
    "torch": TorchEagerExecutor,
    "onnxruntime": OnnxRuntimeExecutor,
    "openvino": OpenVinoExecutor,
}


@functools.cache
def library_version(name: str) -> str:
    """The installed version of executor ``name``'s library (``"2026.4.1"`` for openvino), from
    its package metadata, without importing it; "" for an executor without a library or where
    the version cannot be read."""
    module = LIBRARY_MODULES.get(name)
    if not module:
        return ""
    try:
        return importlib.metadata.version(module)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return ""


def available_executors() -> list[str]:
    """The executors whose libraries are installed here, in :data:`NAMES` order."""
    needs = LIBRARY_MODULES
    return [name for name in NAMES if name not in needs or importlib.util.find_spec(needs[name])]

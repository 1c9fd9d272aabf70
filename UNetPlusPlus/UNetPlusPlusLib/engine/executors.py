"""Executors: the ways to run the (pruned) network on a tile, behind one contract.

``executor.run(tile, depth=k)`` takes a float32 tile (N, C, z, y, x) and returns the logits
(N, K, z, y, x) of head k of the full network (``"ensemble"``: log of the heads' mean softmax),
as ``UNetPlusPlus3D.forward`` does (docs/ARCHITECTURE.md, DESIGN.md "Backends").

- ``ours``: ``UNetPlusPlus3D.forward``; on the CPU the channels-last oneDNN path of
  ``cpu_inference.py``, elsewhere the modules (with autocast on CUDA).
- ``torch``: the plain ``nn`` modules (torch eager), the reference the others are checked against.
- ``onnxruntime`` / ``openvino``: the ONNX graph of each pruned depth (``onnx_export.py``),
  cached by the weights' sha256; OpenVINO also caches its compiled blobs there. Both are
  optional (``pip install unetpp[executors]``); :func:`available_executors` lists what is here.

The default on the CPU is ``ours``: it was the fastest in bench/run, idle and under load, once
OpenMP no longer busy-waits (``runtime_env.py``; docs/BENCHMARK.md, "Executors"). The
environment variable ``UNETPP_EXECUTOR`` overrides the default for the CLI and Slicer.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch import Tensor

from ..errors import UNetPlusPlusError
from .network import UNetPlusPlus3D, plain_modules
from .onnx_export import cached_graph, graph_cache_dir, weights_digest

Depth = Union[int, str]
NAMES = ("ours", "torch", "onnxruntime", "openvino")
_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
DEFAULT_CPU = "ours"


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
        key = "ensemble" if depth == "ensemble" else int(depth)
        if key not in self._compiled:
            self._compiled[key] = self._compile(cached_graph(self.model, key, self.cache_dir))
        array = np.ascontiguousarray(tile.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(np.asarray(self._infer(self._compiled[key], array)))

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


_CLASSES = {
    "ours": OursExecutor,
    "torch": TorchEagerExecutor,
    "onnxruntime": OnnxRuntimeExecutor,
    "openvino": OpenVinoExecutor,
}


def available_executors() -> list[str]:
    """The executors whose libraries are installed here, in :data:`NAMES` order."""
    return [
        name for name in NAMES if name not in _MODULES or importlib.util.find_spec(_MODULES[name])
    ]


def default_executor(device: Union[str, torch.device] = "cpu") -> str:
    """The executor used when none is asked for: ``$UNETPP_EXECUTOR`` if set and usable,
    else the measured default for the device (``ours`` everywhere, see the module docstring)."""
    wanted = os.environ.get("UNETPP_EXECUTOR", "").strip().lower()
    if wanted and torch.device(device).type == "cpu" and wanted in available_executors():
        return wanted
    return DEFAULT_CPU


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
    executor asked for on a device other than the CPU.
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
    if name in _MODULES and torch.device(device).type != "cpu":
        raise UNetPlusPlusError(f"The {name} executor runs on the CPU only, not on {device}.")
    if name in _MODULES:
        return _CLASSES[name](
            model, threads, weights_sha256=weights_sha256, cache_dir=cache_dir, **options
        )
    return _CLASSES[name](model, threads)

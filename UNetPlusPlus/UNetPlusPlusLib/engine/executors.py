"""Executors: the ways to run the (pruned) network on a tile, behind one contract; by name.

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

The first four are in ``executor_backends.py``, ``fastest`` in ``fastest.py``; this module
chooses one (:func:`default_executor`), makes it by name (:func:`make_executor`) and re-exports
the classes and :func:`available_executors`, so ``executors.FastestExecutor`` and the others
are imported from here as before.

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

import os
import warnings
from pathlib import Path
from typing import Optional, Union

import torch

from ..errors import UNetPlusPlusError
from .executor_backends import (
    BACKENDS,
    LIBRARY_MODULES,
    NAMES,
    Depth,
    Executor,
    OnnxRuntimeExecutor,
    OpenVinoExecutor,
    OursExecutor,
    TorchEagerExecutor,
    available_executors,
)
from .fastest import FastestExecutor, never_busy
from .network import UNetPlusPlus3D

__all__ = [  # the classes are re-exported: imported from here as before the split
    "DEFAULT_CPU",
    "NAMES",
    "Depth",
    "Executor",
    "FastestExecutor",
    "OnnxRuntimeExecutor",
    "OpenVinoExecutor",
    "OursExecutor",
    "TorchEagerExecutor",
    "available_executors",
    "default_executor",
    "make_executor",
    "never_busy",
]

DEFAULT_CPU = "fastest"
_CLASSES: dict[str, type[Executor]] = {**BACKENDS, "fastest": FastestExecutor}


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
            f"The {name} executor needs the '{LIBRARY_MODULES[name]}' package: "
            f"pip install {LIBRARY_MODULES[name]} (or choose another executor)."
        )
    on_cpu_only = name in LIBRARY_MODULES or name == "fastest"
    if on_cpu_only and torch.device(device).type != "cpu":
        raise UNetPlusPlusError(f"The {name} executor runs on the CPU only, not on {device}.")
    if on_cpu_only:
        return _CLASSES[name](
            model, threads, weights_sha256=weights_sha256, cache_dir=cache_dir, **options
        )
    return _CLASSES[name](model, threads)

"""A model's OpenVINO graphs and probe, prepared before its first segmentation.

The CPU default executor ``fastest`` (fastest.py) makes OpenVINO's graph of a depth on first
use: it exports the ONNX graph (onnx_export.py), compiles it and runs the probe against ours
(probe.py). On the demo CT the first ``unetpp segment --task liver`` after an install paid
that inside the run (docs/BENCHMARK_E2E.md, "Session 20"). :func:`prepare_model` pays it once,
where no clinician waits for a result: ``unetpp models prepare`` (``make demo`` runs it for the
liver model), ``unetpp models install`` after installing, ``unetpp train`` at its end, and
the Slicer module in a low-priority background process (adapter/background_prepare.py); never
at import, never inside a segmentation. For the model's weights it:

1. removes temporary files a killed export or probe left in the graph folder
   (``.export-*``, ``.probe-*``, ``.stamp-*``, older than :data:`STALE_TEMPORARY_S`), and
   the stamp of an earlier preparation (``prepare_stamp.py``);
2. for every depth of the model: exports the graph unless cached, compiles it (OpenVINO writes
   its compiled blob into ``openvino/<sha>/`` beside it, its ``CACHE_DIR``: a run then loads that
   blob, 0.09-0.42 s against 0.30-1.28 s for the liver model's L3 in session 20) and checks its
   logits on one tile against ours (:func:`graph_agrees`). A graph that does not compile or
   disagrees (a damaged file, a graph another program or other weights left there) is exported
   again, as is one that does not match its record (``graph_record.py``: checked on every
   load, by segmentations too); one that still disagrees is deleted and reported (the run
   exports it anew and its probe decides); one that cannot be exported or compiled at all (a
   cache folder that cannot be written) ends the preparation with one UNetPlusPlusError;
3. probes ours against OpenVINO at the recommended depth on the tiles a segmentation runs
   ((tile batch, C, z, y, x), the same thread count), so ``probe.json`` holds the choice: a
   first run at about this load on this machine starts on a chosen "ours" without loading
   OpenVINO (``ProbeMemory.trusted_ours``), as every later run does;
4. writes the stamp ``prepared.json`` (``prepare_stamp.write_stamp``: weights sha256, torch,
   OpenVINO, threads, the graphs), by which ``unetpp models prepare`` and the Slicer module
   tell a prepared model in milliseconds without importing torch. A killed preparation leaves
   no stamp: every file it writes is a temporary file renamed when complete.

Two processes may prepare (or a segmentation export) the same graphs at once: each writes its
own temporary file and renames it over the graph, so a reader always finds a whole graph
(Testing/test_prepare_background.py runs two preparing processes on one cache).

The graph folder stays keyed as before: weights sha256 and export key (format, opset, torch;
``onnx_export.graph_cache_dir``); the probe's choices by OpenVINO's version, depth, tile shape
and threads (``FastestExecutor._memory_key``); OpenVINO keeps and checks its blobs itself and
compiles again over a damaged one (Testing/test_graph_prepare.py), in a folder per graph
content (``openvino/<graph sha256[:16]>/``, ``graph_record.py``).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch
from torch import Tensor

from .cpu_cores import default_thread_count
from .executor_backends import OpenVinoExecutor, OursExecutor
from .graph_cache import graph_folder_in_use
from .graph_record import GraphRebuiltWarning
from .onnx_export import Depth, depth_name
from .prepare_stamp import STAMP_FILE, stamp_folder, write_stamp
from .tile_run import auto_tile_batch

if TYPE_CHECKING:
    from .manifest import ModelManifest
    from .predictor import Predictor

#: temporary files of a killed export or probe older than this (s) are removed
STALE_TEMPORARY_S = 3600.0
_TEMPORARY_PREFIXES = (".export-", ".probe-", ".stamp-")
#: the largest |OpenVINO - ours| logit difference accepted, relative to max(1, max |ours|):
#: fp32 OpenVINO and ours differ by ~1e-5 of it on the shipped models; another network's
#: weights by the order of 1
AGREEMENT = 1e-3


@dataclass
class Prepared:
    """What :func:`prepare_model` did for one model (depth names ``"L1"`` ...)."""

    folder: Optional[Path] = None  #: the graph folder of the weights
    exported: list[str] = field(default_factory=list)  #: graphs exported now
    kept: list[str] = field(default_factory=list)  #: graphs found cached and checked
    rebuilt: list[str] = field(default_factory=list)  #: cached graphs found bad and exported
    failed: list[str] = field(default_factory=list)  #: graphs that still disagreed (deleted)
    removed_temporaries: int = 0
    probe_depth: Optional[Depth] = None
    pick: Optional[str] = None  #: "ours" or "openvino" at ``probe_depth``; None: not probed
    skipped: str = ""  #: why nothing was prepared ("" when it was)
    seconds: float = 0.0


def remove_stale_temporaries(folder: Path, now: Optional[float] = None) -> int:
    """Delete ``.export-*`` / ``.probe-*`` files in ``folder`` older than
    :data:`STALE_TEMPORARY_S` (a live export's are younger); returns how many. Never raises."""
    now = time.time() if now is None else now
    removed = 0
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return 0
    for path in entries:
        if not path.name.startswith(_TEMPORARY_PREFIXES):
            continue
        try:
            if path.is_file() and not path.is_symlink():
                if now - path.stat().st_mtime > STALE_TEMPORARY_S:
                    path.unlink()
                    removed += 1
        except OSError:
            continue
    return removed


def probe_tile(manifest: ModelManifest, seed: int = 0) -> Tensor:
    """The tile a CPU segmentation runs: (tile batch, C, z, y, x) float32, standard normal
    values (the network's input is normalised), from ``seed``."""
    batch = auto_tile_batch("cpu", manifest.tile_size_zyx)
    shape = (batch, manifest.in_channels, *manifest.tile_size_zyx)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def graph_agrees(logits: Tensor, reference: Tensor) -> bool:
    """Whether a library's ``logits`` (N, K, z, y, x) are ours (``reference``, same shape)
    within :data:`AGREEMENT`."""
    if tuple(logits.shape) != tuple(reference.shape) or not torch.isfinite(logits).all():
        return False
    scale = max(1.0, float(reference.abs().max()))
    return float((logits.float() - reference.float()).abs().max()) <= AGREEMENT * scale


def prepare_model(
    manifest: ModelManifest, threads: Optional[int] = None, probe: bool = True
) -> Prepared:
    """Export, compile and check the OpenVINO graph of every depth of ``manifest`` (a
    ModelManifest) and probe its recommended depth (see the module docstring), for CPU runs
    of ``threads`` (None: the segmentation's default). Nothing to do (``skipped`` says why)
    where segmentations do not run OpenVINO: another device by default, OpenVINO missing, or
    ``UNETPP_EXECUTOR`` naming another executor. Raises UNetPlusPlusError for weights that do
    not load, and for a graph that cannot be exported or compiled (step 2)."""
    from .devices import resolve_device
    from .executors import default_executor
    from .predictor import Predictor

    started = time.perf_counter()
    device = resolve_device("auto")
    if device.type != "cpu":
        report = Prepared(skipped=f"segmentations run on {device.type}, not with OpenVINO")
        threads = default_thread_count() if threads is None else threads
        _stamp(stamp_folder(manifest.sha256), manifest.sha256, threads, report)
        return report
    name = default_executor("cpu")
    if name not in ("fastest", "openvino"):
        return Prepared(skipped=f"segmentations run on the {name} executor, not OpenVINO")
    predictor = Predictor(manifest, device="cpu", threads=threads)
    report = prepare_predictor(predictor, probe=probe)
    report.seconds = time.perf_counter() - started
    _stamp(report.folder, manifest.sha256, predictor.executor.threads, report)
    return report


def _stamp(folder: Path, sha256: str, threads: int, report: Prepared) -> None:
    """Step 4: the stamp of a finished preparation (an unwritable one is left out: the next
    ``models prepare`` checks every graph again)."""
    done = [*report.kept, *report.exported, *report.rebuilt]
    graphs = [f"{name}.onnx" for name in done if (Path(folder) / f"{name}.onnx").is_file()]
    try:
        write_stamp(folder, sha256, threads, graphs, report.skipped, report.pick, report.seconds)
    except OSError:
        pass


def prepare_predictor(predictor: Predictor, probe: bool = True) -> Prepared:
    """:func:`prepare_model` on a loaded CPU Predictor (its model, threads and executor)."""
    manifest, model = predictor.manifest, predictor.model
    threads = predictor.executor.threads
    folder = graph_folder_in_use(manifest.sha256)
    try:
        (folder / STAMP_FILE).unlink(missing_ok=True)  # until this preparation has finished
    except OSError:
        pass
    report = Prepared(folder=folder, removed_temporaries=remove_stale_temporaries(folder))
    tile = probe_tile(manifest)
    with torch.inference_mode():
        for depth in manifest.depths:
            reference = OursExecutor(model, threads).run(tile, depth)
            _prepare_depth(model, threads, manifest.sha256, folder, depth, tile, reference, report)
        if probe and hasattr(predictor.executor, "idle_probe"):
            report.probe_depth = manifest.recommended_depth
            report.pick = _probe(predictor, tile, report.probe_depth)
    return report


def _prepare_depth(model, threads, sha256, folder, depth, tile, reference, report) -> None:
    """Steps 2 of the module docstring for one depth; records the outcome in ``report``."""
    graph = Path(folder) / f"{depth_name(depth)}.onnx"
    cached = graph.is_file()
    before = _identity(graph)
    if _runs_and_agrees(model, threads, sha256, folder, depth, tile, reference):
        if not cached:
            report.exported.append(depth_name(depth))
        elif _identity(graph) != before:  # it did not compile: GraphExecutor exported it again
            report.rebuilt.append(depth_name(depth))
        else:
            report.kept.append(depth_name(depth))
        return
    graph.unlink(missing_ok=True)  # compiled but wrong (other weights' graph): export again
    if _runs_and_agrees(model, threads, sha256, folder, depth, tile, reference):
        (report.rebuilt if cached else report.exported).append(depth_name(depth))
        return
    graph.unlink(missing_ok=True)
    report.failed.append(depth_name(depth))
    warnings.warn(
        f"OpenVINO's graph of depth {depth_name(depth)} does not give the built-in path's "
        "result; segmentations choose between the two on their own.",
        stacklevel=3,
    )


def _runs_and_agrees(model, threads, sha256, folder, depth, tile, reference) -> bool:
    """Export (if missing), compile and run the graph of ``depth`` in a fresh executor; whether
    it gives ``reference``. Raises UNetPlusPlusError when it cannot be exported, compiled or
    run (a graph cache that cannot be written; a damaged cached graph is exported again by
    ``GraphExecutor`` first)."""
    from ..errors import UNetPlusPlusError

    executor = OpenVinoExecutor(model, threads, weights_sha256=sha256, cache_dir=folder)
    try:
        with warnings.catch_warnings():  # a graph failing its record: reported as rebuilt
            warnings.simplefilter("ignore", GraphRebuiltWarning)
            return graph_agrees(executor.run(tile, depth), reference)
    except UNetPlusPlusError as error:
        cause = error.__cause__ or error
        raise UNetPlusPlusError(
            f"OpenVINO's graph of depth {depth_name(depth)} could not be exported or compiled "
            f"in {folder} ({type(cause).__name__}: {str(cause).splitlines()[0][:200]}); "
            "segmentations run on the built-in CPU path meanwhile."
        ) from error


def _identity(path: Path) -> Optional[tuple]:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _probe(predictor, tile: Tensor, depth: Depth) -> Optional[str]:
    """Run the fastest executor's probe at ``depth`` on ``tile`` until it decides (it records
    the choice in ``probe.json``); returns the choice. A choice of ours it trusts already
    (``ProbeMemory.trusted_ours``) is taken as it is."""
    executor = predictor.executor
    executor.run(tile, depth)  # recalls a trusted choice, or starts this depth and shape
    predictor.idle_probe(lambda: False)  # the library made and warmed, then timed pairs
    return executor.picked(tuple(tile.shape), depth)

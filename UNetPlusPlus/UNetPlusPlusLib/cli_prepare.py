"""`unetpp models prepare [NAME ...]`, and the same step after `unetpp models install`: each
model's OpenVINO graphs exported, compiled and checked, and the executor probe run, so the first
segmentation does not pay them (engine/graph_prepare.py)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from .cli_args import thread_count
from .errors import UNetPlusPlusError

if TYPE_CHECKING:
    from .engine.graph_prepare import Prepared
    from .engine.manifest import ModelManifest


#: the probe's pick as a user reads it ("ours" is the built-in CPU path)
EXECUTOR_WORDS = {"ours": "the built-in CPU path", "openvino": "OpenVINO"}


def describe(name: str, report: Prepared) -> str:
    """One line for a model's :class:`engine.graph_prepare.Prepared`."""
    if report.skipped:
        return f"{name}: nothing to prepare ({report.skipped})"
    parts = []
    for what, depths in (
        ("exported", report.exported),
        ("cached and checked", report.kept),
        # damaged, another depth's or weights' graph, or one an older version left without
        # its record (engine/graph_record.py)
        ("exported again (damaged, foreign or unrecorded)", report.rebuilt),
        ("disagreed with the built-in path, deleted", report.failed),
    ):
        if depths:
            parts.append(f"{what} {', '.join(depths)}")
    if report.pick:
        runner = EXECUTOR_WORDS.get(report.pick, report.pick)
        parts.append(f"L{report.probe_depth} runs on {runner} at this load")
    return f"{name}: graphs {'; '.join(parts)} ({report.seconds:.1f} s)"


def run_prepare(names: list[str], threads: Optional[int] = None, force: bool = False) -> dict:
    """`models prepare [NAME ...]` (default: every model `models list` shows): one line per
    model. A model whose stamp says it is prepared for these versions and ``threads``
    (``engine/prepare_stamp.py``) is not prepared again unless ``force``; when every model is,
    torch is never imported. Raises UNetPlusPlusError for an unknown name or no model found
    (before any work), and naming the models not prepared (weights that do not load, a graph
    that cannot be exported or compiled), after the lines."""
    from .engine import registry
    from .engine.cpu_cores import default_thread_count
    from .engine.prepare_stamp import is_prepared

    found = [registry.find_model(name) for name in names] or registry.listed_models()
    # one package once: `prepare liver liver` (or `liver liver-ct`) did the work twice
    unique: dict = {}
    for manifest in found:
        unique.setdefault(Path(manifest.path).resolve(), manifest)
    manifests = list(unique.values())
    failed = []
    for manifest in manifests:
        if not force and is_prepared(manifest.sha256, threads or default_thread_count()):
            print(f"{manifest.name}: already prepared (--force prepares it again)", flush=True)
            continue
        from .engine.graph_prepare import prepare_model

        try:
            report = prepare_model(manifest, threads=threads)
        except UNetPlusPlusError as error:
            print(f"{manifest.name}: not prepared: {error}", flush=True)
            failed.append(manifest.name)
            continue
        print(describe(manifest.name, report), flush=True)
    if failed:
        raise UNetPlusPlusError(
            f"{len(failed)} of {len(manifests)} model(s) not prepared: {', '.join(failed)}."
        )
    return {"prepared": [m.name for m in manifests if m.name not in failed]}


def prepare_after_install(manifest: ModelManifest) -> None:
    """Prepare a just-installed model (already prepared, as a reinstall of the same weights
    is: nothing); a failure is a warning (the model is installed; its segmentations prepare
    the graphs themselves, or run on the built-in CPU path where the graph cache cannot be
    written), never an error."""
    from .engine.prepare_stamp import is_prepared

    if is_prepared(manifest.sha256):
        print(f"{manifest.name}: already prepared", flush=True)
        return
    from .engine.graph_prepare import prepare_model

    print(f"preparing {manifest.name} for its first segmentation (once) ...", flush=True)
    try:
        report = prepare_model(manifest)
    except Exception as error:  # noqa: BLE001 - the install itself succeeded
        if isinstance(error, UNetPlusPlusError):  # it says what segmentations do meanwhile
            detail = str(error)
        else:
            detail = f"{type(error).__name__}: {error}. Its first segmentation prepares them."
        warnings.warn(
            f"{manifest.name} is installed, but its graphs could not be prepared: {detail}",
            UserWarning,
            stacklevel=2,
        )
        return
    print(describe(manifest.name, report), flush=True)


def prepare_trained(model_dir) -> Optional[float]:
    """`unetpp train`'s last step (unless ``--no-prepare``): prepare the model package it wrote
    in ``model_dir``, in this process, as :func:`prepare_after_install` does (a failure is a
    warning). The graph cache is keyed by the weights' sha256, so the installed copy finds
    them. Returns the seconds it took, or None when there was nothing to prepare (OpenVINO
    not in use, or prepared already)."""
    import time

    from .engine.manifest import ModelManifest
    from .engine.prepare_stamp import needs_preparing

    manifest = ModelManifest.load(model_dir)
    if not needs_preparing(manifest.sha256):
        return None
    started = time.perf_counter()
    prepare_after_install(manifest)
    return time.perf_counter() - started


def add_prepare_parser(inner) -> None:
    """The `models prepare` sub-command (``inner``: the `models` sub-parsers)."""
    prepare = inner.add_parser(
        "prepare",
        help="export, compile and check the OpenVINO graph of every depth and probe it against "
        "the built-in CPU path, so the first segmentation does not (install does it too)",
    )
    prepare.add_argument("names", nargs="*", help="task, model name or path (default: all)")
    prepare.add_argument(
        "--threads", type=thread_count, help="CPU threads (default: physical cores)"
    )
    prepare.add_argument(
        "--force",
        action="store_true",
        help="prepare again a model whose stamp says it is prepared for this torch, OpenVINO "
        "and thread count (default: such a model is skipped at once)",
    )

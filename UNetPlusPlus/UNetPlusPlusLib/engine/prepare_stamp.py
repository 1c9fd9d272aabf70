"""Whether a model's graphs are prepared, told cheaply: a stamp in its graph folder.

``graph_prepare.prepare_model`` writes ``prepared.json`` into the graph folder of the weights
(``<cache>/graphs/<sha256>/<export key>/``) once it has prepared them, atomically (a temporary
``.stamp-*`` file renamed). The stamp holds its key: the weights' sha256, the export key
(export format, opset, torch version), torch's and OpenVINO's versions (their installed
distributions' metadata) and the thread count of the runs it prepared for; and the graph files
it left. :func:`is_prepared` reads it without importing torch or OpenVINO (a few file reads,
milliseconds), so ``unetpp models prepare`` on a prepared model returns at once and the Slicer
module, which never imports torch, can tell which models to prepare in the background.

A stamp whose key differs (another torch or OpenVINO, another thread count), or one of whose
graph files has gone or no longer matches its record (``graph_record.verified_sha256``: a
copied-over or damaged graph; hashing the liver model's four graphs takes ~10 ms) counts as
not prepared. A killed preparation writes no stamp.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence

from .cpu_cores import default_thread_count
from .graph_key import export_key
from .graph_record import verified_sha256

STAMP_FILE = "prepared.json"
STAMP_FORMAT = 1
STAMP_MAX_BYTES = 1 << 16  # a larger file is not read (a stamp is ~400 bytes)
#: executors whose segmentations use OpenVINO's graphs (engine/executors.py)
OPENVINO_EXECUTORS = ("fastest", "openvino")


def package_version(name: str) -> Optional[str]:
    """The installed distribution's version (``"2.13.0+cpu"``), or None when it is missing."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def stamp_key(sha256: str, threads: int) -> dict:
    """What a stamp must match: format, weights, export key, torch, OpenVINO, threads."""
    torch_version = package_version("torch") or "none"
    return {
        "format": STAMP_FORMAT,
        "sha256": sha256,
        "export_key": export_key(torch_version),
        "torch": torch_version,
        "openvino": package_version("openvino") or "none",
        "threads": int(threads),
    }


def stamp_folder(sha256: str) -> Path:
    """The graph folder of ``sha256`` for the installed torch (``onnx_export.graph_cache_dir``,
    from the distribution's metadata). Raises UNetPlusPlusError for a ``$UNETPP_HOME`` that
    is a file."""
    from .model_search import graphs_dir

    return graphs_dir() / sha256 / export_key(package_version("torch") or "none")


def read_stamp(folder: Path) -> dict:
    """The stamp's JSON object in ``folder``, or {} when it is missing, damaged or too large."""
    try:
        with open(Path(folder) / STAMP_FILE, "rb") as stream:
            raw = stream.read(STAMP_MAX_BYTES + 1)
        if len(raw) > STAMP_MAX_BYTES:
            return {}
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def is_prepared(sha256: str, threads: Optional[int] = None, folder: Optional[Path] = None) -> bool:
    """Whether the graphs of the weights ``sha256`` are prepared for runs of ``threads`` (None:
    the default, ``cpu_cores.default_thread_count``): a stamp with this key whose graph files
    are all there and match their records. Never raises (an unusable cache is "not prepared")."""
    threads = default_thread_count() if threads is None else threads
    try:
        folder = stamp_folder(sha256) if folder is None else Path(folder)
    except Exception:  # noqa: BLE001 - a $UNETPP_HOME that is a file: prepare says why
        return False
    stamp = read_stamp(folder)
    key = stamp_key(sha256, threads)
    if any(stamp.get(name) != value for name, value in key.items()):
        return False
    graphs = stamp.get("graphs")
    if not isinstance(graphs, list) or not all(isinstance(name, str) for name in graphs):
        return False
    return all(_graph_verified(folder, name, sha256, key["export_key"]) for name in graphs)


def _graph_verified(folder: Path, name: str, sha256: str, key: str) -> bool:
    """Whether the stamp's graph ``name`` (``"L3.onnx"``) in ``folder`` matches its record."""
    stem = name[: -len(".onnx")] if name.endswith(".onnx") else ""
    if "/" in name or "\\" in name or not (stem == "ensemble" or stem[1:].isdigit()):
        return False
    depth_value = stem if stem == "ensemble" else int(stem[1:])
    return verified_sha256(folder / name, depth_value, sha256, key) is not None


def write_stamp(
    folder: Path,
    sha256: str,
    threads: int,
    graphs: Sequence[str],
    skipped: str = "",
    pick: Optional[str] = None,
    seconds: float = 0.0,
) -> Path:
    """Write ``folder``/prepared.json (created with ``folder``) atomically; ``graphs``: the
    graph file names prepared (``"L1.onnx"``); ``skipped``: why nothing was prepared. Raises
    OSError when it cannot be written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = stamp_key(sha256, threads)
    stamp.update(
        graphs=list(graphs), skipped=skipped, pick=pick, seconds=round(float(seconds), 3),
        written=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )  # fmt: skip
    handle, temporary = tempfile.mkstemp(prefix=".stamp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(stamp, stream, indent=1)
        os.replace(temporary, folder / STAMP_FILE)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return folder / STAMP_FILE


def remove_stamp(sha256: str) -> None:
    """Delete the stamp of ``sha256`` (``models prepare --force`` before it prepares again)."""
    try:
        (stamp_folder(sha256) / STAMP_FILE).unlink(missing_ok=True)
    except Exception:  # noqa: BLE001 - best effort
        pass


def needs_preparing(
    sha256: str, threads: Optional[int] = None, env: Optional[Mapping[str, str]] = None
) -> bool:
    """Whether preparing the weights ``sha256`` would do anything, told without torch: False
    when OpenVINO is not installed, when ``UNETPP_EXECUTOR`` of ``env`` (default
    ``os.environ``) names an executor other than fastest or openvino, or when
    :func:`is_prepared`. ``threads`` None: ``env``'s default thread count."""
    env = os.environ if env is None else env
    wanted = env.get("UNETPP_EXECUTOR", "").strip().lower()
    if wanted and wanted not in OPENVINO_EXECUTORS:
        return False
    if importlib.util.find_spec("openvino") is None:
        return False
    return not is_prepared(sha256, default_thread_count(env) if threads is None else threads)

"""The record of each cached graph: what the exporter wrote, checked before every use.

A graph file of the cache (``L3.onnx``, ``onnx_export.cached_graph``) may not be the graph its
name says: a damaged disk, a user's copy (``cp L2.onnx L3.onnx`` made ``unetpp segment`` print
depth 2's liver volume "at depth 3"), a partial sync of ``~/.cache`` between machines. So the
exporter writes, beside each graph, its record ``L3.onnx.json``: the graph file's sha256 and
size, its name and depth, the weights' sha256 and the export key (format, opset, torch). The
record is written atomically (a temporary ``.export-*`` file renamed), after the graph.

:func:`verified_sha256` checks a graph against its record before it is compiled or loaded
(ONNX Runtime, OpenVINO) and before a stamp counts it as prepared (``prepare_stamp``): a
graph without a record, or whose bytes, name, depth, weights or export key differ, is not
used; the caller exports it again, with one :class:`GraphRebuiltWarning`. The hash is taken
once per process and file version (same path, inode, size, modification and change times):
about 2 ms for the liver model's L3 (1.7 MB), ~10 ms for all four depths (9 MB).

OpenVINO's compiled blobs (its ``CACHE_DIR``) are keyed by the model file's path and the
compile options, and checked against the file's size and modification time (seconds) only,
not its content: a graph changed in the same second at the same size loads the old blob
(measured on OpenVINO 2026.4). The executor therefore keeps them under
``openvino/<first 16 hex digits of the verified graph's sha256>/``, so a blob is only ever
loaded for the graph content it was compiled from. This module imports neither torch nor
OpenVINO.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Optional, Union

RECORD_FORMAT = 1
RECORD_SUFFIX = ".json"  # "L3.onnx" -> "L3.onnx.json"
RECORD_MAX_BYTES = 1 << 14  # a record is ~300 bytes; a larger file is not read
_CHUNK = 1 << 20

_hashes: dict = {}  # (path, dev, ino, size, mtime_ns, ctime_ns) -> sha256, this process's
_hashes_lock = threading.Lock()

Depth = Union[int, str]


class GraphRebuiltWarning(UserWarning):
    """A cached graph did not match its record (or had none) and was exported again."""


def record_path(graph: Path) -> Path:
    """``L3.onnx.json`` beside ``L3.onnx``."""
    graph = Path(graph)
    return graph.with_name(graph.name + RECORD_SUFFIX)


def depth_label(depth: Depth) -> str:
    """``"L3"`` for 3, ``"ensemble"`` for the ensemble (as ``onnx_export.depth_name``)."""
    return "ensemble" if depth == "ensemble" else f"L{int(depth)}"


def file_sha256(path: Path) -> str:
    """sha256 of the file at ``path`` (hex), hashed once per process and file version (path,
    device, inode, size, modification and status-change times in ns: a write, or resetting the
    modification time, changes the latter). Raises OSError."""
    path = Path(path)
    before = os.stat(path)
    key = (
        str(path.absolute()),
        *(before.st_dev, before.st_ino, before.st_size, before.st_mtime_ns, before.st_ctime_ns),
    )
    with _hashes_lock:
        known = _hashes.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(chunk)
    after = os.stat(path)
    value = digest.hexdigest()
    if (after.st_dev, after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) == key[1:]:
        with _hashes_lock:
            _hashes[key] = value
    return value


def expected_record(graph: Path, depth: Depth, weights_sha256: str, export_key: str) -> dict:
    """The identity a record of ``graph`` must hold (every field but the file's digest)."""
    return {
        "format": RECORD_FORMAT,
        "graph": Path(graph).name,
        "depth": depth_label(depth),
        "weights_sha256": weights_sha256,
        "export_key": export_key,
    }


def write_record(
    graph: Path, depth: Depth, weights_sha256: str, export_key: str, sha256: str, size: int
) -> Path:
    """Write ``graph``'s record atomically: its identity, and the ``sha256`` (hex) and ``size``
    (bytes) of the graph file written. Raises OSError."""
    graph = Path(graph)
    record = expected_record(graph, depth, weights_sha256, export_key)
    record.update(sha256=sha256, size=int(size))
    handle, temporary = tempfile.mkstemp(prefix=".export-", suffix=".json", dir=graph.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(record, stream, indent=1)
        os.replace(temporary, record_path(graph))
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return record_path(graph)


def read_record(graph: Path) -> dict:
    """The record of ``graph`` as a dict; {} when missing, damaged or too large."""
    try:
        with open(record_path(graph), "rb") as stream:
            raw = stream.read(RECORD_MAX_BYTES + 1)
        if len(raw) > RECORD_MAX_BYTES:
            return {}
        data = json.loads(raw.decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def verified_sha256(
    graph: Path, depth: Depth, weights_sha256: str, export_key: str
) -> Optional[str]:
    """The sha256 of ``graph`` when it is a file that matches its record for ``depth``, the
    weights ``weights_sha256`` and ``export_key``; None otherwise (no graph, no record, or any
    field or the file's size or digest differs). Never raises."""
    record = read_record(graph)
    if not record:
        return None
    expected = expected_record(graph, depth, weights_sha256, export_key)
    if any(record.get(name) != value for name, value in expected.items()):
        return None
    try:
        if os.stat(graph).st_size != record.get("size"):
            return None
        digest = file_sha256(graph)
    except OSError:
        return None
    return digest if digest == record.get("sha256") else None


def mismatch_notice(depth: Depth, had_record: bool) -> str:
    """The one notice of a cached graph exported again because it failed its check."""
    name = "the ensemble" if depth == "ensemble" else f"depth {int(depth)}"
    if had_record:
        return f"cached graph of {name} did not match its record; exported again"
    return f"cached graph of {name} had no record; exported again"

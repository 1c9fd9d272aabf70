"""Keeping the ONNX graph cache (``<cache>/graphs/<sha256>/<export key>/``) from growing.

Each export key (``f2-opset17-torch2.13.0``, ``onnx_export.export_key``) gets its own folder, so
a torch upgrade (or a new export format or opset) leaves the old folders behind for good. They
are pruned, once per process, when a graph executor first uses the cache (``executor_backends``,
``fastest``), and only when all of these hold:

- the folder is of this project's layout: ``<64 hex digits>/f<N>-opset<N>-torch<version>``,
  not a symbolic link;
- its key is not the running one;
- nothing in it was used for :data:`STALE_DAYS` days: the folder's modification time (a graph
  written, or :func:`mark_used` on every use) and its files' modification and access times
  (a graph loaded). Slicer's bundled torch and a pip venv's torch may share one cache, so a
  folder another install used recently is kept.

A ``<sha256>`` folder left empty is removed too. Errors (a read-only cache, a file vanishing
under another process) leave the folder as it is: pruning never fails a run.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from typing import Optional

#: days without use after which another export key's graphs are deleted
STALE_DAYS = 30
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_EXPORT_KEY = re.compile(r"^f\d+-opset\d+-torch[0-9A-Za-z.]+$")
_pruned = False  # once per process


def last_used(folder: Path) -> float:
    """Seconds since the epoch when ``folder`` (an export-key folder) was last written or used:
    the latest of its modification time and its entries' modification and access times (not
    the folder's own access time, which listing it changes). Raises OSError."""
    latest = folder.lstat().st_mtime
    with os.scandir(folder) as entries:
        for entry in entries:
            info = entry.stat(follow_symlinks=False)
            latest = max(latest, info.st_mtime, info.st_atime)
    return latest


def stale_folders(root: Path, current_key: str, now: float, max_age_s: float) -> list[Path]:
    """The export-key folders under the graph cache ``root`` that :func:`prune` deletes: this
    project's layout, another key than ``current_key``, unused for more than ``max_age_s``
    seconds before ``now``. Unreadable folders are left out."""
    stale = []
    try:
        weights = [p for p in Path(root).iterdir() if _SHA256.match(p.name) and not p.is_symlink()]
    except OSError:
        return []
    for folder in sorted(weights):
        try:
            keys = [p for p in folder.iterdir() if _EXPORT_KEY.match(p.name)]
        except OSError:
            continue
        for key in sorted(keys):
            if key.name == current_key or key.is_symlink() or not key.is_dir():
                continue
            try:
                if now - last_used(key) > max_age_s:
                    stale.append(key)
            except OSError:
                continue
    return stale


def prune(
    root: Path, current_key: str, now: Optional[float] = None, max_age_days: float = STALE_DAYS
) -> list[Path]:
    """Delete the :func:`stale_folders` under ``root`` (and a ``<sha256>`` folder they leave
    empty); returns those deleted. Never raises for a folder it cannot delete."""
    now = time.time() if now is None else now
    removed = []
    for folder in stale_folders(root, current_key, now, max_age_days * 86400.0):
        try:
            shutil.rmtree(folder)
        except OSError:
            continue
        removed.append(folder)
        try:
            folder.parent.rmdir()  # only when empty
        except OSError:
            pass
    return removed


def mark_used(folder: Path) -> None:
    """Set ``folder``'s modification time to now, if it exists (best effort): a graph loaded
    from it counts as a use for :func:`prune` even where file access times are not kept."""
    try:
        os.utime(folder)
    except OSError:
        pass


def graph_folder_in_use(weights_sha256: str) -> Path:
    """``onnx_export.graph_cache_dir(weights_sha256)`` in the user cache, marked as used; the
    first call in a process prunes other export keys' stale folders (:func:`prune`)."""
    global _pruned
    from .onnx_export import export_key, graph_cache_dir

    folder = graph_cache_dir(weights_sha256)
    if not _pruned:
        _pruned = True
        prune(folder.parent.parent, export_key())
    mark_used(folder)
    return folder


def cache_write_problem(error: BaseException, cache_dir: Optional[Path]) -> Optional[str]:
    """ "its graph cache FOLDER cannot be written (REASON)" when ``error`` (or an error it was
    raised from) is an OSError on ``cache_dir`` or a folder above it (an unwritable or missing
    ``UNETPP_HOME``): the executor's message had named only the error type ("could not run this
    model (FileNotFoundError)", tester 20). None for other errors."""
    seen: set[int] = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and cache_dir is not None:
            named = current.filename or current.filename2
            folder = Path(cache_dir)
            if (
                named is None
                or folder == Path(named)
                or Path(named) in (folder, *folder.parents)
                or folder in Path(named).parents
            ):
                reason = current.strerror or type(current).__name__
                return (
                    f"its graph cache {folder} cannot be written ({reason}; UNETPP_HOME="
                    f"{os.environ.get('UNETPP_HOME', '(unset)')})"
                )
        current = current.__cause__ or current.__context__
    return None

"""Removing a model that ``unetpp models install`` put into the user cache, and its graphs.

Only a package folder directly in the user cache (:func:`model_search.user_cache_dir`) is
removed; a shipped model, one found through ``UNETPP_MODELS``, a name that is a path, a package
folder that is a link and an unknown name are each refused with one error, before anything
changes. Links inside the package are removed, never followed. The package is first renamed to
a hidden folder (so it is no longer listed, even if deleting its files fails half-way), then
deleted. Its compiled graphs and probe memory (``<graphs>/<weights sha256>``, see
``onnx_export.graph_cache_dir``) go with it, unless another model found uses the same weights.
No torch is imported.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from UNetPlusPlusLib.engine.manifest import MANIFEST_FILENAME
from UNetPlusPlusLib.engine.model_search import (
    builtin_names,
    graphs_dir,
    list_models,
    user_cache_dir,
)
from UNetPlusPlusLib.errors import UNetPlusPlusError

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass
class RemovedModel:
    """What :func:`remove_model` removed: the package folder, and its graph cache folder unless
    it was kept (``graphs_kept``, ``graphs_kept_why``)."""

    name: str
    task: Optional[str]
    folder: Path
    graphs: Optional[Path] = None  #: the graph cache folder deleted, if there was one
    graphs_kept: Optional[Path] = None  #: the graph cache folder left in place
    graphs_kept_why: str = ""  #: why: "model X uses the same weights", "it is a link"...
    leftovers: Optional[Path] = None  #: a hidden folder that could not be deleted entirely


@dataclass
class _Installed:
    folder: Path  # as found in the cache, not resolved
    name: Optional[str]  # the manifest's name; None when model.json is unreadable
    task: Optional[str]
    sha256: Optional[str]


def _installed_packages(cache: Path) -> list[_Installed]:
    """The entries of the user cache that hold a ``model.json``, hidden ones left out (a link
    is listed as found; :func:`_refuse_links` refuses it)."""
    if not cache.is_dir():
        return []
    found = []
    for entry in sorted(cache.iterdir()):
        if entry.name.startswith(".") or not (entry / MANIFEST_FILENAME).is_file():
            continue
        data = _read_manifest(entry / MANIFEST_FILENAME)
        name, task, sha256 = (data.get(k) for k in ("name", "task", "sha256"))
        found.append(
            _Installed(
                entry,
                name if isinstance(name, str) else None,
                task if isinstance(task, str) else None,
                sha256.lower() if isinstance(sha256, str) else None,
            )
        )
    return found


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remove_model(name: str) -> RemovedModel:
    """Remove the installed model ``name`` (its manifest name, or its folder's name in the user
    cache) and, unless another model found uses the same weights, its graph cache folder.

    Raises UNetPlusPlusError, with nothing changed, when ``name`` is a path, a shipped model,
    a model outside the user cache, a link, or unknown (the closest installed names given)."""
    cache = user_cache_dir()
    if not name.strip() or name in (".", "..") or any(s in name for s in ("/", "\\", os.sep)):
        raise UNetPlusPlusError(
            f"{name!r} is not a model name: `unetpp models remove` takes the name of a model "
            f"installed in {cache} (`unetpp models list` shows them), never a path."
        )
    installed = _installed_packages(cache)
    matches = [p for p in installed if p.name == name] or [
        p for p in installed if p.folder.name == name
    ]
    if not matches:
        raise _not_installed(name, cache, installed)
    package = matches[0]
    _refuse_links(package.folder, cache)
    if package.name in builtin_names():  # install refuses these names; a copy made by hand
        raise _shipped(package.name or name)
    with warnings.catch_warnings():  # a broken package elsewhere: `models list` says so
        warnings.simplefilter("ignore")
        others = [
            f"{m.name} ({Path(m.path).parent})"
            for m in list_models()
            if m.sha256 == package.sha256
            and Path(m.path).parent.resolve() != package.folder.resolve()
        ]
    hidden = _hide(package.folder, cache, f"Cannot remove the model {name!r}")
    removed = RemovedModel(package.name or name, package.task, package.folder)
    if not _delete(hidden):
        removed.leftovers = hidden
    if not _SHA256.fullmatch(package.sha256 or ""):  # an unreadable model.json: no key
        return removed
    graphs = graphs_dir() / str(package.sha256)
    if not graphs.is_dir() and not graphs.is_symlink():  # never run with OpenVINO
        return removed
    if others:
        removed.graphs_kept = graphs
        verb = "uses" if len(others) == 1 else "use"
        removed.graphs_kept_why = f"{', '.join(others)} {verb} the same weights"
    elif graphs.is_symlink():
        removed.graphs_kept, removed.graphs_kept_why = graphs, "it is a link, not followed"
    else:
        try:
            hidden_graphs = _hide(graphs, graphs.parent, "Cannot remove the cached graphs")
        except UNetPlusPlusError as exc:  # the package is gone; the graphs only cost disk
            removed.graphs_kept, removed.graphs_kept_why = graphs, str(exc)
        else:
            removed.graphs = graphs
            if not _delete(hidden_graphs):
                removed.leftovers = removed.leftovers or hidden_graphs
    return removed


def _refuse_links(folder: Path, cache: Path) -> None:
    """Raise when the package folder is a link (to anywhere) or lies outside the cache."""
    if folder.is_symlink():
        target = os.readlink(folder)
        where = "outside" if not _inside(folder.resolve(), cache) else "inside"
        raise UNetPlusPlusError(
            f"{folder} is a link to {target} ({where} the user's model folder {cache}); it is "
            "not removed, nor what it points to. Delete the link yourself if you mean to."
        )
    if not _inside(folder.resolve(), cache):
        raise UNetPlusPlusError(
            f"{folder} resolves to {folder.resolve()}, outside the user's model folder {cache}; "
            "it is not removed."
        )


def _inside(path: Path, cache: Path) -> bool:
    return path.parent == cache.resolve()


def _hide(folder: Path, parent: Path, what: str) -> Path:
    """Rename ``folder`` to a new hidden folder in ``parent`` (so nothing lists it); returns it."""
    hidden = None
    try:
        hidden = Path(tempfile.mkdtemp(prefix=".remove-", dir=parent))
        folder.rename(hidden / "package")
    except OSError as exc:
        if hidden is not None:
            shutil.rmtree(hidden, ignore_errors=True)  # empty: the rename failed
        reason = exc.strerror or str(exc)
        raise UNetPlusPlusError(f"{what} from {parent}: {reason}.") from exc
    return hidden


def _delete(hidden: Path) -> bool:
    """Delete ``hidden`` and all it holds (links removed, not followed); False, with a
    UserWarning naming it, if some is left (it is hidden: nothing lists it)."""
    shutil.rmtree(hidden, ignore_errors=True)
    if not hidden.exists():
        return True
    warnings.warn(
        f"Could not delete all of {hidden} (permissions?); nothing lists it, delete it yourself.",
        UserWarning,
        stacklevel=3,
    )
    return False


def _shipped(name: str) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"{name!r} is a shipped model; shipped models are part of the extension and are not "
        "removed (`unetpp models remove` removes models that `unetpp models install` added)."
    )


def _not_installed(name: str, cache: Path, installed: list[_Installed]) -> UNetPlusPlusError:
    """The error for a name with no package in the cache: shipped, elsewhere, a task or unknown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = list_models()
    same = [m for m in models if m.name == name]
    if name in builtin_names():
        return _shipped(name)
    if same:
        folder = Path(same[0].path).parent
        return UNetPlusPlusError(
            f"Model {name!r} lies in {folder}, outside the user's model folder {cache} (found "
            "through UNETPP_MODELS); it is not removed: delete that folder yourself or take "
            "it (or its parent) out of UNETPP_MODELS."
        )
    names = [p.name or p.folder.name for p in installed]
    of_task = [n for p, n in zip(installed, names) if p.task == name]
    close = of_task or difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(repr(n) for n in close)}?)" if close else ""
    task_of = [m.name for m in models if m.task == name]
    if not close and task_of:  # `remove liver`: the task of the shipped liver-ct
        hint = f" ({name!r} is the task of {', '.join(task_of)}, not a model installed there)"
    listed = ", ".join(names) if names else "none"
    return UNetPlusPlusError(
        f"No installed model named {name!r}{hint}; installed in {cache}: {listed}. "
        "`unetpp models remove` takes a model's name, as `unetpp models list` shows it."
    )

"""Finding models: the folders searched, in order, and the packages found there.

A model is a folder holding ``model.json`` and its weights (docs/ARCHITECTURE.md, "Model
package"). Folders are searched in this order, the first match winning:

1. every folder in ``UNETPP_MODELS`` (``os.pathsep``-separated): a folder of packages, or a
   package folder itself;
2. the user cache, ``$UNETPP_HOME/models`` or the platform cache (``~/.cache/unetpp/models``);
3. the built-in models, package data in ``UNetPlusPlusLib/Resources/Models`` found through
   :mod:`importlib.resources` (a checkout, a pip install, an installed Slicer extension alike;
   see ``UNetPlusPlusLib/resources.py``).

Two packages with one name: the first found runs for that name and for its task (a
``UNETPP_MODELS`` folder is an explicit override, as ``PATH`` is, e.g. to try a retrained
``liver-ct``; ``models install`` refuses shipped names because an installed copy would shadow
one for good, unseen). The later one is *shadowed*: ``unetpp models list`` marks it
(:func:`shadowed_models`) and ``unetpp segment`` names the file it uses (:func:`shadow_notice`).

No torch is imported (``unetpp models list`` stays fast); ``registry`` re-exports these names.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Optional

from UNetPlusPlusLib.engine.manifest import MANIFEST_FILENAME, ModelManifest
from UNetPlusPlusLib.errors import UNetPlusPlusError
from UNetPlusPlusLib.resources import builtin_models_dir, expected_dir


def user_cache_dir() -> Path:
    """The user model cache: ``$UNETPP_HOME/models``, else the platform's cache folder."""
    home = os.environ.get("UNETPP_HOME")
    if home:
        return _checked_home(home) / "models"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "unetpp" / "models"


def graphs_dir() -> Path:
    """The graph cache beside the user model cache (``$UNETPP_HOME/graphs``, else
    ``~/.cache/unetpp/graphs``): a folder per weights sha256 (``onnx_export.graph_cache_dir``)."""
    return user_cache_dir().parent / "graphs"


def _checked_home(home: str) -> Path:
    """``$UNETPP_HOME`` as a folder path (it need not exist yet). A file there made the model
    install fail and OpenVINO's graph cache report NotADirectoryError, which reached the user
    as "the openvino executor could not run this model (NotADirectoryError)" (tester 12).
    Raises UNetPlusPlusError when it, or a folder it names, is a file, and when it is a
    relative path: it silently made a cache under the current folder, a different one for each
    folder a command (or 3D Slicer, or the processes it starts) runs in (tester 20)."""
    path = existing = Path(home).expanduser()
    if not path.is_absolute():
        raise UNetPlusPlusError(
            f"UNETPP_HOME={home} is a relative path, which would put the cache of installed "
            "models and compiled graphs under whichever folder a command runs in: give an "
            f"absolute path (e.g. UNETPP_HOME={Path(home).expanduser().absolute()}) or unset it."
        )
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == path else f"lies inside {existing}, which is a file"
        raise UNetPlusPlusError(
            f"UNETPP_HOME={home} {what}, not a folder: point UNETPP_HOME at a folder (the "
            "engine keeps installed models and compiled graphs there) or unset it."
        )
    return path


def _env_dirs() -> list[Path]:
    """The folders ``UNETPP_MODELS`` names, in order (empty entries left out)."""
    candidates = [
        Path(p).expanduser() for p in os.environ.get("UNETPP_MODELS", "").split(os.pathsep)
    ]
    return [p for p in candidates if str(p) not in ("", ".")]


def searched_dirs() -> list[Path]:
    """Every folder searched for models, in order, whether it exists or not (for messages)."""
    return [*_env_dirs(), user_cache_dir(), builtin_models_dir() or expected_dir("Models")]


def check_env_dir(path: Path) -> None:
    """Refuse a ``UNETPP_MODELS`` entry that is no readable folder. Such an entry was skipped
    in silence: a mistyped path ran the shipped model of the task instead of the user's, and
    ``unetpp models list`` said nothing (review cli20). Raises UNetPlusPlusError naming the
    variable and the path."""
    if not path.exists():
        what = "does not exist"
    elif not path.is_dir():
        what = "is a file, not a folder"
    elif not os.access(path, os.R_OK | os.X_OK):
        what = "cannot be read (no permission)"
    else:
        return
    raise UNetPlusPlusError(
        f"UNETPP_MODELS names {path}, which {what}: give a folder of model packages (or one "
        f"package's folder), entries separated by {os.pathsep!r}, or unset UNETPP_MODELS."
    )


def model_dirs() -> list[Path]:
    """Existing model folders in search order (see the module docstring), without duplicates.
    Raises UNetPlusPlusError for a ``UNETPP_MODELS`` entry that is no readable folder."""
    for path in _env_dirs():
        check_env_dir(path)
    out: list[Path] = []
    for path in searched_dirs():
        if path.is_dir() and path.resolve() not in {p.resolve() for p in out}:
            out.append(path)
    return out


def _manifest_paths(folder: Path) -> list[Path]:
    """The packages in ``folder`` (its sub-folders holding model.json), or ``folder`` itself
    when it is one: a UNETPP_MODELS entry naming a package, as "add its folder to
    UNETPP_MODELS" reads, was skipped in silence (tester fresh30)."""
    if (folder / MANIFEST_FILENAME).is_file():
        return [folder / MANIFEST_FILENAME]
    return sorted(
        p / MANIFEST_FILENAME
        for p in folder.iterdir()
        if not p.name.startswith(".") and (p / MANIFEST_FILENAME).is_file()
    )


def list_models() -> list[ModelManifest]:
    """Every readable model in :func:`model_dirs`, in search order; broken ones are skipped.
    A fine-tuned model comes right after its parent when the parent is listed."""
    models = []
    for folder in model_dirs():
        for path in _manifest_paths(folder):
            try:
                models.append(ModelManifest.load(path))
            except UNetPlusPlusError as exc:
                warnings.warn(f"Skipping model {path.parent}: {exc}", stacklevel=2)
    names = {m.name for m in models}
    children = [m for m in models if fine_tuned_from(m) in names]
    ordered = [m for m in models if not any(m is c for c in children)]
    for child in children:
        at = next(i for i, m in enumerate(ordered) if m.name == fine_tuned_from(child)) + 1
        while at < len(ordered) and fine_tuned_from(ordered[at]) == fine_tuned_from(child):
            at += 1
        ordered.insert(at, child)
    return ordered


def builtin_names() -> set[str]:
    """Names of the shipped models (package data); an install never takes one of them."""
    return {manifest.name for manifest in builtin_manifests()}


def builtin_tasks() -> set[str]:
    """Tasks of the shipped models (``liver``, ...): a model of another task is never
    installed under one of these names, which ``--task`` would match first."""
    return {manifest.task for manifest in builtin_manifests()}


def builtin_manifests() -> list[ModelManifest]:
    """The shipped models' manifests (unreadable ones left out)."""
    folder = builtin_models_dir()
    if folder is None or not folder.is_dir():
        return []
    manifests = []
    for path in _manifest_paths(folder):
        try:
            manifests.append(ModelManifest.load(path))
        except UNetPlusPlusError:
            continue
    return manifests


def fine_tuned_from(manifest: ModelManifest) -> Optional[str]:
    """The parent model's name when this package was fine-tuned from another, else None.

    A model that continued training from an earlier version of itself (same name, as the
    shipped models' second round did with ``--init``) is not a fine-tuned child: None."""
    parent = (manifest.training or {}).get("fine_tuned_from")
    name = parent.get("name") if isinstance(parent, dict) else None
    return name if name != manifest.name else None


def listed_models() -> list[ModelManifest]:
    """:func:`list_models`, which must find one: ``unetpp models list``, ``verify`` and
    ``prepare`` without names. Raises UNetPlusPlusError naming every folder searched when it
    finds none (``prepare`` and ``verify`` printed nothing and exited 0)."""
    models = list_models()
    if not models:
        raise UNetPlusPlusError(
            "No model found; looked in "
            + ", ".join(str(p) for p in searched_dirs())
            + ". Install one with `unetpp models install <folder, .zip or URL>` or add its "
            "folder to UNETPP_MODELS."
        )
    return models


def find_model(task_or_name: str) -> ModelManifest:
    """The model with this name, else the first for this task, else a path to a package.

    A task name prefers a model that is not a fine-tuned child: installing ``liver-ft-...``
    does not silently change what ``liver`` segments with; pick the child by its name."""
    models = list_models()
    for manifest in models:
        if manifest.name == task_or_name:
            return manifest
    same_task = [m for m in models if m.task == task_or_name]
    if same_task:
        return next((m for m in same_task if not fine_tuned_from(m)), same_task[0])
    candidate = Path(task_or_name).expanduser()
    if candidate.name == MANIFEST_FILENAME or (candidate / MANIFEST_FILENAME).is_file():
        return ModelManifest.load(candidate)
    if models:
        available = ", ".join(f"{m.task} ({m.name})" for m in models)
    else:
        available = "none (looked in " + ", ".join(str(p) for p in searched_dirs()) + ")"
    raise UNetPlusPlusError(
        f"No model for {task_or_name!r}; available: {available}. Install one with"
        " `unetpp models install <folder, .zip or URL>` or add its folder to UNETPP_MODELS."
    )


def shadowed_models(models: list[ModelManifest]) -> dict[Path, ModelManifest]:
    """Each shadowed package's folder -> the package of the same name found before it in
    ``models`` (:func:`list_models`' order), which a name or task picks instead."""
    first: dict[str, ModelManifest] = {}
    out: dict[Path, ModelManifest] = {}
    for manifest in models:
        winner = first.setdefault(manifest.name, manifest)
        if winner is not manifest:
            out[Path(manifest.path).parent] = winner
    return out


def shadow_notice(manifest: ModelManifest) -> Optional[str]:
    """One line naming the package ``manifest`` (as :func:`find_model` picked it) and those of
    the same name it shadows (a shipped ``liver-ct`` behind a ``UNETPP_MODELS`` one); None
    when its name is unique."""
    folder = Path(manifest.path).parent
    hidden = [
        shadowed
        for shadowed, winner in shadowed_models(list_models()).items()
        if Path(winner.path).parent == folder
    ]
    if not hidden:
        return None
    builtin = builtin_models_dir()
    names = ", ".join(
        f"{'the shipped one in ' if builtin and p.parent.resolve() == builtin.resolve() else ''}{p}"
        for p in hidden
    )
    return (
        f"using model '{manifest.name}' from {folder}, found first (the search order: "
        f"UNETPP_MODELS, the installed, the shipped models); it shadows the model of the same "
        f"name in {names}: "
        "give that folder as --model to run it."
    )

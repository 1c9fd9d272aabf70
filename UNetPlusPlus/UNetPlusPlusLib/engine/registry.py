"""Where models live: built-in packages, extra folders, the user cache; installing new ones.

A model is a folder holding ``model.json`` and its weights (docs/ARCHITECTURE.md, "Model
package"). Folders are searched in this order, the first match winning:

1. every folder in ``UNETPP_MODELS`` (``os.pathsep``-separated);
2. the user cache, ``$UNETPP_HOME/models`` or the platform cache (``~/.cache/unetpp/models``);
3. the built-in models, package data in ``UNetPlusPlusLib/Resources/Models`` found through
   :mod:`importlib.resources` (a checkout, a pip install, an installed Slicer extension alike;
   see ``UNetPlusPlusLib/resources.py``).

``install_model`` copies a package into the user cache from a folder, a ``model.json``, a
``.zip`` or an http(s) URL. It verifies checksums before anything reaches the cache and moves
the package into place with a rename, so a failed install leaves the cache as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Callable, Optional, Union

from UNetPlusPlusLib.engine.manifest import (
    MANIFEST_FILENAME,
    ModelManifest,
    open_weights,
    sha256_file,
)
from UNetPlusPlusLib.engine.package_files import check_folder_files
from UNetPlusPlusLib.engine.weights_fit import check_weights_fit
from UNetPlusPlusLib.errors import ChecksumError, UNetPlusPlusError
from UNetPlusPlusLib.resources import builtin_models_dir, expected_dir

Progress = Callable[[str, int, int], None]
PathLike = Union[str, "os.PathLike[str]"]

DOWNLOAD_TIMEOUT_S = 60.0
#: A download that brings fewer bytes than this in DOWNLOAD_TIMEOUT_S (about 1 KiB/s) has
#: stalled: a server trickling a byte at a time never hit the socket timeout (tester 16).
MIN_BYTES_PER_TIMEOUT = 64 << 10
#: The most a download may bring: a server streaming without end filled the disk (tester 16).
MAX_DOWNLOAD_BYTES = 2 << 30  # an archive or weights (the shipped ones are 3.3 MB)
MAX_MANIFEST_BYTES = 64 << 20  # a model.json (the largest shipped one is 0.6 MB)
MAX_UNPACKED_BYTES = 8 << 30  # refuse archives that unpack to more than 8 GiB (zip bombs)
_CHUNK = 1 << 20
TRAINING_STATE = {"checkpoint", "cache"}  # folders of a training output left out of an install


# ------------------------------------------------------------------------------- finding
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


def _checked_home(home: str) -> Path:
    """``$UNETPP_HOME`` as a folder path (it need not exist yet). A file there made the model
    install fail and OpenVINO's graph cache report NotADirectoryError, which reached the user
    as "the openvino executor could not run this model (NotADirectoryError)" (tester 12).
    Raises UNetPlusPlusError when it, or a folder it names, is a file."""
    path = existing = Path(home).expanduser()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        what = "is a file" if existing == path else f"lies inside {existing}, which is a file"
        raise UNetPlusPlusError(
            f"UNETPP_HOME={home} {what}, not a folder: point UNETPP_HOME at a folder (the "
            "engine keeps installed models and compiled graphs there) or unset it."
        )
    return path


def searched_dirs() -> list[Path]:
    """Every folder searched for models, in order, whether it exists or not (for messages)."""
    candidates = [
        Path(p).expanduser() for p in os.environ.get("UNETPP_MODELS", "").split(os.pathsep)
    ]
    candidates = [p for p in candidates if str(p) not in ("", ".")]
    return [*candidates, user_cache_dir(), builtin_models_dir() or expected_dir("Models")]


def model_dirs() -> list[Path]:
    """Existing model folders in search order (see the module docstring), without duplicates."""
    out: list[Path] = []
    for path in searched_dirs():
        if path.is_dir() and path.resolve() not in {p.resolve() for p in out}:
            out.append(path)
    return out


def _manifest_paths(folder: Path) -> list[Path]:
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
    folder = builtin_models_dir()
    if folder is None or not folder.is_dir():
        return set()
    names = set()
    for path in _manifest_paths(folder):
        try:
            names.add(ModelManifest.load(path).name)
        except UNetPlusPlusError:
            continue
    return names


def fine_tuned_from(manifest: ModelManifest) -> Optional[str]:
    """The parent model's name when this package was fine-tuned from another, else None.

    A model that continued training from an earlier version of itself (same name, as the
    shipped models' second round did with ``--init``) is not a fine-tuned child: None."""
    parent = (manifest.training or {}).get("fine_tuned_from")
    name = parent.get("name") if isinstance(parent, dict) else None
    return name if name != manifest.name else None


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


# ---------------------------------------------------------------------------- installing
def install_model(
    source: str,
    expected_sha256: Optional[str] = None,
    cache_dir: Optional[PathLike] = None,
    progress: Optional[Progress] = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> ModelManifest:
    """Install a model package into the user cache (or ``cache_dir``) and return its manifest.

    ``source`` is a package folder, a ``model.json`` (its weights beside it), a ``.zip`` package
    or an http(s) URL of either a ``.zip`` or a ``model.json`` (weights fetched from beside it).
    ``expected_sha256`` pins the archive (zip sources) or the ``model.json`` (other sources).
    The weights are always checked against the manifest's sha256. ``progress("download", done,
    total)`` reports bytes (``total`` is 0 when the server does not say). The package lands in
    ``<cache>/<manifest name>``, replacing an older copy only once the new one is complete
    (a UserWarning names the replaced weights when they differ).
    """
    cache = Path(cache_dir) if cache_dir is not None else user_cache_dir()
    try:  # UNETPP_HOME on a file or a read-only place was an internal error (tester 12)
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=cache))
    except OSError as exc:
        raise _unwritable(cache, exc) from exc
    try:
        package = staging / "package"
        try:
            if _is_url(source):
                _stage_from_url(source, staging, package, expected_sha256, progress, timeout)
            else:
                _stage_from_path(Path(source).expanduser(), staging, package, expected_sha256)
            manifest = ModelManifest.load(package / MANIFEST_FILENAME)
            # sha256 first, then the tensors (read one at a time) against the network: weights
            # of another network or with NaN replaced a working model (tester 12)
            with open_weights(manifest) as tensors:
                check_weights_fit(manifest, tensors)
        except UNetPlusPlusError as exc:
            if source in str(exc):
                raise
            # the hidden staging folder means nothing to the user (tester 9: "Model manifest
            # <cache>/.install-kx8ke92t/package/model.json does not describe its weights")
            said = str(exc).replace(str(package / MANIFEST_FILENAME), MANIFEST_FILENAME)
            said = said.replace(str(package) + os.sep, "")  # "weights in weights.safetensors",
            said = said.replace(str(package), "the package")  # not "in the package/weights..."
            raise type(exc)(f"Cannot install the model from {source}: {said}") from exc
        except OSError as exc:
            raise UNetPlusPlusError(f"Cannot install the model from {source}: {exc}.") from exc
        if manifest.name in builtin_names():
            raise UNetPlusPlusError(
                f"Model {source} is named {manifest.name!r}, like a shipped model; it is not "
                "installed, so the shipped one stays as it is. Retrain or rename it with "
                "`unetpp train --name NEW_NAME ...`."
            )
        target = cache / manifest.name
        earlier = _installed_sha256(target)
        try:
            _move_into_place(package, target, staging)
        except OSError as exc:
            raise _unwritable(cache, exc) from exc
        if earlier and earlier != manifest.sha256:  # the CLI prints it as one warning: line
            warnings.warn(
                f"Replaced the installed model '{manifest.name}' in {target} (weights sha256 "
                f"{earlier[:12]}...) with this one ({manifest.sha256[:12]}...); the earlier one "
                "is gone. To keep both, give the new model another name (`unetpp train --name "
                "NEW_NAME ...`).",
                UserWarning,
                stacklevel=2,
            )
        return ModelManifest.load(target / MANIFEST_FILENAME)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _unwritable(cache: Path, exc: OSError) -> UNetPlusPlusError:
    reason = exc.strerror or str(exc)
    return UNetPlusPlusError(
        f"Cannot install the model into {cache}: {reason}. Set UNETPP_HOME to a folder you can "
        "write to (models go to $UNETPP_HOME/models)."
    )


def _installed_sha256(target: Path) -> Optional[str]:
    """The weights' sha256 of the package installed at ``target``, or None (none, unreadable)."""
    try:
        data = json.loads((target / MANIFEST_FILENAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    sha256 = data.get("sha256") if isinstance(data, dict) else None
    return sha256.lower() if isinstance(sha256, str) else None


def _is_url(source: str) -> bool:
    """Whether ``source`` is an http(s) URL; ftp://, s3://... are refused, not taken for paths."""
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if "://" in source and len(scheme) > 1 and scheme not in ("http", "https"):
        raise UNetPlusPlusError(
            f"Cannot install the model from {source}: only http:// and https:// URLs are "
            "downloaded; fetch it yourself and install the local folder, model.json or .zip."
        )
    return scheme in ("http", "https")


def _stage_from_path(
    source: Path, staging: Path, package: Path, expected_sha256: Optional[str]
) -> None:
    if not source.exists():
        raise UNetPlusPlusError(f"Model source {source} does not exist.")
    if source.is_file() and zipfile.is_zipfile(source):
        _check_sha256(source, expected_sha256, "Model archive")
        _unpack_zip(source, staging / "unpacked", package)
        return
    if source.is_file() and _looks_like_zip(source):  # was read as a model.json: "cannot be
        raise UNetPlusPlusError(  # read: 'utf-8' codec can't decode byte 0xca" (tester 16)
            f"Model archive {source} is not a readable .zip (truncated or damaged); download "
            "or copy it again."
        )
    manifest_path = source / MANIFEST_FILENAME if source.is_dir() else source
    if not manifest_path.is_file():
        raise UNetPlusPlusError(
            f"Model source {source} is not a package folder, a {MANIFEST_FILENAME} or a .zip."
        )
    _check_sha256(manifest_path, expected_sha256, "Model manifest")
    if source.is_dir():
        # an `unetpp train` output folder: its resume state and preprocessing cache are not
        # part of the package (they are tens of MB)
        def training_state(folder: str, names: list[str]) -> set[str]:
            return TRAINING_STATE & set(names) if Path(folder) == source else set()

        check_folder_files(source, TRAINING_STATE, MAX_UNPACKED_BYTES)  # /dev/zero, links
        shutil.copytree(source, package, symlinks=False, ignore=training_state)
    else:
        manifest = ModelManifest.load(manifest_path)
        if not manifest.weights_path.is_file():
            raise UNetPlusPlusError(
                f"Model weights {manifest.weights_path} named by {manifest_path} are missing."
            )
        package.mkdir()
        shutil.copy2(manifest_path, package / MANIFEST_FILENAME)
        shutil.copy2(manifest.weights_path, package / manifest.weights)


def _looks_like_zip(path: Path) -> bool:
    """A ``.zip`` name or zip's signature (``PK``) at the start: meant as an archive."""
    if path.name.lower().endswith(".zip"):
        return True
    try:
        with open(path, "rb") as handle:
            return handle.read(2) == b"PK"
    except OSError:
        return False


def _stage_from_url(
    url: str,
    staging: Path,
    package: Path,
    expected_sha256: Optional[str],
    progress: Optional[Progress],
    timeout: float,
) -> None:
    if PurePosixPath(urllib.parse.urlsplit(url).path).name.lower().endswith(".json"):
        package.mkdir()
        manifest_path = package / MANIFEST_FILENAME
        _download(url, manifest_path, progress, timeout, MAX_MANIFEST_BYTES)
        _check_sha256(manifest_path, expected_sha256, "Model manifest")
        manifest = ModelManifest.load(manifest_path)
        weights_url = urllib.parse.urljoin(url, urllib.parse.quote(manifest.weights))
        _download(weights_url, package / manifest.weights, progress, timeout)
        return
    archive = staging / "package.zip"
    _download(url, archive, progress, timeout)
    if not zipfile.is_zipfile(archive):
        raise UNetPlusPlusError(f"Download from {url} is not a .zip model package.")
    _check_sha256(archive, expected_sha256, "Model archive", shown=url)  # not "package.zip"
    _unpack_zip(archive, staging / "unpacked", package)


def _content_length(text: Optional[str]) -> int:
    """A Content-Length header's bytes; 0 (unknown) when absent or not a whole number >= 0, as
    http.client reads it (it was a 'Could not download' error, a "-5" a download cut short)."""
    try:
        return max(0, int((text or "0").strip()))
    except ValueError:
        return 0


def _download(
    url: str,
    dest: Path,
    progress: Optional[Progress],
    timeout: float,
    max_bytes: Optional[int] = None,
) -> None:
    """Stream ``url`` to ``dest``, at most ``max_bytes`` (default MAX_DOWNLOAD_BYTES);
    network problems, a stall and a larger file become one-line user errors."""
    max_bytes = MAX_DOWNLOAD_BYTES if max_bytes is None else max_bytes
    request = urllib.request.Request(url, headers={"User-Agent": "unetpp-model-installer"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response, open(dest, "wb") as out:
            total = _content_length(response.headers.get("Content-Length"))
            if total > max_bytes:
                raise _too_large(url, total, max_bytes)
            done = 0
            if progress:
                progress("download", done, total)
            window_start, window_done = time.monotonic(), 0
            while True:
                chunk = response.read1(_CHUNK)  # what has arrived: the stall check runs
                if not chunk:
                    break
                done += len(chunk)
                if done > max_bytes:
                    raise _too_large(url, done, max_bytes)
                out.write(chunk)
                window_done += len(chunk)
                if progress:
                    progress("download", done, total)
                if time.monotonic() - window_start >= timeout:
                    if window_done < MIN_BYTES_PER_TIMEOUT:
                        raise UNetPlusPlusError(
                            f"Could not download {url}: it stalled ({window_done} bytes in the "
                            f"last {timeout:g} s, {done} in all); check the network."
                        )
                    window_start, window_done = time.monotonic(), 0
        if total and done != total:
            raise UNetPlusPlusError(
                f"Download from {url} stopped after {done} of {total} bytes; try again."
            )
    except urllib.error.HTTPError as exc:
        reason = " ".join(str(exc.reason).split())  # a redirect loop's reason spans 3 lines
        raise UNetPlusPlusError(
            f"Could not download {url}: HTTP {exc.code} {reason}; check the address."
        ) from exc
    except (socket.timeout, TimeoutError) as exc:
        raise _timeout_error(url, timeout) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):
            raise _timeout_error(url, timeout) from exc
        raise UNetPlusPlusError(
            f"Could not download {url}: {exc.reason}; check the address and the network."
        ) from exc
    except (OSError, ValueError) as exc:  # connection reset, bad Content-Length, disk full
        raise UNetPlusPlusError(f"Could not download {url}: {exc}.") from exc


def _too_large(url: str, size: int, max_bytes: int) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Could not download {url}: it is larger than a model package may be ({size} bytes "
        f"or more; at most {max_bytes}); check the address."
    )


def _timeout_error(url: str, timeout: float) -> UNetPlusPlusError:
    return UNetPlusPlusError(
        f"Could not download {url}: no answer within {timeout:g} s; check the network."
    )


def _check_sha256(
    path: Path, expected: Optional[str], what: str, shown: Optional[str] = None
) -> None:
    """Raise ChecksumError when ``expected`` is given and ``path``'s sha256 differs; the
    message names ``shown`` (default: the file's name)."""
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected.strip().lower():
        raise ChecksumError(
            f"{what} {shown or path.name} does not match the expected checksum: expected sha256"
            f" {expected.strip().lower()}, got {actual}; the download is corrupt or was replaced."
        )


def _unpack_zip(archive: Path, dest: Path, package: Path) -> None:
    """Extract safely (no absolute paths, '..', links or zip bombs); the package folder is the
    one holding ``model.json``: the archive root or its single top-level folder."""
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        total = 0
        for info in members:
            parts = PurePosixPath(info.filename.replace("\\", "/")).parts
            if (
                info.filename.startswith(("/", "\\"))
                or ".." in parts
                or (parts and ":" in parts[0])
            ):
                raise UNetPlusPlusError(
                    f"Model archive {archive.name} has an unsafe entry {info.filename!r}; refused."
                )
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UNetPlusPlusError(
                    f"Model archive {archive.name} holds a link {info.filename!r}; refused."
                )
            total += info.file_size
        if total > MAX_UNPACKED_BYTES:
            raise UNetPlusPlusError(
                f"Model archive {archive.name} unpacks to {total} bytes, more than allowed."
            )
        dest.mkdir()
        try:
            zf.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise UNetPlusPlusError(f"Model archive {archive.name} is corrupt: {exc}.") from exc
    if (dest / MANIFEST_FILENAME).is_file():
        root = dest
    else:
        folders = [p for p in dest.iterdir() if (p / MANIFEST_FILENAME).is_file()]
        if len(folders) != 1:
            raise UNetPlusPlusError(
                f"Model archive {archive.name} must hold one {MANIFEST_FILENAME}, at its root or"
                " in a single top-level folder."
            )
        root = folders[0]
    root.rename(package)


def _move_into_place(package: Path, target: Path, staging: Path) -> None:
    """Rename the staged package to ``target``; an older copy is swapped out, not merged."""
    if not target.exists():
        package.rename(target)
        return
    old = staging / "previous"
    target.rename(old)
    try:
        package.rename(target)
    except OSError:
        old.rename(target)
        raise

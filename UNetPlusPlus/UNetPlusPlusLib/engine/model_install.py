"""Installing a model package into the user cache from a folder, a ``model.json``, a ``.zip``
or an http(s) URL.

Checksums and the weights (against the network) are verified before anything reaches the
cache, and the package moves into place with a rename, so a failed install leaves the cache as
it was. ``registry`` re-exports :func:`install_model`.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import urllib.parse
import warnings
import zipfile
from pathlib import Path, PurePosixPath
from typing import Optional, Union

from UNetPlusPlusLib.engine.manifest import (
    MANIFEST_FILENAME,
    ModelManifest,
    open_weights,
    sha256_file,
)
from UNetPlusPlusLib.engine.model_download import DOWNLOAD_TIMEOUT_S, Progress, download
from UNetPlusPlusLib.engine.model_search import builtin_names, builtin_tasks, user_cache_dir
from UNetPlusPlusLib.engine.package_files import check_folder_files
from UNetPlusPlusLib.engine.weights_fit import check_weights_fit
from UNetPlusPlusLib.errors import ChecksumError, UNetPlusPlusError
from UNetPlusPlusLib.write_failures import CAUSES, text_reason

PathLike = Union[str, "os.PathLike[str]"]

MAX_MANIFEST_BYTES = 64 << 20  # a model.json (the largest shipped one is 0.6 MB)
MAX_UNPACKED_BYTES = 8 << 30  # refuse archives that unpack to more than 8 GiB (zip bombs)
TRAINING_STATE = {"checkpoint", "cache"}  # folders of a training output left out of an install


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
            reason = _copy_reason(exc, cache)
            raise UNetPlusPlusError(f"Cannot install the model from {source}: {reason}.") from exc
        if manifest.name in builtin_names():
            raise UNetPlusPlusError(
                f"Model {source} is named {manifest.name!r}, like a shipped model; it is not "
                "installed, so the shipped one stays as it is. Retrain or rename it with "
                "`unetpp train --name NEW_NAME ...`."
            )
        if manifest.name in builtin_tasks() and manifest.task != manifest.name:
            raise UNetPlusPlusError(  # `--task liver` matches a model's name first
                f"Model {source} is named {manifest.name!r}, the task of a shipped model, but "
                f"segments {manifest.task!r}: `--task {manifest.name}` would run it instead. It "
                "is not installed; retrain or rename it with `unetpp train --name NEW_NAME ...`."
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


def _copy_reason(exc: OSError, cache: Path) -> str:
    """Why staging the package failed, in words: shutil.copytree raises one shutil.Error
    listing (source, target, message) per file, which reached the user as that raw list with
    the hidden staging folder's paths (a full disk, tester fresh30)."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list):
        messages = [str(item[-1]) for item in exc.args[0] if isinstance(item, tuple) and item]
        cause = next((text_reason(m) for m in messages if text_reason(m)), None)
        if cause:
            return f"{cause} (in {cache}); nothing was installed"
        return f"{len(messages)} file(s) could not be copied into {cache}; nothing was installed"
    if exc.errno in CAUSES:
        return f"{CAUSES[exc.errno]} (in {cache}); nothing was installed"
    return str(exc)


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
        download(url, manifest_path, progress, timeout, MAX_MANIFEST_BYTES)
        _check_sha256(manifest_path, expected_sha256, "Model manifest")
        manifest = ModelManifest.load(manifest_path)
        weights_url = urllib.parse.urljoin(url, urllib.parse.quote(manifest.weights))
        download(weights_url, package / manifest.weights, progress, timeout)
        return
    archive = staging / "package.zip"
    download(url, archive, progress, timeout)
    if not zipfile.is_zipfile(archive):
        raise UNetPlusPlusError(f"Download from {url} is not a .zip model package.")
    _check_sha256(archive, expected_sha256, "Model archive", shown=url)  # not "package.zip"
    _unpack_zip(archive, staging / "unpacked", package)


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

"""A failed training leaves no half-written model folder.

:func:`remove_on_failure` wraps a training run: if the run raises (a user error, a bug,
Ctrl-C, SIGTERM) and the output folder did not exist before it, the folder is removed, and so
are the parent folders the run created for it (``-o new/sub/model``), unless it already holds a
checkpoint (``checkpoint/``), which is kept so that ``--resume`` can continue; that is said on
stderr. A folder that existed before the run is never removed.

:func:`check_output_folder` runs first of all: the output must not be a file, and a folder that
already holds a run (model.json, plan.json or ``checkpoint/``) is only reused with ``--resume``
(continue it) or ``--overwrite`` (replace it). :func:`check_outside_dataset` runs before it:
the output folder (and ``--cache-dir``) must not be the dataset folder or inside it, where
plan.json, train.log and ``cache/`` would be written among the cases. The reverse, a dataset
inside the output folder (``unetpp train proj/data -o proj``), is allowed: the run writes only
its own names there and removes no folder it did not create; but not a dataset inside the
folders the run fills and replaces (the cache, ``checkpoint/``).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

from ..cli_outputs import resolve_path
from ..errors import UNetPlusPlusError
from ..write_failures import CAUSES, disk_full, text_reason
from .checkpoint import CHECKPOINT_DIR

# What a run leaves in its folder: the model package, the plan (also of --plan-only), the
# checkpoint (kept after a failure for --resume).
RUN_FILES = ("model.json", "plan.json", CHECKPOINT_DIR)


def check_output_folder(out_dir: Union[str, Path], resume: bool, overwrite: bool) -> None:
    """Refuse an output that is a file, or a folder holding an earlier run unless ``resume`` or
    ``overwrite``; also refuse both flags at once. Raises :class:`UNetPlusPlusError`."""
    if not str(out_dir).strip():  # `-o "$OUT"` with OUT unset: not the current folder
        raise UNetPlusPlusError("The training output (-o) is an empty name; give a folder.")
    out = Path(out_dir).expanduser()
    resolve_path(out, "The training output (-o)")  # a link loop: one error, not an OSError later
    if resume and overwrite:
        raise UNetPlusPlusError(
            "--resume continues the run in the output folder and --overwrite replaces it; "
            "give one of them."
        )
    if out.exists() and not out.is_dir():
        raise UNetPlusPlusError(f"The training output {out} is a file; give a folder (-o).")
    parent = next((p for p in out.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UNetPlusPlusError(f"Cannot create the training output {out}: {parent} is a file.")
    _probe_writable(out if out.is_dir() else parent, out)
    if resume or overwrite or not out.is_dir():
        return
    found = [name for name in RUN_FILES if (out / name).exists()]
    if found:
        raise UNetPlusPlusError(
            f"{out} already holds a training run ({', '.join(found)}); continue it with "
            "--resume, replace it with --overwrite, or give another folder (-o)."
        )


def check_cache_folder(cache_dir: Union[str, Path, None]) -> None:
    """Refuse a ``--cache-dir`` that cannot be a folder (a file, a file above it, a place that
    takes no folder), before any work: it ended the run, after the dataset had been read and
    planned, as "internal error (FileExistsError ...)" (tester fresh30).
    Raises :class:`UNetPlusPlusError`."""
    if cache_dir is None:
        return
    if not str(cache_dir).strip():
        raise UNetPlusPlusError("The cache folder (--cache-dir) is an empty name; give a folder.")
    cache = Path(cache_dir).expanduser()
    if cache.exists() and not cache.is_dir():
        raise UNetPlusPlusError(f"The cache folder (--cache-dir) {cache} is a file; give a folder.")
    parent = next((p for p in cache.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UNetPlusPlusError(
            f"Cannot create the cache folder (--cache-dir) {cache}: {parent} is a file."
        )
    _probe_writable(cache if cache.is_dir() else parent, cache, "the cache folder", "--cache-dir")


def check_outside_dataset(
    data_dir: Union[str, Path], out_dir: Union[str, Path], cache_dir: Union[str, Path, None]
) -> None:
    """Refuse ``-o`` or ``--cache-dir`` equal to or inside ``data_dir``, and ``data_dir`` equal
    to or inside the cache or ``OUT_DIR/checkpoint``, with symbolic links resolved; one line
    naming both folders. An empty ``out_dir`` is left to :func:`check_output_folder`.
    Raises :class:`UNetPlusPlusError`."""
    if not str(out_dir).strip() or not str(data_dir).strip():
        return
    data = resolve_path(Path(data_dir).expanduser(), "The dataset folder")
    out = resolve_path(Path(out_dir).expanduser(), "The training output (-o)")
    cache = out / "cache"
    if cache_dir is not None and str(cache_dir).strip():
        cache = resolve_path(Path(cache_dir).expanduser(), "The cache folder (--cache-dir)")
    for what, folder in (("training output (-o)", out), ("cache folder (--cache-dir)", cache)):
        if folder == data or data in folder.parents:
            where = "is the dataset folder" if folder == data else "lies inside the dataset"
            raise UNetPlusPlusError(
                f"The {what} {folder} {where} {data}: plan.json, train.log and the cache would "
                "be written among the cases; give a folder outside the dataset."
            )
    for folder in (cache, out / CHECKPOINT_DIR):
        if folder == data or folder in data.parents:
            raise UNetPlusPlusError(
                f"The dataset {data} lies inside {folder}, which training fills and replaces; "
                "move the dataset, or give another output folder (-o) or --cache-dir."
            )


def _probe_writable(
    folder: Optional[Path], out: Path, what: str = "the training output", option: str = "-o"
) -> None:
    """Make and remove one empty folder in ``folder`` (``out`` itself, or the nearest existing
    parent): ``-o`` in a read-only place, without permission or under /proc read the whole
    dataset and then ended with an internal error (tester 12)."""
    if folder is None:
        return
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".unetpp-probe-", dir=folder))
    except OSError as error:
        named = f"{what} ({option})" if option != "-o" else what
        raise UNetPlusPlusError(
            f"Cannot create {named} {out}: {folder} does not accept new folders "
            f"({error.strerror or error}); give another folder ({option})."
        ) from error


@contextmanager
def remove_on_failure(out_dir: Union[str, Path]) -> Iterator[None]:
    """Remove ``out_dir`` when the body raises, if this run created it and left no checkpoint,
    and then the parent folders that did not exist before the run, if they are empty (a SIGTERM
    of ``unetpp train -o new/sub/model`` said "nothing was written" and left ``new/sub``)."""
    out = Path(out_dir)
    created = not out.exists()
    new_parents = [p for p in out.absolute().parents if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        if created and out.exists():
            if (out / CHECKPOINT_DIR).is_dir():
                how = "stopped" if isinstance(sys.exc_info()[1], KeyboardInterrupt) else "failed"
                print(
                    f"warning: training {how}; {out / CHECKPOINT_DIR} is kept: continue with "
                    "--resume, or delete the folder",
                    file=sys.stderr,
                )
            else:
                shutil.rmtree(out, ignore_errors=True)
                for parent in new_parents:
                    try:
                        parent.rmdir()  # only if empty: nothing else is touched
                    except OSError:
                        break
        raise


@contextmanager
def write_failures_as_errors(out_dir: Union[str, Path]) -> Iterator[None]:
    """A file of the run that cannot be written for want of space or permission (a full disk,
    a quota, ``ulimit -f``) stops the run with one UNetPlusPlusError saying why. numpy's
    ``np.save`` raises an OSError without errno ("13824 requested and 12256 written"),
    safetensors a SafetensorError holding "I/O error: File too large (os error 27)": each
    ended the run as "internal error ... please report it" (tester fresh30). Other errors
    pass unchanged. Use it inside :func:`remove_on_failure`: a full disk is measured before
    the cleanup frees it."""
    try:
        yield
    except Exception as error:
        reason = _write_reason(error, Path(out_dir))
        if reason is None:
            raise
        raise UNetPlusPlusError(
            f"Training stopped: a file of the run could not be written ({reason}). Free some "
            "space (or lift the limit), or give -o (and --cache-dir) on another disk."
        ) from error


def _write_reason(error: Exception, out: Path) -> Optional[str]:
    """Why a write of the run failed, in words, or None when ``error`` is not such a failure."""
    if isinstance(error, OSError) and error.errno in CAUSES:
        return CAUSES[error.errno]
    text = str(error)
    if not isinstance(error, OSError) and "I/O error" not in text:
        return None
    folder = next((p for p in (out, *out.absolute().parents) if p.is_dir()), out)
    short = " requested and " in text and text.endswith(" written")  # numpy's tofile
    if short:
        return disk_full(folder) or f"the system wrote only part of a file: {text}"
    return text_reason(text) or (disk_full(folder) if isinstance(error, OSError) else None)

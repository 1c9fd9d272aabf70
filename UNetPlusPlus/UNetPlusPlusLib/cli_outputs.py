"""Output files of the command line: checked before any work, written all or none.

:func:`check_output_paths` runs before the model or the inputs are read: each output's folder
must exist or be creatable and be writable, the output must not be a folder, an input or another
output. :class:`OutputSet` then writes every output to a temporary file in its target folder and
renames them all into place only once all were written; on any failure it removes what it wrote
(temporary files and the folders it created), so a failed run leaves no partial output. Files
get the permissions the user's umask gives (``tempfile.mkstemp`` would leave them 0600).

Never losing a user's edits: every written file carries a stamp (``output_stamp.py``). An
existing output is replaced only if it is an unchanged output of ours (a valid stamp); anything
else (a segmentation corrected in Slicer and saved again, another program's file, a stamped file
changed since) is refused before any work unless ``--overwrite``, and checked again just before
the renames, so a file saved there while the run was working is refused too. Two runs writing
the same path: each rename is atomic, so a reader sees one whole file; the later rename wins.

An output path that is a symbolic link is written through: the file the link points to (through
any chain of links) is the one checked, staged beside and atomically replaced, and the link is
kept, as a shell's ``>`` or ``cp`` would do. A link to nothing (dangling) is one clear error,
never a file created where a stale link points; an output that exists but is not a regular file
(a device such as ``/dev/null``, a pipe) is refused, since the rename would replace it.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import UNetPlusPlusError
from .output_folders import CreatedFolders, folder_error, names_folder
from .output_stamp import kind_of, stamp_file, stamp_state
from .write_failures import disk_full, plain_reason, text_reason, writer_output
from .written_check import incomplete_reason


def current_umask() -> int:
    """The process umask (read by setting and restoring it; the CLI is single-threaded here)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The notice for an existing file that ``--overwrite`` replaces although it is not an unchanged
#: output of ours, said before any work (a cancelled or failed run leaves the old file as it was).
REPLACED_WARNING = (
    "{option} {output} already exists and is not an unchanged unetpp output; --overwrite "
    "replaces it with this run's result, so whatever it holds (a segmentation corrected by "
    "hand, for example) will be lost."
)

#: The same notice when the output path is a symbolic link: the link's target is replaced.
LINK_REPLACED_WARNING = (
    "{option} {output} is a symbolic link to {target}, which is not an unchanged unetpp output; "
    "--overwrite replaces {target} with this run's result (the link is kept), so whatever "
    "{target} holds (a segmentation corrected by hand, for example) will be lost."
)

#: The refusal for an existing file that is not an unchanged output of ours (no --overwrite).
KEEP_EDITS_ERROR = (
    "{option} {output} already exists and {why}; it may hold edits (a segmentation corrected "
    "by hand and saved from Slicer, for example), so it is kept. Pass --overwrite to replace "
    "it, or choose another path."
)


def edited_reason(path: Path) -> Optional[str]:
    """Why the existing file at ``path`` may not be replaced without ``--overwrite``, or None
    when it is an unchanged output of ours (valid stamp: ``output_stamp.py``) or absent."""
    if not path.is_file():
        return None
    try:
        state = stamp_state(path)
    except OSError as error:
        return f"cannot be read to check it ({error.strerror or error})"
    if state == "valid":
        return None
    if state == "changed":
        return "has changed since unetpp wrote it"
    return "was not written by unetpp (or was saved again since)"


def _nearest_existing(path: Path, what: str = "") -> Path:
    """The deepest existing folder of ``path``. A missing folder that is a symbolic link to
    nothing is one error naming ``what``: the run created no folder through it and failed
    only after the whole run with "file exists" (tester 15). Raises UNetPlusPlusError."""
    while not path.exists() and path != path.parent:
        if path.is_symlink():
            raise UNetPlusPlusError(
                f"Cannot write {what}: the folder {path} is a symbolic link to "
                f"{os.readlink(path)}, which does not exist; create that folder, fix the link "
                "or choose another path."
            )
        path = path.parent
    return path


def resolve_path(path: Path, what: str) -> Path:
    """``path.resolve()``, with a symbolic-link loop (``a -> b -> a``) as one clear error naming
    ``what`` (an option or "Image") instead of pathlib's RuntimeError (OSError from Python
    3.13), which reached users as an internal error. Raises :class:`UNetPlusPlusError`."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        raise UNetPlusPlusError(
            f"{what} {path}: a symbolic link in this path points back to itself (a link loop); "
            "give the real file or fix the link."
        ) from None


def write_target(path: Path, what: str) -> Path:
    """The file that writing ``path`` replaces: ``path`` itself, or, when ``path`` is a
    symbolic link, the file it points to (resolved through every link, as an absolute path).
    ``what`` names the output in messages (``"-o x.seg.nrrd"``). Raises
    :class:`UNetPlusPlusError` for a link loop, a link to nothing (dangling) or to a file of
    another type (the format is chosen by the name given, so ``a.seg.nrrd -> b.nii.gz`` would
    put a NRRD file under a NIfTI name)."""
    if not path.is_symlink():
        return path
    target = resolve_path(path, what)
    if not target.exists():
        raise UNetPlusPlusError(
            f"{what} is a symbolic link to {target}, which does not exist; nothing was written. "
            "Give the file itself, fix the link, or remove it."
        )
    if _file_type(target) != _file_type(path):
        raise UNetPlusPlusError(
            f"{what} is a symbolic link to {target}, a file of another type; the output would "
            "not be in the format its name says. Give the file itself or another path."
        )
    return target


def _file_type(path: Path) -> tuple[bool, str]:
    """What picks an output's format: a segmentation (``.seg.nrrd``) or not, and the stamp
    kind (``output_stamp.kind_of``) or else the last extension, all in lower case."""
    name = path.name.lower()
    return name.endswith(".seg.nrrd"), kind_of(path) or path.suffix.lower()


def check_output_paths(
    inputs: Sequence[str], outputs: dict[str, Optional[str]], overwrite: bool = False
) -> list[str]:
    """Refuse outputs that cannot be written, before any work.

    ``outputs`` maps an option name (``-o``, ``--preview``, ...) to its path or None. An
    existing file is replaced silently when it is an unchanged output of ours (valid stamp);
    any other existing file is refused unless ``overwrite``, and then named in the returned
    warnings (one per such file). A symbolic link is checked as the file it points to
    (:func:`write_target`). Raises :class:`UNetPlusPlusError` naming the option
    and the path; a folder given as an output gets :func:`.output_folders.folder_error`.
    """
    resolved_inputs = {resolve_path(Path(p).expanduser(), "Image") for p in inputs}
    seen: dict[Path, str] = {}
    replaced = []
    for option, output in outputs.items():
        if not output:
            continue
        if names_folder(output):
            raise UNetPlusPlusError(folder_error(option, output, inputs) + ".")
        path = Path(output).expanduser()
        resolved = resolve_path(path, option)
        if resolved in resolved_inputs:
            raise UNetPlusPlusError(f"Refusing to overwrite the input file {output} ({option}).")
        if resolved in seen:
            raise UNetPlusPlusError(
                f"{seen[resolved]} and {option} both name {output}; give each output its own file."
            )
        seen[resolved] = option
        target = write_target(path, f"{option} {output}")
        named = output if target == path else f"{output} (a link to {target})"
        if target.exists() and not target.is_file():
            raise UNetPlusPlusError(
                f"{option} {named} exists and is not a regular file (a device or a pipe); "
                "give a file name."
            )
        if target.exists() and not os.access(target, os.W_OK):
            raise UNetPlusPlusError(f"{option} {named} exists and is not writable.")
        why = edited_reason(target)
        if why and not overwrite:
            raise UNetPlusPlusError(KEEP_EDITS_ERROR.format(option=option, output=named, why=why))
        if why and target != path:
            replaced.append(
                LINK_REPLACED_WARNING.format(option=option, output=output, target=target)
            )
        elif why:
            replaced.append(REPLACED_WARNING.format(option=option, output=output))
        folder = _nearest_existing(target.parent, f"{option} {output}")
        if not folder.is_dir():
            raise UNetPlusPlusError(
                f"Cannot create the folder for {option} {output}: {folder} is a file."
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UNetPlusPlusError(
                f"Cannot write {option} {output}: no write permission in {folder}."
            )
        _probe_folder(option, output, folder)
    return replaced


def _probe_folder(option: str, output: str, folder: Path) -> None:
    """Create and remove a file in ``folder``: ``os.access`` says yes for /proc, /sys and
    read-only mounts, where writing still fails. Raises :class:`UNetPlusPlusError`."""
    try:
        handle, name = tempfile.mkstemp(prefix=".unetpp-probe-", dir=folder)
        os.close(handle)
        os.unlink(name)
    except OSError as error:
        cause = {errno.ENOENT: "it is a system folder that holds no files"}
        raise UNetPlusPlusError(
            f"Cannot write {option} {output}: the folder {folder} does not accept new files, "
            f"because {cause.get(error.errno) or plain_reason(error)}; choose another folder."
        ) from None


# Companion files some writers add beside a header (MetaImage .mhd + .raw/.zraw, NRRD .nhdr);
# the temporary name always carries the lower-case single-file extension, but any companion is
# removed all the same so that no stray file survives.
_COMPANIONS = (".mhd", ".raw", ".zraw", ".nhdr", ".img", ".hdr")


def temporary_suffix(path: Path) -> str:
    """The extension to give a temporary file for ``path``, in lower case: ITK picks the format
    (and NIfTI accepts the name) by the lower-case extension: ``X.MHA`` -> ``.mha``,
    ``X.NII.GZ`` -> ``.nii.gz``, ``s.Seg.Nrrd`` -> ``.seg.nrrd``."""
    return "".join(path.suffixes[-2:]).lower() or ".tmp"


def _remove_with_companions(temporary: Path) -> None:
    stem = temporary.name.split(".", 2)  # ".unetpp-XXXX.ext" -> ["", "unetpp-XXXX", "ext"]
    base = temporary.parent / ("." + stem[1]) if len(stem) > 1 else temporary
    for path in [temporary] + [base.with_name(base.name + ext) for ext in _COMPANIONS]:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError:
            pass


class OutputSet:
    """Stage outputs as temporary files beside their targets; commit renames all of them.

    Use as a context manager: leaving the block by an exception removes every staged file and
    every folder created for them; :meth:`commit` must be called for anything to appear. Each
    staged file gets our stamp (``output_stamp.py``). Unless ``overwrite``, :meth:`commit`
    first checks that no target has become a file without a valid stamp since the run began.
    """

    def __init__(self, overwrite: bool = False) -> None:
        self._overwrite = overwrite
        self._staged: list[tuple[Path, Path]] = []  # (temporary, target)
        self._created = CreatedFolders()
        self._mode = 0o666 & ~current_umask()

    def stage(self, target: str, write: Callable[[Path], object]) -> None:
        """Write ``target`` through ``write(temporary_path)``; it appears on :meth:`commit`.
        A symbolic link is written through (:func:`write_target`): the temporary file goes
        beside the file it points to, which the commit replaces; the link is kept."""
        path = Path(target).expanduser()
        suffix = temporary_suffix(path)  # the writer picks the format by the lower-case suffix
        path = write_target(path, target)  # the link's own name keeps the suffix above
        temporary = path  # until the temporary file exists
        try:
            self._created.make(path.parent)
            handle, name = tempfile.mkstemp(prefix=".unetpp-", suffix=suffix, dir=path.parent)
            os.close(handle)
            temporary = Path(name)
            self._staged.append((temporary, path))
            said = writer_output(lambda: write(temporary))  # ITK's own stderr text: ours
            os.chmod(temporary, self._mode)
        except OSError as error:
            raise self._failure(target, path, plain_reason(error)) from None
        except UNetPlusPlusError as error:  # write_labelmap's, naming the temporary file
            text = str(error)
            if f"{temporary}: " not in text:
                raise
            reason = text.split(f"{temporary}: ", 1)[1].strip().rstrip(".")
            said = text_reason(f"{error.__cause__} {reason}")  # "File too large", ITK's text
            reason = said or reason.replace(str(temporary), target)
            raise self._failure(target, path, reason) from None
        except RuntimeError as error:  # SimpleITK/ITK writer errors (disk full, bad name)
            text = str(error).strip()
            last = (text.splitlines()[-1:] or [type(error).__name__])[0].strip().rstrip(".")
            raise self._failure(target, path, text_reason(text) or last) from None
        if said:  # ITK's NIfTI writer: "NWAD: wrote only N of M bytes", and no exception
            raise self._failure(target, path, f"the writer reports: {said.rstrip('.')}")
        if temporary.stat().st_size == 0:
            raise self._failure(target, path, "the writer produced an empty file")
        short = incomplete_reason(temporary)  # writers that stop silently (written_check.py)
        if short:
            raise self._failure(target, path, f"the file written is incomplete ({short})")
        try:  # the mark of an unchanged output of ours, for the next run (output_stamp.py)
            if kind_of(path) is not None:
                stamp_file(temporary)
        except OSError as error:  # disk full
            raise self._failure(target, path, plain_reason(error)) from None
        except ValueError as error:  # a file not in its format
            raise UNetPlusPlusError(f"Cannot write {target}: {error}.") from None

    def staged(self, target: str) -> Path:
        """The temporary file staged for ``target`` (written and stamped, not yet renamed);
        raises KeyError if ``target`` was not staged."""
        path = write_target(Path(target).expanduser(), target)
        for temporary, staged in self._staged:
            if staged == path:
                return temporary
        raise KeyError(target)

    @staticmethod
    def _failure(target: str, path: Path, reason: str) -> UNetPlusPlusError:
        """One error for a failed write of ``target`` (written at ``path``): a full disk is
        said as such (with the free space) whatever the writer reported, since a writer that
        ran out of space may report anything or nothing (write_failures.py)."""
        full = disk_full(path.parent)
        if full or reason == "the disk is full":
            reason = full or reason
            return UNetPlusPlusError(
                f"Cannot write {target}: {reason}; nothing was written. Free some space or "
                "choose another folder."
            )
        return UNetPlusPlusError(f"Cannot write {target}: {reason}.")

    def commit(self) -> None:
        """Rename every staged file onto its target (each rename is atomic).

        Raises :class:`UNetPlusPlusError` if a rename fails (the rest is then removed, and so
        are the files renamed before that had no file of their name to replace), or,
        before any rename, if a target became a file that is not an unchanged output of ours
        while the run was working (e.g. saved from Slicer) and ``overwrite`` is off."""
        for _, target in self._staged if not self._overwrite else []:
            why = edited_reason(target)
            if why:
                raise UNetPlusPlusError(
                    f"{target} was saved by another program while this run was working (it "
                    f"{why}); nothing was written. Run again with --overwrite to replace it, or "
                    "choose another path."
                )
        renamed: list[Path] = []  # new files (no file of that name before), for a rollback
        for temporary, target in self._staged:
            new = not target.exists()
            try:
                os.replace(temporary, target)
            except OSError as error:
                for path in renamed:  # so that the folders created for them can go too
                    path.unlink(missing_ok=True)
                raise UNetPlusPlusError(f"Cannot write {target}: {plain_reason(error)}.") from None
            if new:
                renamed.append(target)
        self._staged.clear()
        self._created.keep()

    def abort(self) -> None:
        """Remove staged files and the folders created for them (deepest first)."""
        for temporary, _ in self._staged:
            _remove_with_companions(temporary)
        self._staged.clear()
        self._created.remove()

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(self, *exc_info) -> None:
        self.abort()  # after commit() there is nothing left to remove

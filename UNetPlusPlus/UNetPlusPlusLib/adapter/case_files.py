"""The files of one exported training case, written all or none.

``export_training_case`` wrote each file in place, one after the other: when the segmentation
could not be written, the image stayed, a case without labels; when the disk filled up
(reproduced on a 100 kB tmpfs, and under ``ulimit -f``) Slicer's segmentation writer left a
truncated or empty ``.seg.nrrd`` and reported success, and the record then failed with a raw
"[Errno 28] No space left on device", leaving the image, empty labels and an empty record.

:class:`CaseFiles` writes each file under its own name into a hidden folder of its own in the
export folder (``.unetpp-export-XXXXXXXX/``: the trainer's case discovery skips names that
start with a dot; one file system, so the final renames are atomic), checks that each is whole
(:func:`..written_check.incomplete_reason`: Slicer's writers do not always say), and renames
them into place only when every one was written; a file it replaces is moved aside first and
put back if a later rename fails. On any failure it removes that folder, with the
``TempWrite<name>`` folder Slicer's volume writer makes beside the file it writes
(``vtkMRMLVolumeArchetypeStorageNode::UpdateFileList``; for a hidden file name that would be
``TempWrite`` in the export folder itself, which the writer deletes first), and the folders
it created.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from ..errors import UNetPlusPlusError
from ..output_folders import CreatedFolders
from ..write_failures import disk_full, plain_reason
from ..written_check import incomplete_reason

PREFIX = ".unetpp-export-"


class CaseFiles:
    """Stage a case's files in ``folder``; :meth:`commit` renames them all into place.

    Use as a context manager: leaving the block without :meth:`commit` (an exception) removes
    every temporary and every folder created; a commit that fails half-way puts back what it
    had replaced and removes what it had added. Errors are :class:`UNetPlusPlusError`s that
    end "nothing was written"."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._created = CreatedFolders()
        self._staged: list[tuple[Path, Path]] = []  # (temporary, target)
        self._stage: Optional[Path] = None  # the hidden folder of the temporaries

    def make_folder(self) -> None:
        """Create the export folder (and its missing parents); they go again on failure."""
        try:
            self._created.make(self.folder)
        except OSError as error:
            raise self._error(self.folder, plain_reason(error)) from None

    def write(self, target: Path, write: Callable[[Path], object]) -> Path:
        """Write ``target`` through ``write(temporary)`` (False: the writer failed); returns
        the temporary path. Raises :class:`UNetPlusPlusError` naming ``target``."""
        try:
            if self._stage is None:
                self._stage = Path(tempfile.mkdtemp(prefix=PREFIX, dir=self.folder))
            temporary = self._stage / target.name
            self._staged.append((temporary, target))
            written = write(temporary)
        except OSError as error:
            raise self._error(target, plain_reason(error)) from None
        size = temporary.stat().st_size if temporary.is_file() else 0
        short = "the writer produced an empty file" if size == 0 else None
        short = short or (incomplete_reason(temporary) and "the file written is incomplete")
        if written is False or short:
            raise self._error(target, short or "the writer reported an error (see the log)")
        return temporary

    def commit(self) -> None:
        """Rename every staged file onto its target. Raises :class:`UNetPlusPlusError` (and
        restores the folder as it was) if a rename fails."""
        moved: list[tuple[Path, Path]] = []  # (old file moved aside, its target)
        added: list[Path] = []
        try:
            for temporary, target in self._staged:
                if target.is_dir() and not target.is_symlink():  # never moved, never removed
                    raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(target))
                if target.exists() or target.is_symlink():
                    aside = temporary.with_name(temporary.name + ".replaced")
                    os.replace(target, aside)
                    moved.append((aside, target))
                os.replace(temporary, target)
                added.append(target)
        except OSError as error:
            for path in added:
                path.unlink(missing_ok=True)
            for aside, path in moved:
                os.replace(aside, path)
            raise self._error(target, plain_reason(error)) from None
        self._created.keep()
        self.abort()  # the staging folder, with the files moved aside

    def abort(self) -> None:
        """Remove the staging folder (temporaries, Slicer's TempWrite folders, files moved
        aside by a finished commit) and the folders made for the case."""
        if self._stage is not None:
            shutil.rmtree(self._stage, ignore_errors=True)
            self._stage = None
        self._staged.clear()
        self._created.remove()

    def _error(self, target: Path, reason: str) -> UNetPlusPlusError:
        full: Optional[str] = disk_full(self.folder) if self.folder.exists() else None
        advice = " Free some space or choose another folder." if full else ""
        return UNetPlusPlusError(
            f"Could not write {target}: {full or reason}; nothing was written.{advice}"
        )

    def __enter__(self) -> CaseFiles:
        return self

    def __exit__(self, *exc_info) -> None:
        self.abort()  # after commit() there is nothing left to remove

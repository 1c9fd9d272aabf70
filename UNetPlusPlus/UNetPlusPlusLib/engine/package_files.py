"""What a model package folder may hold before ``models install`` copies it (tester 16).

The copy follows links (``shutil.copytree(symlinks=False)``), so a package whose
``weights.safetensors``, or any other file, was a link to ``/dev/zero`` was copied without end:
2.4 GB in 4 s into the model cache, until the disk was full. :func:`check_folder_files` refuses,
before anything is copied, an entry that is not a regular file or a folder (a device, a FIFO, a
socket, a dangling link), a link to a folder (whose tree the copy would enter, loops included),
and a folder holding more than a limit in all (an archive's limit, the same for a folder).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection
from pathlib import Path

from ..errors import UNetPlusPlusError


def check_folder_files(source: Path, skipped: Collection[str], max_bytes: int) -> None:
    """Raise UNetPlusPlusError when the package folder ``source`` (without the top-level
    entries named in ``skipped``) holds a special file, a dangling link, a link to a folder or
    more than ``max_bytes`` bytes of files (links are measured by their targets)."""
    total = 0
    for folder, dirs, files in os.walk(source):  # links to folders are listed, not entered
        top = Path(folder) == source
        dirs[:] = [d for d in dirs if not (top and d in skipped)]
        for name in [*dirs, *(f for f in files if not (top and f in skipped))]:
            path = Path(folder) / name
            shown = path.relative_to(source)
            if path.is_symlink() and path.is_dir():
                raise UNetPlusPlusError(
                    f"Model source {source} holds {shown}, a link to a folder; copy the files "
                    "themselves into the package."
                )
            try:
                info = path.stat()
            except OSError as exc:
                raise UNetPlusPlusError(
                    f"Model source {source} holds {shown}, which cannot be read "
                    f"({exc.strerror or exc}); a dangling link?"
                ) from exc
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
            elif not stat.S_ISDIR(info.st_mode):
                raise UNetPlusPlusError(
                    f"Model source {source} holds {shown}, which is not a regular file (a "
                    "device, a pipe or a socket, or a link to one); refused."
                )
    if total > max_bytes:
        raise UNetPlusPlusError(
            f"Model source {source} holds {total} bytes of files, more than allowed "
            f"({max_bytes}); a model package is its model.json and weights."
        )

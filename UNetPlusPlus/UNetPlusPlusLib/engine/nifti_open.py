"""Opening a NIfTI file as ITK's reader (znzlib) does: gzip by its magic bytes, not its name.

Moved out of :mod:`.nifti_check`, so that :mod:`.nifti_spacing` reads headers with it too.
"""

from __future__ import annotations

from pathlib import Path

from .gzip_stream import GzipStream
from .inflate_stream import GZIP_MAGIC


def nifti_opener(path: Path):
    """:class:`.gzip_stream.GzipStream` for a ``.gz`` name whose first bytes are gzip's magic,
    else plain ``open``: ITK's NIfTI reader (znzlib) reads a plain file named ``.nii.gz``,
    which the check had refused as a broken gzip (tester 10). A file named ``.nii`` is read
    plain, as ITK reads it."""
    if not path.name.lower().endswith(".gz"):
        return open
    try:
        with open(path, "rb") as stream:
            magic = stream.read(2)
    except OSError:
        return _gzip  # the read that follows says why
    return _gzip if magic == GZIP_MAGIC or len(magic) < 2 else open


def _gzip(path: Path, mode: str) -> GzipStream:
    """A NIfTI file's gzip stream: bytes after its last member that are not zero padding are
    skipped, as ITK's reader (zlib's gzread) skips them, and warned about (_checked_pass)."""
    return GzipStream(path, mode, trailing="ignore")


def header_bytes(header: Path) -> bytes:
    """The first 348 bytes of a NIfTI-1 header file (``.nii``, ``.nii.gz``, ``.hdr``). Raises
    OSError, EOFError or zlib.error."""
    with nifti_opener(header)(header, "rb") as stream:
        return stream.read(348)

"""Is a file a writer has just written whole? Checked from its header and its end, in O(1).

ITK's writers do not always fail when the disk fills up (or the file size limit, ``ulimit -f``,
is reached): on a 100 kB tmpfs and under ``RLIMIT_FSIZE``, ``sitk.WriteImage`` left a
truncated ``.nii.gz`` and ``.nrrd`` without an exception or a word, and a ``.nii`` with only
"NWAD: wrote only 648 of 9600 bytes" on stderr; the CLI then stamped and renamed the
truncated file into place and reported success, and Slicer's segmentation writer did the same
for an exported case. :func:`incomplete_reason` compares what the header promises with what
the file holds, without inflating it: the size of an uncompressed file, and the gzip trailer's
ISIZE (the inflated length mod 2^32; a truncated stream ends in compressed bytes instead, which
match by chance once in 2^32) of a compressed one. Formats it does not know pass.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Optional

from .errors import UNetPlusPlusError


def incomplete_reason(path: Path) -> Optional[str]:
    """Why the image file just written at ``path`` is incomplete ("it holds 8192 of its 9952
    bytes"), or None when it is whole or of a format not checked (PNG, MetaImage with a
    separate data file list, ...). Reads the header and the last bytes only."""
    from .engine.data_files import _header_parser  # here: they import numpy, which the CLI's
    # light commands (`unetpp models list`) must not (Testing/test_layering.py)

    name = path.name.lower()
    try:
        if name.endswith((".nii", ".nii.gz")):
            return _nifti(path, name.endswith(".gz"))
        if name.endswith(".nrrd") and not _nrrd_header_ends(path):
            return "it ends inside its header"
        parse = _header_parser(name)
        inflation = parse(path) if parse is not None else None
        if inflation is None or not inflation.gzip_format or inflation.expected is None:
            return None
        return _gzip_end(inflation.data, inflation.expected)
    except UNetPlusPlusError as error:  # a short uncompressed NRRD, a short MetaImage
        return "it is truncated" if "truncated" in str(error) else "it cannot be read back"
    except (OSError, EOFError, zlib.error, struct.error):
        return "it cannot be read back"


def _nifti(path: Path, compressed: bool) -> Optional[str]:
    opener = gzip.open if compressed else open
    with opener(path, "rb") as stream:  # type: ignore[operator]
        from .engine.nifti_check import _layout as nifti_layout

        layout = nifti_layout(stream.read(540))
    if layout is None:
        return "its NIfTI header cannot be read back"
    expected = layout.offset + layout.nbytes
    if compressed:
        return _gzip_end(path, expected)
    size = path.stat().st_size
    return None if size >= expected else f"it holds {size} of its {expected} bytes"


def _gzip_end(path: Path, expected: int) -> Optional[str]:
    """None when the gzip stream ending ``path`` says it inflates to ``expected`` bytes."""
    with open(path, "rb") as stream:
        stream.seek(-4, 2)
        isize = struct.unpack("<I", stream.read(4))[0]
    return None if isize == expected % (1 << 32) else "its compressed data end early"


def _nrrd_header_ends(path: Path) -> bool:
    """Whether the header of the single-file NRRD ``path`` ends (a blank line) in its first
    64 kB; a Slicer segmentation's header is a few kB."""
    with open(path, "rb") as stream:
        return b"\n\n" in stream.read(1 << 16)

"""Whether an NRRD file holds given voxels, told without decoding it all (no Slicer, no Qt).

An unrecorded case of an export folder (case_records.py) was read back whole with Slicer's
storage nodes to learn whether it holds the image being exported: about 0.6 s of CPU per BraTS
case (4 x 240x240x155 int16, gzip), in Slicer's main thread, for every case, to find at most a
few that match. :func:`same_voxels` instead streams the file's voxels (gzip or raw) and compares
them, chunk by chunk, with the array being exported: another image differs at its first
differing chunk (BraTS: where the brain starts, a few per cent of the file), and only a file
that holds the very same voxels is decoded to its end. It answers None whenever it cannot be
sure (a header it does not fully understand, a detached, damaged or truncated data file): the
caller then reads the case back with Slicer as before, so an unusual file costs time, never a
missed duplicate.

The header and its layout are the engine's (:func:`.nrrd_header.parse_nrrd_header`,
:func:`.compressed_voxels.nrrd_layout`: type, byte order, sizes), and gzip data are inflated by
the engine's :class:`.inflate_stream.InflateStream` (zlib-ng where installed; several gzip
members in a row, as ITK reads them; bytes after the data ignored, as ITK ignores them).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..engine.inflate_stream import GZIP_WBITS, InflateStream
from ..engine.nrrd_header import parse_nrrd_header

_HEADER_LIMIT = 1 << 16  # an exported volume's NRRD header is well under 1 kB
_CHUNK = 1 << 18  # voxel bytes compared at a time (and bytes of a raw file read)
#: the header fields read here; any other (a data file, a byte or line skip) gives None
_UNDERSTOOD = {
    "type",
    "dimension",
    "space",
    "sizes",
    "space directions",
    "kinds",
    "endian",
    "encoding",
    "space origin",
    "space units",
    "measurement frame",
    "content",
    "thicknesses",
    "spacings",
    "centerings",
}


def same_voxels(path: Path, voxels: np.ndarray) -> Optional[bool]:
    """Whether the NRRD file ``path`` holds exactly ``voxels`` (z, y, x; their type, shape and
    values, as Slicer would read them; a big-endian file is compared in its byte order): False
    at the first difference (type, shape or a data chunk), True after comparing every byte,
    None when it cannot tell (see the module's docstring). Reads at most the file; never raises
    for a bad file."""
    from ..engine.compressed_voxels import nrrd_layout  # with engine.sanity: 15 modules, lazily

    try:
        with open(path, "rb") as handle:
            header = parse_nrrd_header(handle.read(_HEADER_LIMIT))
            if header is None or header.data_offset is None:
                return None
            fields = header.fields
            kinds = fields.get("kinds", "domain domain domain").split()
            layout = nrrd_layout(fields)
            if (
                layout is None
                or not set(fields) <= _UNDERSTOOD
                or fields.get("encoding") not in ("gzip", "gz", "raw")
                or any(kind not in ("domain", "space") for kind in kinds)
            ):
                return None
            stored = layout.stored
            if voxels.dtype.newbyteorder("=") != stored.newbyteorder("="):
                return False
            if voxels.shape != layout.shape:
                return False
            expected = np.ascontiguousarray(voxels, dtype=stored)  # the file's byte order
            if fields["encoding"] == "raw":
                handle.seek(header.data_offset)
                return _same_data(lambda: handle.read(_CHUNK), expected)
        with InflateStream(path, header.data_offset, GZIP_WBITS, trailing="ignore") as stream:
            return _same_data(lambda: stream.read_some(_CHUNK), expected)
    except (OSError, ValueError, EOFError, zlib.error):  # EOFError: a truncated gzip stream
        return None


def _same_data(read: Callable[[], bytes], voxels: np.ndarray) -> Optional[bool]:
    """Compare the data that ``read`` gives (b"" at their end; at most :data:`_CHUNK` bytes at
    a time: background compresses a thousandfold, so a chunk of a gzip file can hold
    megabytes of voxels) with the bytes of ``voxels``; None when the data are longer or
    shorter than the voxels."""
    expected = memoryview(voxels).cast("B")
    done = 0
    data = read()
    while data:
        if done + len(data) > len(expected):
            return None  # more data than voxels: not a file this module understands
        if expected[done : done + len(data)].tobytes() != data:  # a copy, then memcmp:
            return False  # 15 times faster than comparing the memoryview itself
        done += len(data)
        data = read()
    return True if done == len(expected) else None

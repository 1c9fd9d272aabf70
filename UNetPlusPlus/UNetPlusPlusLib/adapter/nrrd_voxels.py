"""Whether an NRRD file holds given voxels, told without decoding it all (no Slicer, no Qt).

An unrecorded case of an export folder (case_records.py) was read back whole with Slicer's
storage nodes to learn whether it holds the image being exported: about 0.6 s of CPU per BraTS
case (4 x 240x240x155 int16, gzip), in Slicer's main thread, for every case, to find at most a
few that match. :func:`same_voxels` instead streams the file's voxels (gzip or raw) and compares
them, chunk by chunk, with the array being exported: another image differs at its first
differing chunk (BraTS: where the brain starts, a few per cent of the file), and only a file
that holds the very same voxels is decoded to its end. It answers None whenever it cannot be
sure (a header it does not fully understand, a detached or truncated data file, big-endian
data): the caller then reads the case back with Slicer as before, so an unusual file costs time,
never a missed duplicate.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Optional

import numpy as np

_HEADER_LIMIT = 1 << 16  # an exported volume's NRRD header is well under 1 kB
_CHUNK = 1 << 18  # bytes read, and voxel bytes compared, at a time
_TYPES = {
    np.dtype("i1"): ("signed char", "int8", "int8_t"),
    np.dtype("u1"): ("uchar", "unsigned char", "uint8", "uint8_t"),
    np.dtype("i2"): ("short", "short int", "signed short", "signed short int", "int16", "int16_t"),
    np.dtype("u2"): ("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
    np.dtype("i4"): ("int", "signed int", "int32", "int32_t"),
    np.dtype("u4"): ("uint", "unsigned int", "uint32", "uint32_t"),
    np.dtype("i8"): ("longlong", "long long", "long long int", "signed long long", "int64"),
    np.dtype("u8"): ("ulonglong", "unsigned long long", "unsigned long long int", "uint64"),
    np.dtype("f4"): ("float",),
    np.dtype("f8"): ("double",),
}
_DTYPES = {name: dtype for dtype, names in _TYPES.items() for name in names}
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
    bytes, as Slicer would read them): False at the first difference (type, shape or a data
    chunk), True after comparing every byte, None when it cannot tell (see the module's
    docstring). Reads at most the file; never raises for a bad file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_HEADER_LIMIT)
            fields, offset = _header(head)
            if fields is None:
                return None
            dtype = _DTYPES.get(fields.get("type", ""))
            sizes = [int(size) for size in fields.get("sizes", "").split()]
            if dtype is None or fields.get("dimension") != "3" or len(sizes) != 3:
                return None
            if dtype.itemsize > 1 and fields.get("endian", "little") != "little":
                return None
            if np.dtype(voxels.dtype).newbyteorder("=") != dtype or voxels.shape != tuple(
                reversed(sizes)
            ):
                return False
            handle.seek(offset)
            return _same_data(handle, fields["encoding"], np.ascontiguousarray(voxels))
    except (OSError, ValueError, zlib.error):
        return None


def _header(head: bytes) -> tuple[Optional[dict[str, str]], int]:
    """The fields of an NRRD header with attached data (None if it is not one this module
    understands: another field, a comment-free key=value aside) and where its data starts."""
    end = head.find(b"\n\n")
    if not head.startswith(b"NRRD") or end < 0:
        return None, 0
    fields: dict[str, str] = {}
    for line in head[:end].decode("latin-1").splitlines()[1:]:
        if line.startswith("#") or ":=" in line:
            continue  # comments and key/value pairs (Slicer's metadata) change no voxel
        key, sep, value = line.partition(": ")
        if not sep or key not in _UNDERSTOOD:
            return None, 0  # e.g. data file, line skip, byte skip: not read here
        fields[key] = value.strip()
    kinds = fields.get("kinds", "domain domain domain").split()
    if fields.get("encoding") not in ("gzip", "gz", "raw") or any(
        kind not in ("domain", "space") for kind in kinds
    ):
        return None, 0
    return fields, end + 2


def _same_data(handle, encoding: str, voxels: np.ndarray) -> Optional[bool]:
    """Compare the data that ``handle`` reads from with the bytes of ``voxels``, at most
    :data:`_CHUNK` bytes of voxels at a time (background compresses a thousandfold: a chunk of
    the file can hold megabytes of it)."""
    expected = memoryview(voxels).cast("B")
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding != "raw" else None
    done = 0
    pending = b""
    while True:
        if inflate is None:
            data = handle.read(_CHUNK)
        else:
            pending = pending or handle.read(_CHUNK)
            data = inflate.decompress(pending, _CHUNK)
            pending = inflate.unconsumed_tail
        if not data and (inflate is None or inflate.eof or not pending):
            break
        if done + len(data) > len(expected):
            return None  # more data than voxels: not a file this module understands
        if expected[done : done + len(data)].tobytes() != data:  # a copy, then memcmp:
            return False  # 15 times faster than comparing the memoryview itself
        done += len(data)
        if inflate is not None and inflate.eof:
            break
    return True if done == len(expected) else None

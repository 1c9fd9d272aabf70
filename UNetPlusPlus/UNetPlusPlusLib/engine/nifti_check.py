"""Checks on NIfTI files that ITK's NIfTI reader cannot be trusted with.

- **Truncation.** ITK pads a truncated file silently. We read the header (NIfTI-1 or NIfTI-2,
  either byte order) and check that the (decompressed) file holds
  ``vox_offset + voxels * bitpix / 8`` bytes, and that a gzip stream ends properly.
- **NaN and infinite voxels.** ITK's NIfTI reader replaces them with 0 before anyone can see
  them (NRRD and MetaImage keep them), so float data (NIfTI datatypes 16 and 64) is checked in
  the raw bytes, in the same single pass over the file.

Source followed: the NIfTI-1 and NIfTI-2 header layouts (nifti1.h, nifti2.h).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Optional

import numpy as np

from ..errors import UNetPlusPlusError
from .sanity import nonfinite_error

_CHUNK = 1 << 20
#: NIfTI datatype code -> numpy float kind (the only types that can hold NaN or Inf).
_FLOAT_TYPES = {16: "f4", 64: "f8"}


@dataclass
class _Layout:
    order: str  # "<" or ">"
    datatype: int
    offset: int  # vox_offset, bytes
    nbytes: int  # bytes of voxel data

    @property
    def float_dtype(self) -> Optional[np.dtype]:
        kind = _FLOAT_TYPES.get(self.datatype)
        return None if kind is None else np.dtype(self.order + kind)


def _layout(header: bytes) -> Optional[_Layout]:
    """Where the voxels are and their type, from a NIfTI-1/2 header; None if not NIfTI."""
    for order in ("<", ">"):
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            datatype = struct.unpack(order + "h", header[70:72])[0]
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            dims = struct.unpack(order + "8q", header[16:80])
            datatype = struct.unpack(order + "h", header[12:14])[0]
            bitpix = struct.unpack(order + "h", header[14:16])[0]
            offset = struct.unpack(order + "q", header[168:176])[0]
            break
    else:
        return None
    count = 1
    for n in dims[1 : 1 + max(0, min(int(dims[0]), 7))]:
        count *= max(int(n), 1)
    if offset < 348:  # a .hdr/.img pair keeps its voxels elsewhere
        return None
    return _Layout(order, int(datatype), int(offset), count * max(int(bitpix), 8) // 8)


class _FiniteScan:
    """Counts non-finite values in a float byte stream fed in arbitrary chunks."""

    def __init__(self, layout: _Layout) -> None:
        self.dtype = layout.float_dtype
        self.start, self.stop = layout.offset, layout.offset + layout.nbytes
        self.position = 0
        self.rest = b""
        self.bad = 0

    def feed(self, chunk: bytes) -> None:
        begin, end = self.position, self.position + len(chunk)
        self.position = end
        if self.dtype is None or end <= self.start or begin >= self.stop:
            return
        data = self.rest + chunk[max(0, self.start - begin) : max(0, self.stop - begin)]
        usable = len(data) - len(data) % self.dtype.itemsize
        values = np.frombuffer(data[:usable], dtype=self.dtype)
        self.bad += int(values.size - np.count_nonzero(np.isfinite(values)))
        self.rest = data[usable:]


def _scan(stream: BinaryIO) -> tuple[Optional[_Layout], int, int]:
    """(layout, total bytes, non-finite voxels) of a NIfTI byte stream, in one pass."""
    header = stream.read(540)
    layout = _layout(header)
    if layout is None:
        return None, len(header), 0
    scan = _FiniteScan(layout)
    scan.feed(header)
    size = len(header)
    while chunk := stream.read(_CHUNK):
        size += len(chunk)
        scan.feed(chunk)
    return layout, size, scan.bad


def check_nifti(path: Path) -> None:
    """Raise UNetPlusPlusError if a ``.nii``/``.nii.gz`` file is truncated, its gzip is broken,
    or its raw voxels hold NaN or infinite values. Other files pass untouched."""
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return
    try:
        opener = gzip.open if name.endswith(".gz") else open
        with opener(path, "rb") as stream:
            layout, size, bad = _scan(stream)
    except (EOFError, OSError, zlib.error) as error:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the compressed file is truncated or corrupt ({error})."
        ) from error
    if layout is None:
        return
    expected = layout.offset + layout.nbytes
    if size < expected:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the file is truncated ({size} of {expected} bytes of image data)."
        )
    if bad:
        raise nonfinite_error(str(path), bad)


#: The former name (truncation only); it now checks the raw values too.
check_nifti_complete = check_nifti

"""Detect truncated NIfTI files, which ITK's NIfTI reader pads silently instead of refusing.

NRRD and MetaImage readers already fail on missing data. For `.nii` and `.nii.gz` we read the
header (NIfTI-1 or NIfTI-2, either byte order) and check that the (decompressed) file holds
`vox_offset + voxels * bitpix / 8` bytes, and that a gzip stream ends properly.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path
from typing import Optional

from ..errors import UNetPlusPlusError

_CHUNK = 1 << 20


def _expected_nbytes(header: bytes) -> Optional[int]:
    """Bytes the file must hold, from a NIfTI-1/2 header; None if it is not NIfTI."""
    for order in ("<", ">"):
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            dims = struct.unpack(order + "8h", header[40:56])
            bitpix = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
            break
        if len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            dims = struct.unpack(order + "8q", header[16:80])
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
    return offset + count * max(int(bitpix), 8) // 8


def _decompressed_size(path: Path) -> tuple[bytes, int]:
    with gzip.open(path, "rb") as stream:
        header = stream.read(540)
        size = len(header)
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
    return header, size


def check_nifti_complete(path: Path) -> None:
    """Raise UNetPlusPlusError if a `.nii`/`.nii.gz` file is truncated or its gzip is broken."""
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        return
    try:
        if name.endswith(".gz"):
            header, size = _decompressed_size(path)
        else:
            with open(path, "rb") as stream:
                header = stream.read(540)
            size = path.stat().st_size
    except (EOFError, OSError, zlib.error) as error:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the compressed file is truncated or corrupt ({error})."
        ) from error
    expected = _expected_nbytes(header)
    if expected is not None and size < expected:
        raise UNetPlusPlusError(
            f"Cannot read {path}: the file is truncated ({size} of {expected} bytes of image data)."
        )

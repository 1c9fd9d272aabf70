"""The voxels of a compressed NRRD or MetaImage, kept from the one inflation that checks them.

:mod:`.compressed_data` inflates a gzip NRRD's or zlib MetaImage's voxels to check them before
ITK reads the file, and ITK then inflated them a second time: on the 512 x 512 x 300 int16 CT
as a gzip ``.nrrd`` (69 MB), 0.7 CPU-s each (docs/BENCHMARK_E2E.md, "Compressed NRRD"). Here the
checking pass also converts the inflated bytes, chunk by chunk, into the volume's float32 array
(or an array of the stored type), as :mod:`.nifti_check` does for a ``.nii.gz``; ITK reads the
header only (:func:`.nifti_check.header_image` gives the geometry, and refuses the voxels when
ITK would read another size or pixel type: then ITK reads the whole file).

Only a plain layout is kept: three axes, one scalar of a known type and byte order. The
header fields followed: NRRD ``type``, ``endian``, ``sizes`` (fastest axis first); MetaImage
``ElementType``, ``BinaryDataByteOrderMSB`` / ``ElementByteOrderMSB``, ``DimSize``,
``ElementNumberOfChannels`` (MetaIO's metaTypes.h, the NRRD0004 format page).
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from .sanity import cast_voxels

#: NRRD type (normalised spelling) -> numpy kind
_NRRD_KINDS = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16",
                     "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"),
                    "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                     "signed long long int", "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64",
                     "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}  # fmt: skip
#: MetaImage ElementType -> numpy kind (MET_LONG / MET_ULONG: size set by the writer, left out)
_MET_KINDS = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2",
              "MET_INT": "i4", "MET_UINT": "u4", "MET_LONG_LONG": "i8",
              "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}  # fmt: skip


class Layout(NamedTuple):
    """A plain compressed image: its ``stored`` numpy dtype (with the file's byte order) and
    (z, y, x) ``shape``."""

    stored: np.dtype
    shape: tuple


def nrrd_layout(fields: dict) -> Optional[Layout]:
    """The plain layout of a NRRD header's ``fields`` (lower-case keys), or None."""
    kind = _NRRD_KINDS.get(" ".join(fields.get("type", "").split()))
    endian = fields.get("endian", "").strip().lower()
    if kind is None or fields.get("dimension", "").strip() != "3":
        return None
    if endian not in ("little", "big") and not (kind[1] == "1" and not endian):
        return None
    return _layout(kind, endian == "big", fields.get("sizes", ""))


def metaimage_layout(fields: dict) -> Optional[Layout]:
    """The plain layout of a MetaImage header's ``fields``, or None."""
    kind = _MET_KINDS.get(fields.get("ElementType", ""))
    order = fields.get("BinaryDataByteOrderMSB", fields.get("ElementByteOrderMSB", "False"))
    if kind is None or fields.get("ElementNumberOfChannels", "1").strip() != "1":
        return None
    if fields.get("NDims", "").strip() != "3" or order.lower() not in ("true", "false"):
        return None
    return _layout(kind, order.lower() == "true", fields.get("DimSize", ""))


def _layout(kind: str, big: bool, sizes: str) -> Optional[Layout]:
    try:
        xyz = [int(n) for n in sizes.split()]
    except ValueError:
        return None
    if len(xyz) != 3 or min(xyz) < 1:
        return None
    return Layout(np.dtype((">" if big else "<") + kind), tuple(reversed(xyz)))


class VoxelSink:
    """Inflated bytes -> ``array``: the first ``shape`` voxels of the stored type, converted
    chunk by chunk (a float32 ``out`` of that shape when given and usable, else an array of the
    stored type in native byte order). Bytes beyond them are not kept (ITK reads no more)."""

    def __init__(self, layout: Layout, out: Optional[np.ndarray] = None) -> None:
        usable = out is not None and out.dtype == np.float32 and out.flags.c_contiguous
        if not usable or out.shape != layout.shape:  # type: ignore[union-attr]
            out = np.empty(layout.shape, dtype=layout.stored.newbyteorder("="))
        self.array, self.stored = out, layout.stored
        self._flat, self._written, self._rest = out.reshape(-1), 0, b""

    def feed(self, data: bytes) -> None:
        if self._rest:
            data = self._rest + data
        size = self.stored.itemsize
        room = (self._flat.size - self._written) * size
        usable = min(len(data) - len(data) % size, room)
        if usable:
            values = np.frombuffer(data, self.stored, usable // size)
            cast_voxels(values, self._flat[self._written : self._written + values.size])
            self._written += values.size
        self._rest = data[usable:] if usable < room else b""

    @property
    def complete(self) -> bool:
        return self._written == self._flat.size

"""Image data kept in a file of its own: present and long enough, checked before ITK reads it.

A MetaImage header (``.mhd``, or a ``.mha`` naming a data file), a detached NRRD header
(``.nhdr``) and a NIfTI-1 / Analyze 7.5 pair (``.hdr`` + ``.img``) keep their voxels in another
file. When that file is missing or short, ITK's MetaImage reader prints "MetaImage: Read: Cannot
open data file" (or "data not read completely") on stderr and SimpleITK's error then reads "No
such file or directory" without naming either file; the NRRD and NIfTI readers name neither the
header field nor the expected size. :func:`check_data_files` says which data file the header
names and what is wrong with it, before ITK opens it; a NRRD header also passes
:func:`.nrrd_geometry.check_nrrd_geometry` (no ``none`` direction on a spatial axis).

Only what the header says for sure is refused: a data file that does not exist, an
uncompressed one shorter than the header's voxels (sizes x type x components), or a compressed
MetaImage shorter than its ``CompressedDataSize``. Other compressed data, a MetaImage
``ElementDataFile = LIST`` or file pattern, a NRRD ``block`` type or an unknown type is checked
for existence only, or not at all; ITK then reads it.

Sources followed: MetaIO's header fields (ElementDataFile last; relative names from the
header's folder; metaTypes.h sizes), the NRRD0004 format (teem.sourceforge.net/nrrd/format.html:
``data file`` / ``datafile``, ``byte skip``, ``LIST`` and ``%d`` patterns).
"""

from __future__ import annotations

import struct
from math import prod
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np

from ..errors import UNetPlusPlusError
from .compressed_data import check_inflates
from .compressed_voxels import Layout, VoxelSink, metaimage_layout, nrrd_layout
from .nifti_check import NiftiVoxels, pair_file
from .nrrd_geometry import check_nrrd_geometry
from .nrrd_header import parse_nrrd_header

#: Bytes read from a header file at most: real headers are a few kB.
_HEADER_BYTES = 1 << 16
#: MetaImage ElementType -> bytes (metaTypes.h). MET_LONG / MET_ULONG are left out: their
#: size in a file depends on the writer.
_MET_BYTES = {"MET_CHAR": 1, "MET_UCHAR": 1, "MET_SHORT": 2, "MET_USHORT": 2, "MET_INT": 4,
              "MET_UINT": 4, "MET_LONG_LONG": 8, "MET_ULONG_LONG": 8, "MET_FLOAT": 4,
              "MET_DOUBLE": 8}  # fmt: skip
#: NRRD type names (every spelling of the format's table) -> bytes.
_NRRD_BYTES = {
    **dict.fromkeys(("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8",
                     "uint8_t"), 1),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16",
                     "int16_t", "ushort", "unsigned short", "unsigned short int", "uint16",
                     "uint16_t"), 2),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t", "uint", "unsigned int",
                     "uint32", "uint32_t", "float"), 4),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long",
                     "signed long long int", "int64", "int64_t", "ulonglong",
                     "unsigned long long", "unsigned long long int", "uint64", "uint64_t",
                     "double"), 8),
}  # fmt: skip


class _Inflation(NamedTuple):
    """The compressed voxels of a header (:func:`.compressed_data.check_inflates`'s arguments)
    and their plain layout, or None (:mod:`.compressed_voxels`)."""

    header: Path
    data: Path
    offset: int
    gzip_format: bool
    expected: Optional[int]
    layout: Optional[Layout]


def check_data_files(
    path: Path, inflate: bool = True, keep: bool = False, out: Optional[np.ndarray] = None
) -> Optional[NiftiVoxels]:
    """Raise UNetPlusPlusError when the image file ``path`` is a header whose data file (named
    in it, or the other half of a .hdr/.img pair) is missing or shorter than its voxels, or
    (with ``inflate``) whose compressed voxels are damaged (:mod:`.compressed_data`); the
    message names the header, its data-file field and the data file. Other files, and headers
    it cannot parse, pass untouched (reads at most 64 kB of the header).

    With ``keep``, a compressed NRRD or MetaImage of a plain layout (3D, one scalar of a known
    type) also returns the voxels of that inflation (:mod:`.compressed_voxels`): in ``out``
    when it is a float32 (z, y, x) array of their shape, else in the stored type; None for
    other files."""
    name = path.name.lower()
    parse = _header_parser(name)
    try:
        if parse is None:
            if name.endswith((".hdr", ".img", ".hdr.gz", ".img.gz")):
                _check_pair(path)
            return None
        inflation = parse(path)
    except OSError:
        return None  # the header itself cannot be read: ITK's reading says why
    if inflation is None or not inflate:
        return None
    layout = inflation.layout if keep else None
    sink = None if layout is None else VoxelSink(layout, out)
    whole = check_inflates(*inflation[:5], sink=sink)  # type: ignore[misc]
    if sink is None or not whole or not sink.complete:
        return None
    return NiftiVoxels(sink.array, sink.stored)


def compressed_shape(path: Path) -> Optional[tuple]:
    """(z, y, x) of a compressed NRRD or MetaImage whose voxels :func:`check_data_files`
    keeps, from its header alone; None for other files."""
    parse = _header_parser(path.name.lower())
    if parse is None:
        return None
    try:
        inflation = parse(path)
    except (OSError, UNetPlusPlusError):
        return None  # the reading says why
    return None if inflation is None or inflation.layout is None else inflation.layout.shape


def _header_parser(name: str) -> Optional[Callable[[Path], Optional[_Inflation]]]:
    """The check of a MetaImage or NRRD header for the lower-cased file ``name``; None for
    other files."""
    if name.endswith((".mhd", ".mha")):
        return _check_metaimage
    if name.endswith((".nhdr", ".nrrd")):
        return _check_nrrd
    return None


def _head(path: Path) -> bytes:
    with open(path, "rb") as stream:
        return stream.read(_HEADER_BYTES)


def _check_metaimage(path: Path) -> Optional[_Inflation]:
    head, fields, end = _head(path), {}, None
    position = 0
    for raw in head.splitlines(keepends=True):
        position += len(raw)
        key, sep, value = raw.decode("latin-1").partition("=")
        if not sep:
            continue
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":  # always the last field
            end = position
            break
    value = fields.get("ElementDataFile")
    if end is None or not value or value.split()[0] == "LIST" or "%" in value:
        return None  # not a MetaImage header, or its data are listed ("LIST", "LIST 2D")
    field = f"ElementDataFile = {value}"
    voxels = nbytes = _metaimage_bytes(fields)
    compressed = fields.get("CompressedData", "False").lower() in ("true", "1")
    skip = fields.get("HeaderSize")
    if compressed:  # MetaIO reads exactly CompressedDataSize bytes when the header gives it
        nbytes = _compressed_bytes(fields) if skip is None else None
    data = path if value == "LOCAL" else path.parent / value
    if compressed and value == "LOCAL" and skip is None and "CompressedDataSize" not in fields:
        raise UNetPlusPlusError(
            f"Cannot read {path}: its compressed voxels follow the header (ElementDataFile = "
            "LOCAL) but the header has no CompressedDataSize, and ITK (as 3D Slicer) then "
            "fails to inflate them ('Uncompress failed') and reads garbage voxels; write the "
            "image again with a MetaImage writer (3D Slicer, ITK, SimpleITK), which records it."
        )
    if value == "LOCAL":
        if nbytes is not None and skip is None:
            _check_size(path, path, field, end + nbytes)
    else:
        _check_exists(path, data, field)
        offset = skip if skip is not None else "0"
        if nbytes is not None and offset.lstrip("-").isdigit():
            _check_size(path, data, field, max(int(offset), 0) + nbytes)
    if compressed and skip is None:  # ITK read a damaged stream as garbage voxels
        offset = end if value == "LOCAL" else 0
        return _Inflation(path, data, offset, False, voxels, metaimage_layout(fields))
    return None


def _compressed_bytes(fields: dict) -> Optional[int]:
    """A compressed MetaImage's ``CompressedDataSize`` (bytes), or None when absent or not a
    whole number >= 0: a shorter file made ITK print "M_ReadElementsData: data not read
    completely / ideal = ... : actual = ..." above the error (tester 20)."""
    try:
        size = int(fields["CompressedDataSize"])
    except (KeyError, ValueError):
        return None
    return size if size >= 0 else None


def _metaimage_bytes(fields: dict) -> Optional[int]:
    """Bytes of a MetaImage's voxels, or None when its header does not say for sure."""
    try:
        dims = [int(n) for n in fields["DimSize"].split()]
        components = int(fields.get("ElementNumberOfChannels", "1"))
    except (KeyError, ValueError):
        return None
    size = _MET_BYTES.get(fields.get("ElementType", ""))
    if size is None or not dims or min(dims) < 0 or components < 1:
        return None
    return prod(dims) * components * size


def _check_nrrd(path: Path) -> Optional[_Inflation]:
    header = parse_nrrd_header(_head(path))
    if header is None:
        return None
    fields, listed = header.fields, header.listed
    check_nrrd_geometry(path, fields)
    key = "data file" if "data file" in fields else "datafile"
    value = fields.get(key)
    gzipped = fields.get("encoding", "") in ("gzip", "gz") and not (
        fields.get("byte skip", "0") != "0" or fields.get("line skip", "0") != "0"
    )
    if not value:  # the voxels follow the header in the same file
        offset = header.data_offset
        if gzipped and offset is not None:  # ITK read a damaged stream as garbage voxels
            return _Inflation(path, path, offset, True, _nrrd_bytes(fields), nrrd_layout(fields))
        return None
    field = f"{key}: {value}"
    words = value.split()
    if words[0] == "LIST":
        for name in listed:
            _check_exists(path, path.parent / name, field)
        return None
    if "%" in words[0] and len(words) >= 4:
        try:
            first, last, step = (int(w) for w in words[1:4])
            names = [words[0] % i for i in range(first, last + (1 if step > 0 else -1), step)]
        except (ValueError, TypeError, ZeroDivisionError):
            return None
        for name in names:
            _check_exists(path, path.parent / name, field)
        return None
    data = path.parent / value
    _check_exists(path, data, field)
    nbytes = _nrrd_bytes(fields)
    if gzipped:
        return _Inflation(path, data, 0, True, nbytes, nrrd_layout(fields))
    if nbytes is not None and fields.get("encoding", "") == "raw":
        try:
            skip = int(fields.get("byte skip", "0"))
        except ValueError:
            return None
        if fields.get("line skip", "0") == "0":
            _check_size(path, data, field, max(skip, 0) + nbytes)
    return None


def _nrrd_bytes(fields: dict) -> Optional[int]:
    """Bytes of a NRRD's voxels, or None when its header does not say for sure."""
    try:
        sizes = [int(n) for n in fields["sizes"].split()]
    except (KeyError, ValueError):
        return None
    size = _NRRD_BYTES.get(" ".join(fields.get("type", "").split()))
    if size is None or not sizes or min(sizes) < 0:
        return None
    return prod(sizes) * size


def _check_pair(path: Path) -> None:
    """A NIfTI-1 / Analyze 7.5 pair: the .hdr needs its .img and the .img its .hdr (their
    lengths are checked by :mod:`.nifti_check`)."""
    lower = path.name.lower()
    suffix = next(s for s in (".hdr.gz", ".img.gz", ".hdr", ".img") if lower.endswith(s))
    stem = path.name[: -len(suffix)]
    if suffix.startswith(".hdr"):
        if suffix == ".hdr" and not _is_nifti1_header(path):
            return  # not a NIfTI-1 / Analyze header: ITK says what it is not
        if pair_file(path, stem, ".img") is None:
            raise UNetPlusPlusError(
                f"Cannot read {path}: this NIfTI / Analyze header (.hdr) keeps its voxels in "
                f"{path.with_name(stem + '.img')}, which does not exist; put the .img file "
                "beside it (same name), or give a .nii / .nii.gz / .nrrd file."
            )
    elif pair_file(path, stem, ".hdr") is None and not _other_reader(path):
        raise UNetPlusPlusError(
            f"Cannot read {path}: a NIfTI / Analyze .img file holds only voxels, and its header "
            f"{path.with_name(stem + '.hdr')} does not exist; put the .hdr file beside it (same "
            "name)."
        )


def _other_reader(path: Path) -> bool:
    """Whether an ITK image IO reads ``path`` by its content (e.g. a GE Signa file named .img):
    then it is not the voxel half of an Analyze pair."""
    import SimpleITK as sitk

    try:
        return bool(sitk.ImageFileReader().GetImageIOFromFileName(str(path)))
    except RuntimeError:
        return False


def _is_nifti1_header(path: Path) -> bool:
    first = _head(path)[:4]
    return len(first) == 4 and 348 in (struct.unpack("<i", first)[0], struct.unpack(">i", first)[0])


def _check_exists(header: Path, data: Path, field: str) -> None:
    if not data.is_file():
        what = "does not exist" if not data.exists() else "is not a file"
        raise UNetPlusPlusError(
            f"Cannot read {header}: its image data file {data} ('{field}' in the header) "
            f"{what}; keep the data file beside its header (same relative path)."
        )


def _check_size(header: Path, data: Path, field: str, expected: int) -> None:
    size = data.stat().st_size
    if size < expected:
        what = (
            "the file"
            if data == header
            else f"its image data file {data} ('{field}' in the header)"
        )
        held = "header and image data" if data == header else "image data"
        raise UNetPlusPlusError(
            f"Cannot read {header}: {what} is truncated ({size} of {expected} bytes of {held})."
        )

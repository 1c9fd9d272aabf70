"""What an image file really is, from its first bytes, when its name says another format.

ITK (SimpleITK, 3D Slicer) chooses the reader of NIfTI, NRRD and MetaImage files by the name:
a ``.nii.gz`` renamed ``.nrrd``, or an NRRD named ``.nii.gz``, gave "Unable to determine
ImageIO reader", which our message called "truncated, corrupt or not a supported image". The
file is fine; its name is wrong. :func:`check_named_format` reads the magic bytes and, when the
name's format is one of those three and the content is another known one, refuses with what the
file is and the name to give it. A ``.nii`` that is a gzip-compressed NIfTI is
``nifti_check``'s to say (its message predates this one); a plain NIfTI named ``.nii.gz`` is
read by ITK as it is and passes. Standard library only; at most 1 kB is read (and inflated), or
64 kB of a misnamed text header.
"""

from __future__ import annotations

import gzip
import re
import struct
import zlib
from pathlib import Path
from typing import Optional

from ..errors import UNetPlusPlusError

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 1024
#: The name endings ITK reads by name, and the format each names.
NAMED = (
    (".nii.gz", "nifti"),
    (".nii", "nifti"),
    (".nrrd", "nrrd"),
    (".nhdr", "nrrd"),
    (".mha", "metaimage"),
    (".mhd", "metaimage"),
)
WHAT = {
    "nifti": "a NIfTI file",
    "nifti-gz": "a gzip-compressed NIfTI file (a .nii.gz)",
    "nifti2": "a NIfTI-2 file",
    "nrrd": "an NRRD file",
    "metaimage": "a MetaImage file",
    "dicom": "a DICOM file",
    "png": "a PNG picture",
    "jpeg": "a JPEG picture",
    "hdf5": "an HDF5 file (for example a transform or a .h5 dataset)",
    "zip": "a zip archive",
}
_META_KEY = re.compile(rb"^\s*(ObjectType|NDims|DimSize|ElementType|ElementDataFile)\s*=", re.M)


def sniff(head: bytes) -> Optional[str]:
    """The format of a file whose first bytes are ``head`` (up to :data:`HEAD_BYTES`): a key of
    :data:`WHAT`, ``"gzip"`` for gzip of another content, or None when not recognised."""
    if len(head) >= 348 and 348 in _int32(head[:4]) and head[344:348] in (b"n+1\0", b"ni1\0"):
        return "nifti"
    if len(head) >= 8 and 540 in _int32(head[:4]) and head[4:8] == b"n+2\0":
        return "nifti2"
    if head.startswith(b"NRRD000"):
        return "nrrd"
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "hdf5"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if len(_META_KEY.findall(head)) >= 2 and b"\0" not in head[:64]:
        return "metaimage"
    return None


def _int32(four: bytes) -> set:
    return {struct.unpack("<i", four)[0], struct.unpack(">i", four)[0]}


def file_format(path: Path) -> Optional[str]:
    """:func:`sniff` of the file at ``path``, looking inside gzip: ``"nifti-gz"``,
    ``"nrrd-gz"`` (a whole NRRD file compressed), ``"gzip"`` (other or broken gzip content);
    None when unreadable or not recognised. Never raises."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(HEAD_BYTES)
    except OSError:
        return None
    if not head.startswith(GZIP_MAGIC):
        return sniff(head)
    try:
        with gzip.open(path, "rb") as stream:
            inner = sniff(stream.read(HEAD_BYTES))
    except (EOFError, OSError, zlib.error):
        return "gzip"
    return {"nifti": "nifti-gz", "nrrd": "nrrd-gz"}.get(inner or "", "gzip")


def named_format(path: Path) -> tuple[str, Optional[str]]:
    """(the name's ending, the format ITK reads it as) for the endings of :data:`NAMED`;
    (suffix, None) for other names."""
    name = path.name.lower()
    for ending, kind in NAMED:
        if name.endswith(ending):
            return ending, kind
    return path.suffix.lower(), None


def check_named_format(path: Path) -> None:
    """Raise UNetPlusPlusError when ``path``'s name ends in a NIfTI, NRRD or MetaImage ending
    and its content is another known format (or gzip around a file those readers read
    plain), saying what it is and what to do; return otherwise (unknown contents too: the
    reader then says why it cannot read them). An empty file (0 bytes), whatever its name, is
    refused as empty, not as "truncated, corrupt or not a supported image"."""
    try:
        empty = path.is_file() and path.stat().st_size == 0
    except OSError:
        empty = False
    if empty:
        raise UNetPlusPlusError(
            f"{path} is empty (0 bytes): it holds no image. The copy or download that made it "
            "may not have finished; copy it again, or give another file."
        )
    ending, named = named_format(path)
    if named is None:
        return
    found = file_format(path)
    if found is None or found == named:
        return
    if named == "nifti" and found in ("nifti-gz", "nifti2", "gzip"):
        return  # nifti_check's (a .nii.gz named .nii, NIfTI-2) or ITK's own gzip reading
    stem = path.name[: len(path.name) - len(ending)]
    reader = "the image reader (ITK, as in 3D Slicer) chooses the format by the name"
    if found == "nrrd-gz":
        raise UNetPlusPlusError(
            f"{path} is an NRRD file compressed whole with gzip (a .nrrd.gz), which no image "
            f"reader opens: rename it to {stem}.nrrd.gz and decompress it (gunzip "
            f"{stem}.nrrd.gz), then give {stem}.nrrd."
        )
    if found == "gzip":
        raise UNetPlusPlusError(
            f"{path} is gzip-compressed, not {WHAT[named]} as its name ends in {ending}: "
            "decompress it (gunzip) and give the file inside."
        )
    if found in ("nifti", "nifti-gz", "nrrd", "metaimage"):
        right = {"nifti": ".nii", "nifti-gz": ".nii.gz", "nrrd": ".nrrd", "metaimage": ".mha"}
        new = stem + right[found]
        if found == "metaimage" and not re.search(
            rb"(?m)^\s*ElementDataFile\s*=\s*LOCAL", _head(path)
        ):
            new = stem + ".mhd"  # a header whose voxels are in another file
        if found == "nrrd" and re.search(rb"(?im)^data ?file:", _head(path)):
            new = stem + ".nhdr"
        raise UNetPlusPlusError(
            f"{path} is {WHAT[found]}, not {WHAT[named]} as its name ends in {ending}, and "
            f"{reader}: rename it to {new} (the file itself is not changed)."
        )
    how = {
        "dicom": "give the folder of its DICOM series instead",
        "nifti2": "rename it to " + stem + ".nii and save it as NIfTI-1 or NRRD",
    }.get(found, "give a NIfTI, NRRD, MetaImage or DICOM image instead")
    raise UNetPlusPlusError(f"{path} is {WHAT[found]}, not {WHAT[named]} as its name says: {how}.")


def _head(path: Path) -> bytes:
    """The first 64 kB of a text header (MetaImage, NRRD): its fields, which may be many."""
    try:
        with open(path, "rb") as stream:
            return stream.read(65536)
    except OSError:
        return b""

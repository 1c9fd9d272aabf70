"""A stamp that marks a file as an unmodified output of this engine, so a rerun may replace it.

Every file ``unetpp segment`` (and ``unetpp serve``) writes carries the sha256 of its own bytes,
the stamp itself left out. A later run replaces an existing output only when the stamp is there
and still matches: a segmentation corrected by hand and saved again from Slicer, a file written
by another tool, or a stamped file changed since, has no valid stamp, and the CLI refuses it
unless ``--overwrite`` (``cli_outputs.check_output_paths``).

Where the stamp sits, by format (each reader tested ignores it):

- ``.nrrd``, ``.seg.nrrd``: a header line ``unetpp_output_sha256:=<hex>`` (a NRRD key/value
  pair; ITK, pynrrd/slicerio and Slicer's segmentation reader keep unknown keys aside);
- ``.mha``: a header line ``unetpp_output_sha256 = <hex>`` before ``ElementDataFile``;
- ``.nii``: the NIfTI header's 80-byte ``descrip`` field, ``unetpp sha256:<hex>``;
- ``.nii.gz``: the gzip header's comment (RFC 1952 FCOMMENT), ``unetpp_output_sha256=<hex>``;
  the hash covers the compressed stream after that header (whose CRC-32 and size cover every
  uncompressed byte), so checking it never decompresses the image;
- ``.png``: a ``tEXt`` chunk ``unetpp_output_sha256``;
- ``.json`` (the run record beside a NIfTI output, ``run_record.py``): the object's first
  member, on the second line, ``  "unetpp_output_sha256": "<hex>",``.

The hash is of the file's bytes, not of the decoded voxels: checking costs one sequential read
of the file (a 512x512x300 ``.seg.nrrd`` is under 1 MB compressed), and any rewrite, even of
the same voxels by another writer, counts as "not ours" (the safe side: the user then passes
``--overwrite``). Not a signature: anyone can compute it; it tells edits from our outputs.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Optional, Union

KEY = "unetpp_output_sha256"
_HEX = re.compile(rb"[0-9a-f]{64}")
_HEAD = 1 << 20  # every stamp sits in the first MiB (NRRD/MHA headers, NIfTI, gzip, PNG)
_CHUNK = 1 << 20
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

PathLike = Union[str, os.PathLike]


def kind_of(path: PathLike) -> Optional[str]:
    """The stamp format for ``path`` by its (case-insensitive) extension, or None if unknown."""
    name = Path(path).name.lower()
    for suffix, kind in (
        (".nii.gz", "nii.gz"),
        (".nii", "nii"),
        (".nrrd", "nrrd"),
        (".mha", "mha"),
        (".png", "png"),
        (".json", "json"),
    ):
        if name.endswith(suffix):
            return kind
    return None


def _digest(handle: BinaryIO, skip: tuple[int, int], head: bytes) -> str:
    """sha256 of the whole file but the bytes in ``skip`` (start, end); ``head`` = its start."""
    start, end = skip
    sha = hashlib.sha256()
    sha.update(head[:start])
    if end <= len(head):
        sha.update(head[end:])
        handle.seek(len(head))
    else:
        handle.seek(end)
    for block in iter(lambda: handle.read(_CHUNK), b""):
        sha.update(block)
    return sha.hexdigest()


# ------------------------------------------------------------------- where the stamp goes
def _text_header_end(head: bytes, kind: str) -> int:
    """Offset where a NRRD header's blank line, or a MetaImage ``ElementDataFile`` line,
    starts (the place of a new stamp line); -1 if not found in ``head``."""
    if kind == "nrrd":
        end = head.find(b"\n\n")
        return -1 if end < 0 else end + 1
    match = re.search(rb"(^|\n)ElementDataFile\s*=", head)
    return -1 if match is None else match.start() + (1 if match.group(1) else 0)


def text_header_end(path: PathLike) -> Optional[int]:
    """Where a new header line goes in the NRRD or MHA file at ``path`` (the byte offset of
    its blank line or ``ElementDataFile`` line); None for another format or no such header."""
    kind = kind_of(path)
    if kind not in ("nrrd", "mha"):
        return None
    with open(path, "rb") as handle:
        at = _text_header_end(handle.read(_HEAD), kind)
    return None if at < 0 else at


_JSON_STAMP = re.compile(rb'\A\{\n(  "' + KEY.encode() + rb'": "([0-9a-f]{64})",\n)')


def _stamp_line(kind: str, hexdigest: str) -> bytes:
    separator = ":=" if kind == "nrrd" else " = "
    return f"{KEY}{separator}{hexdigest}\n".encode()


def _nifti_descrip(head: bytes) -> Optional[tuple[int, int]]:
    """The byte span of a NIfTI-1 or NIfTI-2 header's ``descrip`` (either byte order)."""
    if len(head) < 348:
        return None
    for order in "<>":
        size = struct.unpack(order + "i", head[:4])[0]
        if size == 348:
            return 148, 228
        if size == 540:
            return 240, 320
    return None


def _gzip_header(head: bytes) -> Optional[tuple[int, Optional[tuple[int, int]]]]:
    """(the length of a gzip member header, the span of its comment or None)."""
    if len(head) < 10 or head[:3] != b"\x1f\x8b\x08":
        return None
    flags, at, comment = head[3], 10, None
    if flags & 0x04:  # FEXTRA
        at += 2 + struct.unpack("<H", head[at : at + 2])[0]
    for flag in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated
        if flags & flag:
            end = head.find(b"\x00", at)
            if end < 0:
                return None
            if flag == 0x10:
                comment = (at, end)
            at = end + 1
    if flags & 0x02:  # FHCRC
        at += 2
    return at, comment


def _png_chunks(head: bytes):
    """(offset, type, data start, data end) of each PNG chunk whose header lies in ``head``."""
    at = len(_PNG_SIGNATURE)
    while at + 8 <= len(head):
        length, kind = struct.unpack(">I4s", head[at : at + 8])
        yield at, kind, at + 8, at + 8 + length
        at += 12 + length


def _find(head: bytes, kind: str) -> Optional[tuple[str, tuple[int, int]]]:
    """The stamp (hex) in ``head`` and the byte span the hash leaves out, or None."""
    if kind in ("nrrd", "mha"):
        end = _text_header_end(head, kind)
        separator = rb":=" if kind == "nrrd" else rb"\s*=\s*"
        pattern = rb"(?:^|\n)(" + KEY.encode() + separator + rb"([0-9a-f]{64})\n)"
        match = re.search(pattern, head[: max(end, 0)])
        return None if match is None else (match.group(2).decode(), match.span(1))
    if kind == "nii":
        span = _nifti_descrip(head)
        text = head[span[0] : span[1]] if span else b""
        if not text.startswith(b"unetpp sha256:") or not _HEX.fullmatch(text[14:78]):
            return None
        return text[14:78].decode(), span
    if kind == "nii.gz":
        header = _gzip_header(head)
        if header is None or header[1] is None:
            return None
        text = head[header[1][0] : header[1][1]]
        prefix = f"{KEY}=".encode()
        if not text.startswith(prefix) or not _HEX.fullmatch(text[len(prefix) :]):
            return None
        return text[len(prefix) :].decode(), (0, header[0])
    if kind == "json":
        match = _JSON_STAMP.match(head)
        return None if match is None else (match.group(2).decode(), match.span(1))
    if kind == "png" and head.startswith(_PNG_SIGNATURE):
        for at, chunk, start, end in _png_chunks(head):
            data = head[start:end]
            if chunk == b"tEXt" and data.startswith(KEY.encode() + b"\x00"):
                value = data[len(KEY) + 1 :]
                return (value.decode(), (at, end + 4)) if _HEX.fullmatch(value) else None
    return None


# ------------------------------------------------------------------- public
def stamp_state(path: PathLike) -> str:
    """``"valid"`` (our stamp, and the file still matches it), ``"changed"`` (our stamp, but
    the bytes differ since) or ``"none"`` (no stamp: another writer, or an unknown format).
    Reads the file once. Raises OSError if it cannot be read."""
    kind = kind_of(path)
    if kind is None:
        return "none"
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
        found = _find(head, kind)
        if found is None:
            return "none"
        stamp, skip = found
        return "valid" if _digest(handle, skip, head) == stamp else "changed"


def stamp_of(path: PathLike) -> Optional[str]:
    """The stamp (hex sha256) the file at ``path`` carries, valid or not; None without one.
    Raises OSError if it cannot be read."""
    kind = kind_of(path)
    if kind is None:
        return None
    with open(path, "rb") as handle:
        found = _find(handle.read(_HEAD), kind)
    return None if found is None else found[0]


def stamp_file(path: PathLike) -> None:
    """Add the stamp to the file at ``path``, just written by one of our writers (in place for
    ``.nii``; otherwise through a copy beside it, renamed over it). Raises OSError on I/O errors
    and ValueError if the file is not in the format its extension names."""
    path = Path(path)
    kind = kind_of(path)
    if kind is None:
        raise ValueError("no stamp for this file type")
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
        if kind == "nii":
            span = _nifti_descrip(head)
            if span is None:
                raise ValueError("the writer did not produce a NIfTI file")
            digest = _digest(handle, span, head)
            text = f"unetpp sha256:{digest}".encode()
            with open(path, "r+b") as out:
                out.seek(span[0])
                out.write(text.ljust(span[1] - span[0], b"\x00"))
            return
        if kind in ("nrrd", "mha"):
            at = _text_header_end(head, kind)
            if at < 0:
                raise ValueError(f"the writer did not produce a {kind.upper()} header")
            digest = _digest(handle, (0, 0), head)
            insert, new_head = _stamp_line(kind, digest), head[:at]
        elif kind == "nii.gz":
            header = _gzip_header(head)
            if header is None:
                raise ValueError("the writer did not produce a gzip file")
            at = header[0]
            digest = _digest(handle, (0, at), head)
            # the same member header, without a name, with our comment (flags: FCOMMENT only)
            new_head = head[:3] + b"\x10" + head[4:10]
            insert = f"{KEY}={digest}".encode() + b"\x00"
        elif kind == "json":  # the object's first member
            if not head.startswith(b"{\n"):
                raise ValueError("the writer did not produce a JSON object")
            at = 2
            digest = _digest(handle, (0, 0), head)
            insert, new_head = f'  "{KEY}": "{digest}",\n'.encode(), head[:at]
        else:  # png: a tEXt chunk right after IHDR
            if not head.startswith(_PNG_SIGNATURE):
                raise ValueError("the writer did not produce a PNG file")
            at = next(_png_chunks(head))[3] + 4
            digest = _digest(handle, (0, 0), head)
            data = KEY.encode() + b"\x00" + digest.encode()
            crc = zlib.crc32(b"tEXt" + data) & 0xFFFFFFFF
            insert, new_head = struct.pack(">I", len(data)) + b"tEXt" + data, head[:at]
            insert += struct.pack(">I", crc)
        copy = path.with_name(path.name + ".stamp")
        try:
            with open(copy, "wb") as out:
                out.write(new_head + insert)
                handle.seek(at)
                shutil.copyfileobj(handle, out, _CHUNK)
            shutil.copymode(path, copy)
            os.replace(copy, path)
        finally:
            if copy.exists():
                copy.unlink()

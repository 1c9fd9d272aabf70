"""Compressed voxels of a MetaImage or NRRD file: inflated once, before ITK reads them.

ITK's MetaImage reader (zlib) and NRRD reader (gzip) do not always fail on a damaged stream: a
compressed ``.mha`` or ``.nrrd`` with 50 bytes flipped in its middle was read without an error,
every voxel after the damage garbage (686,000 of the example CT's 1.38 million, values down to
-2.1e9), and only the CT range check refused it, as "values look shifted ... a rescale
intercept applied twice"; damage in the last slices passes that check (tester 20). NIfTI files
get the same check from :mod:`.nifti_check`. Here the stream is inflated
(:class:`.inflate_stream.InflateStream`) and its output, at most 1 MiB at a time, is dropped or,
with a ``sink``, kept as the volume's voxels (:mod:`.compressed_voxels`; ITK then reads only
the header): a stream that zlib refuses (a bad code, a wrong checksum: adler-32 for zlib,
CRC-32 for gzip), that ends early, or that holds fewer bytes than the header's voxels is one
error naming the file; bytes after the complete stream that are not zero padding are ignored,
as ITK ignores them, with a warning. Without a sink the check is once per unchanged file (a
file checked whole is not inflated again by the next check of the same read).
"""

from __future__ import annotations

import warnings
import zlib
from pathlib import Path
from typing import Optional

from ..errors import UNetPlusPlusError
from .compressed_voxels import VoxelSink
from .file_stamp import file_stamp
from .inflate_stream import GZIP_WBITS, ZLIB_WBITS, InflateStream, trailing_warning

_CHUNK = 1 << 20  # bytes inflated at a time, at most
#: (key, bytes ignored after the stream) of the data files whose streams inflated whole, by
#: (file_stamp, offset, ...): not inflated again
_VERIFIED: list[tuple] = []
_KEEP = 8


def check_inflates(
    header: Path,
    data: Path,
    offset: int,
    gzip_format: bool,
    expected: Optional[int],
    sink: Optional[VoxelSink] = None,
) -> bool:
    """Inflate the compressed voxels of ``data`` (``header`` itself or its data file) from byte
    ``offset``: a zlib stream (MetaImage) or, with ``gzip_format``, a gzip one (NRRD).
    ``expected``: the voxels' bytes from the header, or None. ``sink``: a
    :class:`.compressed_voxels.VoxelSink` fed the inflated bytes (the file is then inflated
    even when it was checked before). Raises UNetPlusPlusError naming ``header`` (and
    ``data``) when the stream is corrupt, ends early or holds too few bytes. Returns whether
    the stream was inflated whole (False: the file could not be read; ITK says why)."""
    try:
        key = (tuple(file_stamp(data)), offset, gzip_format, expected)
    except OSError:
        return False  # unreadable: ITK's reading says why
    ignored = next((n for known, n in _VERIFIED if known == key), None)
    if ignored is not None and sink is None:  # unchanged since its stream inflated whole
        _warn_trailing(header, data, ignored)
        return True
    wbits = GZIP_WBITS if gzip_format else ZLIB_WBITS
    total = 0
    try:
        with InflateStream(data, offset, wbits, trailing="ignore") as stream:
            chunk = stream.read_some(_CHUNK)
            while chunk:
                total += len(chunk)
                if sink is not None:
                    sink.feed(chunk)
                chunk = stream.read_some(_CHUNK)
            members, ignored = stream.members, stream.ignored
    except zlib.error as error:
        _refuse(header, data, f"its compressed voxels are corrupt ({error}): the file is damaged")
    except EOFError:
        members = 0
    except OSError:
        return False  # unreadable: ITK's reading says why
    if not members:
        _refuse(header, data, "its compressed voxels end early: the file is truncated")
    if expected is not None and total < expected:
        _refuse(header, data, f"its compressed voxels hold {total} of the {expected} bytes needed")
    _warn_trailing(header, data, ignored)
    _VERIFIED[:] = [(key, ignored), *[entry for entry in _VERIFIED if entry[0] != key]][:_KEEP]
    return True


def _warn_trailing(header: Path, data: Path, ignored: int) -> None:
    if ignored:
        warnings.warn(trailing_warning(header, data, ignored), UserWarning, stacklevel=4)


def _refuse(header: Path, data: Path, why: str) -> None:
    where = "" if data == header else f" (image data file {data})"
    raise UNetPlusPlusError(f"Cannot read {header}{where}: {why}; copy or export it again.")

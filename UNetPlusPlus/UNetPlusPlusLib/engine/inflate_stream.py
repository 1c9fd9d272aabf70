"""One reader of the deflate streams in image files: the gzip members of a ``.nii.gz``, a gzip
NRRD or ``.raw.gz``, and the zlib stream of a compressed MetaImage, from a byte offset, in
1 MiB reads of the file. zlib itself reads the wrapper (``wbits``), so every gzip member's
CRC-32 and length, and a zlib stream's Adler-32, are checked.

Several gzip members are read one after the other (as ``gzip.open`` and zlib's ``gzread``,
ITK's reader of ``.nii.gz``, do); a gzip magic split across two reads of the file is followed.

**After the data** (the last complete member or zlib stream) the ``trailing`` policy decides:

- zero bytes are padding, skipped in silence (``gzip.open`` skips them too);
- other bytes are, with ``trailing="ignore"``, skipped and counted in :attr:`ignored` (the
  caller warns): ITK ignores them as well (zlib's ``gzread`` stops at the first bytes after a
  member that are not gzip's magic, MetaIO reads only the stream), and the voxels before them
  are complete and their checksum verified, so refusing the file would refuse what 3D Slicer
  opens without saying why; with ``trailing="refuse"`` (``gzip.open``'s behaviour) they raise
  ``zlib.error``.

A file that ends inside a member raises EOFError; a corrupt stream (a bad code, header or
checksum) raises ``zlib.error``. Reading starts with no data read: an empty stream reads as
empty (:attr:`members` 0).

**Inflating** uses zlib-ng (the ``zlib-ng`` package, python bindings of the zlib-ng library:
the same streams, wrappers and checks as zlib, with its API) where it is installed, else the
standard library's zlib: zlib-ng inflated the 512x512x300 liver CT's 157 MB in 0.61-0.65
CPU-s against zlib's 1.11 (session 17, ``bench/inflate_cost.py``). Its errors are raised as
``zlib.error``, so callers catch one exception whichever inflates.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Union

try:  # zlib-ng inflates about 1.8x faster than zlib; zlib where it is not installed
    from zlib_ng import zlib_ng as _inflater
except ImportError:  # Testing/test_inflate_stream.py runs both
    _inflater = zlib

#: ``wbits`` of a zlib stream (MetaImage ``CompressedData``) and of gzip members.
ZLIB_WBITS = zlib.MAX_WBITS
GZIP_WBITS = 16 + zlib.MAX_WBITS
#: bytes of the compressed file per read: 4 MiB (was 1) makes a quarter of the GIL hand-overs
#: while ``import torch`` runs beside the read (torch_preload.py); at most ~4x that inflated
_READ = 4 << 20
GZIP_MAGIC = b"\x1f\x8b"


class InflateStream:
    """A read-only binary stream of the inflated bytes of ``path`` from byte ``offset``
    (``read(size)``, ``read_some()``, a context manager). ``wbits``: :data:`GZIP_WBITS` or
    :data:`ZLIB_WBITS`; ``trailing``: "ignore" or "refuse" (module docstring). Raises OSError
    when the file cannot be opened or sought."""

    def __init__(
        self,
        path: Union[str, Path],
        offset: int = 0,
        wbits: int = GZIP_WBITS,
        trailing: str = "ignore",
    ) -> None:
        if trailing not in ("ignore", "refuse"):
            raise ValueError(f"trailing must be 'ignore' or 'refuse', not {trailing!r}")
        self._gzip, self._wbits, self._trailing = bool(wbits & 16), wbits, trailing
        self._file = open(path, "rb", buffering=0)
        try:
            self._file.seek(offset)
        except (OSError, ValueError):
            self._file.close()
            raise
        self._member = _inflater.decompressobj(wbits)
        self._started = False  # whether the current member has received any byte
        self._input = b""  # compressed bytes not yet given to zlib
        self._done = False
        #: complete members (gzip) or streams (zlib) read so far
        self.members = 0
        #: bytes after the data that were neither zero padding nor another member (skipped)
        self.ignored = 0

    def __enter__(self) -> InflateStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` inflated bytes (all the rest when negative); fewer only at the end of
        the data, b"" after it. Raises EOFError (truncated) or zlib.error (corrupt)."""
        parts, need = [], size
        while need != 0 and not self._done:
            data = self._step(need)  # never more than asked: nothing is held back
            if data:
                parts.append(data)
                need = need - len(data) if need > 0 else need
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_some(self, limit: int = -1) -> bytes:
        """The next inflated bytes, as many as one read of the file gives (at most ``limit``
        when positive; no copy into chunks of a set size); b"" only at the end. Raises as
        :meth:`read` does."""
        data = b""
        while not data and not self._done:
            data = self._step(limit)
        return data

    def _step(self, wanted: int) -> bytes:
        """At most ``wanted`` (negative: any number of) more inflated bytes, possibly none."""
        if not self._input:
            self._input = self._file.read(_READ)
            if not self._input:  # the file's end
                if self._started and not self._member.eof:
                    raise EOFError(
                        "Compressed file ended before the end-of-stream marker was reached"
                    )
                self._done = True
                return b""
        if self._member.eof:  # after a member: padding, another member, or other bytes
            return self._after_member()
        self._started = True
        try:
            data = self._member.decompress(self._input, max(wanted, 0))  # 0: no limit
        except zlib.error:
            raise
        except _inflater.error as error:  # zlib-ng's own class: raised as zlib's
            raise zlib.error(str(error)) from error
        if self._member.eof:
            self.members += 1
        self._input = self._member.unconsumed_tail or self._member.unused_data
        return data

    def _after_member(self) -> bytes:
        self._input = self._input.lstrip(b"\x00")
        if len(self._input) == 1 and self._gzip:  # the magic may be split across two reads
            self._input += self._file.read(1)
        if not self._input:
            return b""
        if self._gzip and self._input[:2] == GZIP_MAGIC:
            self._member, self._started = _inflater.decompressobj(self._wbits), False
            return b""
        if self._trailing == "refuse":
            raise zlib.error("bytes after the compressed data that are not another gzip member")
        end = os.fstat(self._file.fileno()).st_size
        self.ignored = len(self._input) + max(end - self._file.tell(), 0)
        self._input, self._done = b"", True
        return b""


def trailing_warning(source: Union[str, Path], data: Union[str, Path], ignored: int) -> str:
    """The warning for ``ignored`` bytes after the compressed voxels of ``data`` (the image
    ``source`` itself, or its data file)."""
    where = "" if str(data) == str(source) else f" (image data file {data})"
    return (
        f"{source}{where}: {ignored} bytes after the end of its compressed voxels were ignored, "
        "as ITK (and 3D Slicer) ignore them; the voxels before them are complete and their "
        "checksum matches. Something may have been appended to the file: check where it came "
        "from."
    )

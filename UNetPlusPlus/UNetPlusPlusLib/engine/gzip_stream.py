"""Reading a gzip file straight through zlib: the decompressed bytes of ``gzip.open(path)``
with the same refusals, at about 70 % of its CPU time.

``gzip.GzipFile`` feeds zlib 8 KiB of the file at a time through several layers of Python
(``_compression.DecompressReader``, ``BufferedReader``) and checks the CRC itself; on a
512 x 512 x 300 int16 CT (67 MB compressed, 157 MB of voxels) that overhead was about
0.3 CPU-s of 1.0 (docs/BENCHMARK_E2E.md). Here zlib reads the gzip wrapper itself
(``wbits=31``), so it checks every member's CRC-32 and length, from 1 MiB reads of the file.

As ``gzip.open``: several members are read one after the other; zero bytes after a member are
padding; a file that ends inside a member raises EOFError; other bytes after a member, a bad
header or a bad CRC raise ``zlib.error`` (``gzip`` raised ``BadGzipFile``, an OSError: callers
catch both). An empty file reads as empty. Standard library only.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Union

_READ = 1 << 20  # bytes of the compressed file per read
_GZIP = 16 + zlib.MAX_WBITS  # zlib reads and checks the gzip header and trailer


class GzipStream:
    """A read-only binary stream of a gzip file's decompressed bytes (``read(size)``, a
    context manager). ``mode`` must be "rb". Raises OSError when the file cannot be opened."""

    def __init__(self, path: Union[str, Path], mode: str = "rb") -> None:
        if mode != "rb":
            raise ValueError("GzipStream reads only ('rb')")
        self._file = open(path, "rb", buffering=0)
        self._member = zlib.decompressobj(_GZIP)
        self._started = False  # whether the current member has received any byte
        self._input = b""  # compressed bytes not yet given to zlib
        self._done = False

    def __enter__(self) -> GzipStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._file.close()

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` decompressed bytes (all the rest when negative); fewer only at the
        end of the data, b"" after it. Raises EOFError (truncated) or zlib.error (corrupt)."""
        parts, need = [], size
        while need != 0 and not self._done:
            data = self._step(need)  # never more than asked: nothing is held back
            if data:
                parts.append(data)
                need = need - len(data) if need > 0 else need
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_some(self) -> bytes:
        """The next decompressed bytes, as many as one read of the file gives (no copy into
        chunks of a set size); b"" only at the end. Raises as :meth:`read` does."""
        data = b""
        while not data and not self._done:
            data = self._step(-1)
        return data

    def _step(self, wanted: int) -> bytes:
        """At most ``wanted`` (negative: any number of) more decompressed bytes, possibly none."""
        if not self._input:
            self._input = self._file.read(_READ)
            if not self._input:  # the file's end
                if self._started and not self._member.eof:
                    raise EOFError(
                        "Compressed file ended before the end-of-stream marker was reached"
                    )
                self._done = True
                return b""
        if self._member.eof:  # between members: padding, another member, or garbage
            self._input = self._input.lstrip(b"\x00")
            if not self._input:
                return b""
            self._member, self._started = zlib.decompressobj(_GZIP), False
        self._started = True
        data = self._member.decompress(self._input, max(wanted, 0))  # 0: no limit
        self._input = self._member.unconsumed_tail or self._member.unused_data
        return data

"""Reading a gzip file straight through zlib: the decompressed bytes of ``gzip.open(path)``
with the same refusals, at about 70 % of its CPU time.

``gzip.GzipFile`` feeds zlib 8 KiB of the file at a time through several layers of Python
(``_compression.DecompressReader``, ``BufferedReader``) and checks the CRC itself; on a
512 x 512 x 300 int16 CT (67 MB compressed, 157 MB of voxels) that overhead was about
0.3 CPU-s of 1.0 (docs/BENCHMARK_E2E.md). :class:`GzipStream` is
:class:`.inflate_stream.InflateStream` from the file's start: zlib reads the gzip wrapper
itself (``wbits=31``) and checks every member's CRC-32 and length, from 1 MiB reads.

As ``gzip.open``: several members are read one after the other; zero bytes after a member are
padding; a file that ends inside a member raises EOFError; other bytes after a member (with
the default ``trailing="refuse"``; "ignore" skips them and counts them in ``ignored``), a bad
header or a bad CRC raise ``zlib.error`` (``gzip`` raised ``BadGzipFile``, an OSError: callers
catch both). An empty file reads as empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from .inflate_stream import GZIP_WBITS, InflateStream


class GzipStream(InflateStream):
    """A read-only binary stream of a gzip file's decompressed bytes (``read(size)``,
    ``read_some()``, a context manager). ``mode`` must be "rb"; ``trailing``: what bytes after
    the last member that are not zero padding do ("refuse": zlib.error, as ``gzip.open``;
    "ignore": skipped, counted in ``ignored``). Raises OSError when the file cannot be opened."""

    def __init__(self, path: Union[str, Path], mode: str = "rb", trailing: str = "refuse") -> None:
        if mode != "rb":
            raise ValueError("GzipStream reads only ('rb')")
        super().__init__(path, 0, GZIP_WBITS, trailing)

"""engine/gzip_stream.py: the bytes of gzip.open, the same refusals (truncated, corrupt)."""

import gzip
import os
import zlib

import pytest
from UNetPlusPlusLib.engine.gzip_stream import GzipStream
from UNetPlusPlusLib.engine.nifti_check import _feed


def _write(tmp_path, data: bytes, name: str = "x.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _all(path, size: int) -> bytes:
    parts = []
    with GzipStream(path) as stream:
        while True:
            chunk = stream.read(size)
            if not chunk:
                return b"".join(parts)
            assert len(chunk) <= size
            parts.append(chunk)


def test_the_bytes_of_gzip_open_in_any_chunks_members_and_padding(tmp_path):
    payload = os.urandom(300_000) + bytes(2_500_000)  # incompressible, then long runs
    members = gzip.compress(payload[:1000], 1) + gzip.compress(payload[1000:], 9)
    path = _write(tmp_path, members + bytes(100))  # two members, zero padding after
    assert gzip.open(path).read() == payload
    for size in (1, 540, 1 << 20, 5_000_000):
        assert _all(path, size if size > 1 else 7919) == payload
    with GzipStream(path) as stream:
        assert stream.read(540) == payload[:540]  # exactly what was asked
        assert stream.read() == payload[540:]
        assert stream.read(10) == b""

    class Counted:  # what the NIfTI pass is fed: every byte once, through read_some
        bytes = b""

        def feed(self, chunk):
            self.bytes += chunk

    scan = Counted()
    with GzipStream(path) as stream:
        assert _feed(stream, scan) == len(payload) and scan.bytes == payload
    assert GzipStream(_write(tmp_path, b"", "empty.gz")).read() == b""


def test_truncated_and_corrupt_files_are_refused_as_gzip_refuses_them(tmp_path):
    whole = gzip.compress(os.urandom(50_000) + bytes(50_000))
    for cut in (5, len(whole) // 2, len(whole) - 4):  # in the header, the data, the trailer
        path = _write(tmp_path, whole[:cut])
        with pytest.raises(EOFError):
            gzip.open(path).read()
        with pytest.raises(EOFError):
            GzipStream(path).read()
    broken_crc = whole[:-8] + bytes([whole[-8] ^ 1]) + whole[-7:]
    garbage_after = whole + b"not gzip"
    for data in (broken_crc, garbage_after):
        path = _write(tmp_path, data)
        with pytest.raises(OSError):
            gzip.open(path).read()
        with pytest.raises(zlib.error):
            GzipStream(path).read()

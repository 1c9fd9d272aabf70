"""engine/inflate_stream.py: one reader for the gzip and zlib voxels of NIfTI, NRRD and
MetaImage files, and one policy for the bytes after them: zero padding in silence, other bytes
ignored (as ITK ignores them) with a warning, a damaged member after them refused."""

from __future__ import annotations

import gzip
import os
import warnings
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine import compressed_data, inflate_stream
from UNetPlusPlusLib.engine.image_read import read_image, read_volume
from UNetPlusPlusLib.engine.inflate_stream import GZIP_WBITS, ZLIB_WBITS, InflateStream
from UNetPlusPlusLib.errors import UNetPlusPlusError

TRAILER = b"appended by some tool\n"


def _image() -> sitk.Image:
    values = np.random.default_rng(3).integers(-1000, 400, (6, 7, 8)).astype(np.int16)
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.8, 0.9, 2.0))
    image.SetOrigin((-5.0, 3.0, 11.0))
    return image


def _read_warned(path) -> tuple[np.ndarray, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        array = read_volume([path]).array[0]
    return array, [str(w.message) for w in caught if "bytes after the end" in str(w.message)]


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nrrd", "ct.mha"])
def test_bytes_after_complete_voxels_are_ignored_as_itk_ignores_them_with_a_warning(name, tmp_path):
    """A complete, checksum-valid stream followed by other bytes: ITK reads the file, and so do
    we, with one warning naming the file and the byte count (a .nii.gz was refused, a .nrrd or
    .mha passed in silence). Zero padding after it passes in silence."""
    compressed_data._VERIFIED.clear()
    clean = tmp_path / name
    sitk.WriteImage(_image(), str(clean), True)
    expected, said = _read_warned(clean)
    assert said == []
    padded = tmp_path / f"padded-{name}"
    padded.write_bytes(clean.read_bytes() + bytes(300))
    assert np.array_equal(_read_warned(padded)[0], expected)
    assert _read_warned(padded)[1] == []
    appended = tmp_path / f"appended-{name}"
    appended.write_bytes(clean.read_bytes() + TRAILER)
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(appended)))  # ITK reads it
    assert np.array_equal(itk.astype(np.float32), expected)
    array, said = _read_warned(appended)
    assert np.array_equal(array, expected)
    # one message (the CLI and the Slicer panel show each text once; a header is checked twice)
    assert len(set(said)) == 1 and str(appended) in said[0] and f"{len(TRAILER)} bytes" in said[0]
    assert set(_read_warned(appended)[1]) == set(said)  # said again at the next read


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nrrd"])
def test_a_damaged_member_after_the_voxels_is_refused(name, tmp_path):
    """Bytes after the voxels that start as a gzip member are read as one: damaged, refused."""
    compressed_data._VERIFIED.clear()
    path = tmp_path / name
    sitk.WriteImage(_image(), str(path), True)
    extra = bytearray(gzip.compress(os.urandom(5000), mtime=0))
    extra[len(extra) // 2] ^= 0xFF
    path.write_bytes(path.read_bytes() + bytes(extra))
    with pytest.raises(UNetPlusPlusError, match="corrupt"):
        read_image(path)


@pytest.fixture(params=["zlib-ng", "zlib"])
def inflater(request, monkeypatch):
    """Each inflater the reader may use: zlib-ng (installed with the package) and the standard
    library's zlib (where zlib-ng is not installed)."""
    if request.param == "zlib-ng":
        module = pytest.importorskip("zlib_ng.zlib_ng")
    else:
        module = zlib
    monkeypatch.setattr(inflate_stream, "_inflater", module)
    return module


def test_zlib_ng_is_what_reads_when_it_is_installed():
    """pyproject.toml installs zlib-ng: the reader then inflates with it, not with zlib."""
    pytest.importorskip("zlib_ng")
    assert inflate_stream._inflater.__name__ == "zlib_ng.zlib_ng"


def test_zlib_and_gzip_from_an_offset_and_the_two_policies(tmp_path, inflater):
    """The reader from a byte offset: a zlib stream (MetaImage) and gzip members (with one
    zero-padded gap between them); the bytes after the data ignored and counted, or refused;
    with either inflater."""
    payload = os.urandom(3000) + bytes(200_000)
    path = tmp_path / "x.bin"
    path.write_bytes(b"HEADER\n\n" + zlib.compress(payload) + TRAILER)
    with InflateStream(path, 8, ZLIB_WBITS) as stream:
        assert stream.read() == payload
        assert (stream.members, stream.ignored) == (1, len(TRAILER))
    members = gzip.compress(payload[:100]) + bytes(3) + gzip.compress(payload[100:])
    path.write_bytes(b"HEADER\n\n" + members + TRAILER)
    with InflateStream(path, 8, GZIP_WBITS) as stream:
        assert b"".join(iter(lambda: stream.read_some(4096), b"")) == payload
        assert (stream.members, stream.ignored) == (2, len(TRAILER))
    with pytest.raises(zlib.error), InflateStream(path, 8, GZIP_WBITS, "refuse") as stream:
        stream.read()
    path.write_bytes(b"HEADER\n\n" + members[:-3])  # ends inside the last member
    with pytest.raises(EOFError), InflateStream(path, 8, GZIP_WBITS) as stream:
        stream.read()


@pytest.mark.parametrize("damage", ["crc", "length", "code"])
def test_a_damaged_stream_is_zlib_error_with_either_inflater(tmp_path, inflater, damage):
    """A wrong CRC-32 or length in a gzip trailer, or a corrupt deflate code: ``zlib.error``
    (what every caller catches) from zlib-ng as from zlib, never wrong voxels."""
    payload = np.random.default_rng(5).integers(0, 40, 300_000).astype(np.uint8).tobytes()
    data = bytearray(gzip.compress(payload, mtime=0))
    at = {"crc": len(data) - 8, "length": len(data) - 4, "code": len(data) // 2}[damage]
    data[at] ^= 0x5A
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(data))
    with pytest.raises(zlib.error), InflateStream(path) as stream:
        stream.read()

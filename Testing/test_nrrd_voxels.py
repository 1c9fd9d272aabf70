"""adapter/nrrd_voxels: whether an NRRD file holds given voxels, told at the first difference,
and "cannot tell" (None: the caller reads the file back with Slicer) for any file it does not
fully understand, never a wrong "different" (no Slicer needed)."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from UNetPlusPlusLib.adapter import nrrd_voxels
from UNetPlusPlusLib.adapter.nrrd_voxels import same_voxels

VOXELS = (np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6) * 7) - 300  # (z, y, x)


def nrrd(path, voxels=VOXELS, encoding="gzip", type_="short", extra="", data=None):
    """An NRRD file as Slicer writes one (sizes x y z; Slicer's key:=value lines too)."""
    z, y, x = voxels.shape
    header = (
        f"NRRD0004\n# Complete NRRD file format specification at:\ntype: {type_}\ndimension: 3\n"
        "space: left-posterior-superior\n"
        f"sizes: {x} {y} {z}\nspace directions: (1,0,0) (0,1,0) (0,0,2)\nkinds: domain domain "
        f"domain\nendian: little\nencoding: {encoding}\nspace origin: (0,0,0)\n{extra}"
        "Segmentation_MasterRepresentation:=Binary labelmap\n\n"
    )
    raw = voxels.astype("<i2").tobytes() if data is None else data
    path.write_bytes(header.encode() + (gzip.compress(raw) if encoding == "gzip" else raw))
    return path


def test_the_same_voxels_and_each_kind_of_difference(tmp_path):
    assert same_voxels(nrrd(tmp_path / "a.nrrd"), VOXELS) is True
    assert same_voxels(nrrd(tmp_path / "r.nrrd", encoding="raw"), VOXELS) is True
    last = VOXELS.copy()
    last[-1, -1, -1] += 1  # differs in its very last byte
    assert same_voxels(tmp_path / "a.nrrd", last) is False
    assert same_voxels(tmp_path / "r.nrrd", last) is False
    assert same_voxels(tmp_path / "a.nrrd", VOXELS.astype(np.float32)) is False  # type
    assert same_voxels(tmp_path / "a.nrrd", VOXELS.reshape(5, 4, 6)) is False  # shape
    assert same_voxels(tmp_path / "a.nrrd", VOXELS.transpose(0, 2, 1)) is False  # not x fastest


def test_another_image_is_told_at_its_first_differing_chunk(tmp_path, monkeypatch):
    """A file of another image is not decompressed to its end: the comparison stops at the first
    chunk that differs (here, with chunks of 64 bytes, the first of a 1 MB file)."""
    big = np.zeros((64, 64, 128), np.int16)
    big[0, 0, 0] = 1
    path = nrrd(tmp_path / "big.nrrd", big, encoding="raw")
    monkeypatch.setattr(nrrd_voxels, "_CHUNK", 64)
    reads = []
    real_open = open

    class Counted:
        def __init__(self, handle):
            self.handle = handle

        def read(self, size=-1):
            reads.append(size)
            return self.handle.read(size)

        def seek(self, offset):
            return self.handle.seek(offset)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(nrrd_voxels, "open", lambda p, m: Counted(real_open(p, m)), raising=False)
    assert same_voxels(path, np.zeros_like(big)) is False
    assert len(reads) == 2  # the header, then one chunk of data


def test_a_gzip_file_of_another_image_is_inflated_up_to_its_first_differing_chunk(
    tmp_path, monkeypatch
):
    """The engine's InflateStream gives the voxels at most a chunk at a time: a 1 MB image that
    differs in its first voxel is inflated for one chunk of 64 bytes, not to its end."""
    big = np.zeros((64, 64, 128), np.int16)
    big[0, 0, 0] = 1
    path = nrrd(tmp_path / "big.nrrd", big)
    monkeypatch.setattr(nrrd_voxels, "_CHUNK", 64)
    inflated = []

    class Counted(nrrd_voxels.InflateStream):
        def read_some(self, limit=-1):
            inflated.append(len(data := super().read_some(limit)))
            return data

    monkeypatch.setattr(nrrd_voxels, "InflateStream", Counted)
    assert same_voxels(path, np.zeros_like(big)) is False
    assert inflated == [64]
    assert same_voxels(path, big) is True
    assert sum(inflated) == 64 + big.nbytes


@pytest.mark.parametrize(
    "kind",
    ["detached", "vector", "byte skip", "truncated", "too long", "not nrrd", "4D"],
)
def test_a_file_it_does_not_fully_understand_is_cannot_tell(tmp_path, kind):
    """None, never False, for what Slicer might read otherwise: the case is then read back."""
    path = tmp_path / "a.nrrd"
    raw = VOXELS.astype("<i2").tobytes()
    if kind == "detached":
        nrrd(path, extra="data file: a.raw.gz\n")
    elif kind == "vector":
        nrrd(path)
        path.write_bytes(path.read_bytes().replace(b"kinds: domain", b"kinds: vector"))
    elif kind == "byte skip":
        nrrd(path, encoding="raw", extra="byte skip: 2\n", data=b"\0\0" + raw)
    elif kind == "truncated":
        nrrd(path)
        path.write_bytes(path.read_bytes()[:-20])
    elif kind == "too long":
        nrrd(path, encoding="raw", data=raw + b"\0\0")
    elif kind == "not nrrd":
        path.write_bytes(b"\0" * 400)
    else:
        nrrd(path)
        path.write_bytes(path.read_bytes().replace(b"dimension: 3", b"dimension: 4"))
    assert same_voxels(path, VOXELS) is None
    assert same_voxels(tmp_path / "missing.nrrd", VOXELS) is None


@pytest.mark.parametrize("encoding", ["gzip", "raw"])
def test_a_big_endian_file_is_compared_in_its_byte_order(tmp_path, encoding):
    """Slicer reads a big-endian NRRD's values in native order: the same values are the same
    image (this answered None, "cannot tell", before)."""
    path = nrrd(tmp_path / "b.nrrd", encoding=encoding, data=VOXELS.astype(">i2").tobytes())
    path.write_bytes(path.read_bytes().replace(b"endian: little", b"endian: big"))
    assert same_voxels(path, VOXELS) is True
    last = VOXELS.copy()
    last[-1, -1, -1] += 1
    assert same_voxels(path, last) is False


def test_gzip_data_are_read_as_itk_reads_them(tmp_path):
    """The engine's InflateStream reads the data: gzip members one after another (the first
    member alone had given "cannot tell"), bytes after the data ignored; a damaged or truncated
    stream is "cannot tell", never an exception or a wrong "different"."""
    raw = VOXELS.astype("<i2").tobytes()
    members = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    path = nrrd(tmp_path / "m.nrrd", encoding="raw", data=members)
    path.write_bytes(path.read_bytes().replace(b"encoding: raw", b"encoding: gzip"))
    assert same_voxels(path, VOXELS) is True
    path.write_bytes(path.read_bytes() + b"appended")
    assert same_voxels(path, VOXELS) is True

    whole = nrrd(tmp_path / "d.nrrd").read_bytes()
    crc = len(whole) - 8  # gzip's CRC-32 of the voxels: a mismatch only at the stream's end
    damaged = whole[:crc] + bytes(b ^ 0xFF for b in whole[crc : crc + 4]) + whole[crc + 4 :]
    (tmp_path / "d.nrrd").write_bytes(damaged)
    assert same_voxels(tmp_path / "d.nrrd", VOXELS) is None
    (tmp_path / "d.nrrd").write_bytes(whole[:-4])  # the length field cut
    assert same_voxels(tmp_path / "d.nrrd", VOXELS) is None

"""engine/compressed_voxels.py: a compressed NRRD or MetaImage is inflated once, by the check of
its stream, straight into the volume (ITK reads its header only); the voxels and geometry equal
ITK's whole reading, for every scalar type, either byte order and an oblique direction."""

from __future__ import annotations

import gzip
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
from UNetPlusPlusLib.engine.data_files import check_data_files
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.errors import UNetPlusPlusError

DTYPES = ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]


def _oblique(values: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(values)
    image.SetSpacing((0.7, 0.9, 2.5))
    image.SetOrigin((-12.5, 30.25, 7.0))
    c, s = np.cos(0.3), np.sin(0.3)
    image.SetDirection((c, 0.0, -s, 0.0, 1.0, 0.0, s, 0.0, c))
    return image


def _values(dtype: str) -> np.ndarray:
    values = np.random.default_rng(2).integers(0, 120, (5, 6, 7)).astype(dtype)
    if dtype[0] in "if":
        values[0, 0, :3] = [-100, -7, -1]
    return values


def _same_as_itk(path) -> None:
    assert check_data_files(path, keep=True) is not None  # the one-inflation path is taken
    volume, itk = read_volume([path]), sitk.ReadImage(str(path))
    np.testing.assert_array_equal(volume.array[0], sitk.GetArrayFromImage(itk).astype("f4"))
    assert volume.spacing == itk.GetSpacing() and volume.origin == itk.GetOrigin()
    assert volume.direction.flatten().tolist() == list(itk.GetDirection())


@pytest.mark.parametrize("name", ["x.nrrd", "x.nhdr", "x.mha", "x.mhd"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_compressed_voxels_read_once_equal_itk(tmp_path, name, dtype):
    """Every scalar type ITK writes, as an attached and a detached gzip NRRD and MetaImage."""
    path = tmp_path / name
    sitk.WriteImage(_oblique(_values(dtype)), str(path), True)
    _same_as_itk(path)


@pytest.mark.parametrize("kind", ["nrrd", "mha"])
def test_big_endian_voxels_read_as_itk_reads_them(tmp_path, kind):
    values = _values("i2")
    raw = values.astype(">i2").tobytes()
    if kind == "nrrd":
        path = tmp_path / "big.nrrd"
        head = (
            "NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
            "sizes: 7 6 5\nspace directions: (0.56,0,0.42) (0,0.9,0) (-1.5,0,2)\n"
            "space origin: (1,2,3)\nendian: big\nencoding: gzip\n\n"
        )
        path.write_bytes(head.encode() + gzip.compress(raw, mtime=0))
    else:
        path = tmp_path / "big.mha"
        head = (
            "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = True\n"
            f"CompressedData = True\nCompressedDataSize = {len(zlib.compress(raw))}\n"
            "TransformMatrix = 1 0 0 0 0.8 0.6 0 -0.6 0.8\n"
            "Offset = 1 2 3\nElementSpacing = 0.5 0.5 2\nDimSize = 7 6 5\n"
            "ElementType = MET_SHORT\nElementDataFile = LOCAL\n"
        )
        path.write_bytes(head.encode() + zlib.compress(raw))
    assert np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), values)
    _same_as_itk(path)


def test_other_layouts_are_read_by_itk_and_damage_is_still_refused(tmp_path):
    """A vector NRRD, a 4D one of one frame (read as 3D) and a 2D one are not kept: ITK reads
    them as before (refused, read, refused); damaged voxels are refused before ITK reads them."""
    vector = tmp_path / "vector.nrrd"
    sitk.WriteImage(sitk.Image([4, 5, 6], sitk.sitkVectorFloat32, 3), str(vector), True)
    assert check_data_files(vector, keep=True) is None
    with pytest.raises(UNetPlusPlusError, match="values per voxel"):
        read_volume([vector])
    frame = tmp_path / "frame.nrrd"
    sitk.WriteImage(sitk.JoinSeries(sitk.GetImageFromArray(_values("i2"))), str(frame), True)
    assert check_data_files(frame, keep=True) is None
    assert read_volume([frame]).array.shape == (1, 5, 6, 7)
    flat = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(_values("i2")[0]), str(flat), True)
    with pytest.raises(UNetPlusPlusError, match="2D image"):
        read_volume([flat])
    damaged = tmp_path / "damaged.nrrd"
    sitk.WriteImage(
        _oblique(np.arange(4000, dtype=np.int16).reshape(10, 20, 20)), str(damaged), True
    )
    data = bytearray(damaged.read_bytes())
    data[-40:-30] = bytes(b ^ 0x55 for b in data[-40:-30])
    damaged.write_bytes(bytes(data))
    with pytest.raises(UNetPlusPlusError, match="its compressed voxels (are corrupt|end early)"):
        read_volume([damaged])


def test_itk_reads_only_the_header_and_the_stream_is_inflated_once(tmp_path, monkeypatch):
    """read_volume of a gzip NRRD: one inflation (the check's), no whole-file ITK reading."""
    from UNetPlusPlusLib.engine import compressed_data, image_read

    path = tmp_path / "x.nrrd"
    values = _values("i2")
    sitk.WriteImage(_oblique(values), str(path), True)
    compressed_data._VERIFIED.clear()
    opened = []
    from UNetPlusPlusLib.engine.inflate_stream import InflateStream as inflate

    monkeypatch.setattr(  # counts the readers opened (raising=False: the former code too)
        compressed_data,
        "InflateStream",
        lambda *a, **k: opened.append(a) or inflate(*a, **k),
        raising=False,
    )

    def whole_read(*args, **kwargs):
        raise AssertionError("ITK read the whole file")

    monkeypatch.setattr(image_read.sitk, "ReadImage", whole_read)
    assert np.array_equal(read_volume([path]).array[0], values.astype("f4"))
    assert len(opened) == 1

"""A compressed MetaImage whose voxels follow the header (ElementDataFile = LOCAL) without a
CompressedDataSize field: ITK (SimpleITK 2.5.7, as 3D Slicer) prints "Uncompress failed" and
returns garbage voxels; our own inflation read the right voxels for a plain layout but ITK's
garbage for MET_LONG and in the streamed checks. One clear error instead."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from UNetPlusPlusLib.engine.image_read import read_volume
from UNetPlusPlusLib.engine.streamed_checks import check_files
from UNetPlusPlusLib.errors import UNetPlusPlusError

VALUES = np.arange(7 * 6 * 5, dtype=np.int32).reshape(5, 6, 7) - 100


def _mha(path, element_type: str, size_field: bool):
    data = zlib.compress(VALUES.astype("<i4").tobytes())
    head = (
        "ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
        "CompressedData = True\n"
        + (f"CompressedDataSize = {len(data)}\n" if size_field else "")
        + f"DimSize = 7 6 5\nElementType = {element_type}\nElementDataFile = LOCAL\n"
    )
    path.write_bytes(head.encode() + data)
    return path


@pytest.mark.parametrize("element_type", ["MET_INT", "MET_LONG"])
def test_no_compressed_data_size_is_one_clear_error(tmp_path, element_type):
    path = _mha(tmp_path / "ct.mha", element_type, size_field=False)
    for read in (lambda: read_volume([path]), lambda: check_files([path], ["CT"])):
        with pytest.raises(UNetPlusPlusError, match="no CompressedDataSize.*garbage voxels"):
            read()


def test_with_compressed_data_size_the_voxels_read(tmp_path):
    path = _mha(tmp_path / "ct.mha", "MET_INT", size_field=True)
    assert np.array_equal(read_volume([path]).array[0], VALUES.astype(np.float32))

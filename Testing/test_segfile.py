"""`.seg.nrrd` writing and reading without Slicer."""

from __future__ import annotations

import numpy as np
import slicerio
from helpers import rotation_matrix
from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology
from UNetPlusPlusLib.engine.volume import LabelVolume
from UNetPlusPlusLib.segfile import read_seg_nrrd, reference_geometry_string, write_seg_nrrd


def _labels() -> LabelVolume:
    array = np.zeros((5, 6, 7), dtype=np.uint8)
    array[1:3, 2:4, 3:6] = 1
    array[3, 4, 1] = 2
    return LabelVolume(
        array=array,
        spacing=(0.8, 1.1, 2.5),
        origin=(-10.0, 20.0, 33.0),
        direction=rotation_matrix((10, 20, 30)),
        labels=[
            LabelSpec(1, "liver", (0.9, 0.5, 0.4), standard_terminology("liver")),
            LabelSpec(2, "edema", (0.1, 0.8, 0.2), standard_terminology("edema")),
        ],
    )


def test_round_trip_keeps_voxels_geometry_names_and_codes(tmp_path):
    labels = _labels()
    path = write_seg_nrrd(labels, tmp_path / "x.seg.nrrd")
    back = read_seg_nrrd(path)
    np.testing.assert_array_equal(back.array, labels.array)
    np.testing.assert_allclose(back.spacing, labels.spacing, atol=1e-9)
    np.testing.assert_allclose(back.origin, labels.origin, atol=1e-9)
    np.testing.assert_allclose(back.direction, labels.direction, atol=1e-9)
    assert [(lab.value, lab.name) for lab in back.labels] == [(1, "liver"), (2, "edema")]
    assert back.labels[0].terminology["type"]["code"] == "10200004"
    assert back.labels[1].terminology["anatomic_region"]["meaning"] == "Brain"


def test_file_carries_slicer_metadata(tmp_path):
    labels = _labels()
    write_seg_nrrd(labels, tmp_path / "x.seg.nrrd")
    segmentation = slicerio.read_segmentation(str(tmp_path / "x.seg.nrrd"))
    names = [s["name"] for s in segmentation["segments"]]
    assert names == ["liver", "edema"]
    assert segmentation["segments"][0]["color"] == [0.9, 0.5, 0.4]
    liver = slicerio.segment_from_name(segmentation, "liver")
    assert liver["terminology"]["category"] == ["SCT", "123037004", "Anatomical Structure"]
    header = (tmp_path / "x.seg.nrrd").read_bytes()[:4000].decode("latin-1")
    assert "Reference image geometry" in header
    assert "space: left-posterior-superior" in header


def test_reference_geometry_is_ras():
    labels = _labels()
    values = reference_geometry_string(labels).strip(";").split(";")
    matrix = np.array(values[:16], dtype=float).reshape(4, 4)
    assert matrix[0, 3] == 10.0 and matrix[1, 3] == -20.0 and matrix[2, 3] == 33.0
    assert values[16:] == ["0", "6", "0", "5", "0", "4"]


def test_itk_reads_the_same_voxels_and_geometry(tmp_path):
    """Slicer reads a .seg.nrrd with ITK's NRRD reader: the file written from a transposed view
    at gzip level 1 (segfile.COMPRESSION_LEVEL) gives ITK the same voxels and geometry."""
    import gzip

    import SimpleITK as sitk

    labels = _labels()
    path = write_seg_nrrd(labels, tmp_path / "x.seg.nrrd")
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), labels.array)
    np.testing.assert_allclose(image.GetSpacing(), labels.spacing, atol=1e-9)
    np.testing.assert_allclose(image.GetOrigin(), labels.origin, atol=1e-9)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), labels.direction,
                               atol=1e-9)  # fmt: skip
    data = path.read_bytes()
    body = data[data.index(b"\n\n") + 2 :]
    assert gzip.decompress(body) == labels.array.tobytes()  # one plain gzip stream, x fastest

"""A training case exported from a volume whose image extent does not start at IJK index 0 (a
voxel-based crop kept in the input's index space, or ``imageData.SetExtent``), on an oblique
grid: the exported file holds its voxels where they are, and the case's identity
(adapter/case_identity.py) is that of those voxels where they are. Real MRML (slicer-core).

Slicer's IJK-to-RAS matrix is at index (0, 0, 0), not at the first voxel; Slicer's NRRD writer
puts the file's "space origin" at the first voxel. The identity hashed the matrix at index 0:
the same case read back from its files had another identity (a re-export, its record gone,
was written again as a second case), the same voxels indexed from 0 elsewhere had the same one
(refused as "already in the dataset" though it is another image), and a crop indexed from its
start and the same crop indexed from 0 (the same voxels in the same place) differed.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import crop_in_index_space, rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import case_records, geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.case_identity import image_identity, labels_identity  # noqa: E402
from UNetPlusPlusLib.adapter.training_export import export_training_case  # noqa: E402
from UNetPlusPlusLib.engine.manifest import LabelSpec, standard_terminology  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume, Volume  # noqa: E402
from UNetPlusPlusLib.errors import DuplicateCaseError  # noqa: E402

SPACING, ORIGIN = (1.0, 1.5, 2.0), (3.0, -4.0, 5.0)
DIRECTION = rotation_matrix((20, 10, 30))  # oblique on every axis
CROP = (2, 8, 1, 7, 3, 6)  # (i0, i1, j0, j1, k0, k1) of the 10 x 9 x 8 (x, y, z) image
LABELS = [LabelSpec(1, "liver", (0.8, 0.4, 0.3), standard_terminology("liver"))]


def index_space_crop(scene, whole_node, name: str):
    """``helpers.crop_in_index_space`` of ``whole_node`` to :data:`CROP`."""
    return crop_in_index_space(scene, whole_node, CROP, name)


def with_labels(node, name: str):
    """A segmentation of ``node`` on its grid: a box of label 1."""
    volume = geometry.volume_from_nodes([node])
    mask = np.zeros(volume.array.shape[1:], np.uint8)
    mask[1:3, 2:5, 1:4] = 1
    labels = LabelVolume(mask, volume.spacing, volume.origin, volume.direction, LABELS)
    return segmentation_writer.write_segments(labels, node, node_name=name)


@pytest.fixture()
def crops():
    """(scene, the crop indexed from its start, the same crop indexed from 0 (the same
    voxels in the same place), the same voxels indexed from 0 on the same matrix (elsewhere:
    2, 1, 3 voxels back along the oblique axes))."""
    scene = slicer.vtkMRMLScene()
    ramp = np.arange(10 * 9 * 8, dtype=np.float32).reshape(1, 8, 9, 10) - 200
    whole = geometry.volume_node_from_volume(
        scene, Volume(ramp, SPACING, ORIGIN, DIRECTION), "whole"
    )
    kept = index_space_crop(scene, whole, "kept")
    shifted = index_space_crop(scene, whole, "shifted")
    shifted.ShiftImageDataExtentToZeroStart()  # Slicer moves the origin: the same place
    elsewhere = index_space_crop(scene, whole, "elsewhere")
    elsewhere.GetImageData().SetExtent(0, CROP[1] - CROP[0], 0, CROP[3] - CROP[2], 0, 3)
    yield scene, kept, shifted, elsewhere
    scene.Clear(1)


def test_the_exported_file_holds_the_voxels_where_they_are(crops, tmp_path):
    _scene, kept, _shifted, _elsewhere = crops
    out = tmp_path / "cases"
    segmentation = with_labels(kept, "kept liver")
    written = export_training_case([kept], segmentation, out, "case001")
    image = sitk.ReadImage(str(out / "case001.nrrd"))
    spacing, origin, direction = geometry.geometry_from_ijk_to_ras(geometry.world_ijk_to_ras(kept))
    assert np.allclose(image.GetOrigin(), origin, atol=1e-4)  # the first voxel's centre, LPS
    assert np.allclose(image.GetSpacing(), spacing, atol=1e-6)
    assert np.allclose(np.reshape(image.GetDirection(), (3, 3)), direction, atol=1e-6)
    voxels = sitk.GetArrayFromImage(image)
    assert np.array_equal(voxels, geometry.array_from_volume_node(kept))
    x0, x1, y0, y1, z0, z1 = CROP
    ramp = np.arange(10 * 9 * 8, dtype=np.float32).reshape(8, 9, 10) - 200
    assert np.array_equal(voxels, ramp[z0 : z1 + 1, y0 : y1 + 1, x0 : x1 + 1])
    # the identity from the node is that of the files read back
    (case,) = case_records.folder_cases(out)
    assert case.name == "case001" and written.case == "case001"
    from_files = case_records.identity_from_files(case)
    assert from_files is not None and from_files.image == image_identity([kept], ["CT"])
    assert from_files.labels == labels_identity(segmentation)


def test_the_identity_is_of_the_voxels_where_they_are(crops):
    _scene, kept, shifted, elsewhere = crops
    assert image_identity([kept], ["CT"]) == image_identity([shifted], ["CT"])
    assert image_identity([kept], ["CT"]) != image_identity([elsewhere], ["CT"])


def test_the_same_image_is_one_case_and_another_place_another_case(crops, tmp_path):
    _scene, kept, shifted, elsewhere = crops
    out = tmp_path / "cases"
    export_training_case([kept], with_labels(kept, "kept liver"), out, "case001")
    # the same voxels elsewhere: another image, a case of its own (was "already in the dataset")
    written = export_training_case([elsewhere], with_labels(elsewhere, "e"), out, "case002")
    assert written.case == "case002" and not written.replaced
    # the same crop indexed from 0: the same image and labels, recorded or read back
    labels = with_labels(shifted, "shifted liver")
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([shifted], labels, out, "case003")
    (out / "case001.export.json").unlink()  # exported before records existed
    with pytest.raises(DuplicateCaseError, match="already in the dataset as case001 "):
        export_training_case([shifted], labels, out, "case003")
    assert not list(out.glob("case003*"))

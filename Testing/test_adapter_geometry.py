"""adapter/geometry: MRML volume nodes <-> engine volumes, RAS <-> LPS, against real MRML."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import make_sphere_image, rotation_matrix  # noqa: E402
from UNetPlusPlusLib.adapter import geometry  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

SPACING = (0.8, 1.3, 2.7)
ORIGIN = (12.5, -30.0, 41.0)


@pytest.fixture()
def oblique_image() -> sitk.Image:
    """Anisotropic spacing, an oblique direction and a sphere off-centre."""
    image = make_sphere_image(
        (20, 16, 12), SPACING, ORIGIN, rotation_matrix((20, -15, 35)), radius_mm=6.0
    )
    array = sitk.GetArrayFromImage(image)
    array += np.arange(array.size, dtype=np.float32).reshape(array.shape) * 0.01  # no symmetry
    out = sitk.GetImageFromArray(array)
    out.CopyInformation(image)
    return out


@pytest.fixture()
def scene():
    return slicer.vtkMRMLScene()


def test_ras_lps_flip_x_and_y_only():
    point = np.array([1.5, -2.0, 3.25])
    assert np.allclose(geometry.ras_to_lps(point), [-1.5, 2.0, 3.25])
    assert np.allclose(geometry.lps_to_ras(geometry.ras_to_lps(point)), point)
    many = np.arange(12.0).reshape(4, 3)
    assert np.allclose(geometry.ras_to_lps(many)[:, 2], many[:, 2])


def test_slicer_reader_and_adapter_agree_on_oblique_anisotropic_geometry(
    scene, oblique_image, tmp_path
):
    """Slicer's own NRRD reader does its RAS conversion; ours must give back the ITK geometry."""
    path = tmp_path / "oblique.nrrd"
    sitk.WriteImage(oblique_image, str(path))
    node = slicer.vtkMRMLScalarVolumeNode()
    scene.AddNode(node)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)

    volume = geometry.volume_from_nodes([node], channel_names=["CT"])

    assert volume.array.shape == (1, 12, 16, 20)
    assert np.allclose(volume.spacing, SPACING)
    assert np.allclose(volume.origin, ORIGIN)
    assert np.allclose(volume.direction, np.reshape(oblique_image.GetDirection(), (3, 3)))
    assert np.array_equal(volume.array[0], sitk.GetArrayFromImage(oblique_image))
    assert volume.channel_names == ("CT",)


def test_voxel_positions_match_between_node_and_engine(scene, oblique_image):
    volume = volume_from_sitk([oblique_image])
    node = geometry.volume_node_from_volume(scene, volume, "ct")
    ijk_to_ras = geometry.world_ijk_to_ras(node)
    for index in ([0, 0, 0], [19, 15, 11], [3, 7, 5]):
        ras = (ijk_to_ras @ np.array([*index, 1.0]))[:3]
        lps = oblique_image.TransformIndexToPhysicalPoint(index)
        assert np.allclose(geometry.ras_to_lps(ras), lps, atol=1e-6)
    back = geometry.volume_from_nodes([node])
    assert np.allclose(back.direction, volume.direction)
    assert np.allclose(back.origin, volume.origin)
    assert np.array_equal(back.array, volume.array)


def test_linear_parent_transform_is_folded_in(scene, oblique_image):
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([oblique_image]), "ct")
    transform = slicer.vtkMRMLLinearTransformNode()
    scene.AddNode(transform)
    matrix = geometry._vtk_matrix_from_numpy(
        np.array([[1, 0, 0, 10.0], [0, 1, 0, 0], [0, 0, 1, -5.0], [0, 0, 0, 1]])
    )
    transform.SetMatrixTransformToParent(matrix)
    node.SetAndObserveTransformNodeID(transform.GetID())

    volume = geometry.volume_from_nodes([node])

    # +10 mm right is -10 mm in L; -5 mm superior stays -5 mm
    assert np.allclose(np.subtract(volume.origin, ORIGIN), [-10.0, 0.0, -5.0])


def test_channels_on_different_grids_are_refused(scene, oblique_image):
    a = geometry.volume_node_from_volume(scene, volume_from_sitk([oblique_image]), "flair")
    shifted = sitk.Image(oblique_image)
    shifted.SetOrigin(np.add(ORIGIN, (0.5, 0, 0)).tolist())
    b = geometry.volume_node_from_volume(scene, volume_from_sitk([shifted]), "t1")
    with pytest.raises(UNetPlusPlusError, match="'flair' and 't1' are not on the same voxel grid"):
        geometry.volume_from_nodes([a, b])
    same = geometry.volume_node_from_volume(scene, volume_from_sitk([oblique_image]), "t2")
    assert geometry.volume_from_nodes([a, same]).array.shape[0] == 2


def test_missing_or_empty_inputs_give_clear_errors(scene, oblique_image):
    node = geometry.volume_node_from_volume(scene, volume_from_sitk([oblique_image]), "ct")
    with pytest.raises(UNetPlusPlusError, match="No input volume selected for T1ce"):
        geometry.volume_from_nodes([node, None], labels=["FLAIR", "T1ce"])
    with pytest.raises(UNetPlusPlusError, match="No input volume selected"):
        geometry.volume_from_nodes([])
    empty = slicer.vtkMRMLScalarVolumeNode()
    empty.SetName("empty")
    scene.AddNode(empty)
    with pytest.raises(UNetPlusPlusError, match="'empty' has no image data"):
        geometry.volume_from_nodes([empty])


def test_colour_volume_is_refused(scene):
    import vtk

    rgb = vtk.vtkImageData()
    rgb.SetDimensions(4, 4, 4)
    rgb.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 3)
    node = slicer.vtkMRMLVectorVolumeNode()
    node.SetName("photo")
    node.SetAndObserveImageData(rgb)
    scene.AddNode(node)
    with pytest.raises(UNetPlusPlusError, match="'photo' has 3 components"):
        geometry.volume_from_nodes([node])


def test_labelmap_is_voxel_aligned_with_its_volume(scene, oblique_image):
    volume = volume_from_sitk([oblique_image])
    node = geometry.volume_node_from_volume(scene, volume, "ct")
    array = (sitk.GetArrayFromImage(oblique_image) > 150).astype(np.uint8)
    labels = LabelVolume(array, volume.spacing, volume.origin, volume.direction, [])

    image = geometry.oriented_image_from_labels(labels)

    assert np.allclose(geometry.image_to_world_matrix(image), geometry.world_ijk_to_ras(node))
    assert np.array_equal(geometry.array_from_oriented_image(image), array)


def test_roi_and_control_points_become_lps(scene):
    roi = slicer.vtkMRMLMarkupsROINode()
    roi.SetName("box")
    scene.AddNode(roi)
    roi.SetCenter(10.0, -20.0, 30.0)
    roi.SetSize(4.0, 6.0, 8.0)
    corner_a, corner_b = geometry.roi_box_lps(roi)
    assert np.allclose(corner_a, [-8.0, 23.0, 26.0])
    assert np.allclose(corner_b, [-12.0, 17.0, 34.0])

    points = slicer.vtkMRMLMarkupsFiducialNode()
    points.SetName("nodules")
    scene.AddNode(points)
    with pytest.raises(UNetPlusPlusError, match="place a point first"):
        geometry.control_point_ras(points, 0)
    points.AddControlPoint(1.0, 2.0, 3.0)
    assert np.allclose(geometry.control_point_ras(points, 0), [1.0, 2.0, 3.0])

"""Nodule clicks and memory (issue 10, defect 5), on real MRML: every click writes its nodule
with the smallest extent that holds it, so ten clicks on a 512x512x300 CT keep the segmentation
within a small multiple of the nodules' bounding boxes (a labelmap as large as the CT, as before,
is about 79 MB per click), and each nodule stays voxel-aligned with the CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NODULE_MODEL = REPO / "UNetPlusPlus" / "UNetPlusPlusLib" / "Resources" / "Models" / "lung-nodule"
SHAPE = (300, 512, 512)  # (z, y, x)
RADIUS = 4  # voxels: a nodule's bounding box is 9 x 9 x 9 voxels


def ct_node(scene):
    """A 512x512x300 CT node (uint8 voxels: only its grid matters here)."""
    image = vtk.vtkImageData()
    image.SetDimensions(SHAPE[2], SHAPE[1], SHAPE[0])
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("CT")
    node.SetSpacing(0.7, 0.7, 1.25)
    node.SetOrigin(-179.0, -160.0, -300.0)
    node.SetAndObserveImageData(image)
    scene.AddNode(node)
    return node


def nodule_result(node, manifest, centre_zyx) -> LabelVolume:
    """What the engine returns for one click: the whole CT grid, one small ball labelled 1."""
    array = np.zeros(SHAPE, dtype=np.uint8)
    z, y, x = centre_zyx
    r = RADIUS
    zz, yy, xx = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    array[z - r : z + r + 1, y - r : y + r + 1, x - r : x + r + 1] = zz**2 + yy**2 + xx**2 <= r * r
    spacing, origin, direction = geometry.geometry_from_ijk_to_ras(geometry.world_ijk_to_ras(node))
    return LabelVolume(array, spacing, origin, direction, list(manifest.labels))


def labelmap_bytes(segmentation_node) -> int:
    """Memory of every distinct labelmap layer of the node, in bytes (VTK's own count)."""
    segmentation = segmentation_node.GetSegmentation()
    layers = {}
    for i in range(segmentation.GetNumberOfSegments()):
        image = segmentation.GetNthSegment(i).GetRepresentation(
            segmentation_writer.binary_labelmap_name()
        )
        layers[image.GetAddressAsString("vtkOrientedImageData")] = image
    return sum(image.GetActualMemorySize() * 1024 for image in layers.values())


def test_ten_nodule_clicks_keep_the_segmentation_small_and_aligned():
    scene = slicer.vtkMRMLScene()
    node = ct_node(scene)
    manifest = ModelManifest.load(NODULE_MODEL / "model.json")
    logic = SegmentationLogic()
    rng = np.random.default_rng(7)
    centres = [tuple(int(rng.integers(RADIUS, s - RADIUS)) for s in SHAPE) for _ in range(10)]
    box_bytes = (2 * RADIUS + 1) ** 3  # uint8 voxels of one nodule's bounding box
    output = None
    for click, centre in enumerate(centres, start=1):
        output = logic.write_result(nodule_result(node, manifest, centre), [node], manifest, output)
        # within 4x the boxes (plus VTK's 1 KiB rounding per layer); a whole-CT layer is 79 MB
        assert labelmap_bytes(output) <= click * (4 * box_bytes + 1024), f"click {click}"
    names = segmentation_writer.segment_names(output)
    assert names == [f"nodule {i}" for i in range(1, 11)]

    # each nodule is exactly the clicked ball, on the CT's voxels (extent holds the offset)
    segmentation = output.GetSegmentation()
    for name, (z, y, x) in zip(names, centres):
        image = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
        image = image.GetRepresentation(segmentation_writer.binary_labelmap_name())
        r = RADIUS
        assert image.GetExtent() == (x - r, x + r, y - r, y + r, z - r, z + r)
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        expected = geometry.world_ijk_to_ras(node)
        got = np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])
        assert np.allclose(got, expected, atol=1e-6)
    first = segmentation.GetNthSegment(0).GetRepresentation(
        segmentation_writer.binary_labelmap_name()
    )
    full = geometry.array_from_oriented_image(first, SHAPE)
    assert np.array_equal(full > 0, nodule_result(node, manifest, centres[0]).array > 0)


def test_an_empty_nodule_result_adds_an_empty_segment():
    scene = slicer.vtkMRMLScene()
    node = ct_node(scene)
    manifest = ModelManifest.load(NODULE_MODEL / "model.json")
    spacing, origin, direction = geometry.geometry_from_ijk_to_ras(geometry.world_ijk_to_ras(node))
    empty = LabelVolume(np.zeros(SHAPE, np.uint8), spacing, origin, direction, manifest.labels)
    output = SegmentationLogic().write_result(empty, [node], manifest)
    assert segmentation_writer.segment_names(output) == ["nodule 1"]
    assert labelmap_bytes(output) <= 1024


def test_cropped_nodules_export_on_the_ct_grid(tmp_path):
    """A training-case export writes the cropped nodules back on the CT's full voxel grid."""
    slicerio = pytest.importorskip("slicerio")
    scene = slicer.vtkMRMLScene()
    shape = (30, 36, 40)
    image = vtk.vtkImageData()
    image.SetDimensions(shape[2], shape[1], shape[0])
    image.AllocateScalars(vtk.VTK_SHORT, 1)
    node = slicer.vtkMRMLScalarVolumeNode()
    node.SetName("CT")
    node.SetSpacing(1.5, 1.5, 2.0)
    node.SetAndObserveImageData(image)
    scene.AddNode(node)
    manifest = ModelManifest.load(NODULE_MODEL / "model.json")
    spacing, origin, direction = geometry.geometry_from_ijk_to_ras(geometry.world_ijk_to_ras(node))
    truth, output = np.zeros(shape, np.uint8), None
    for z, y, x in ((5, 6, 7), (20, 25, 30)):
        array = np.zeros(shape, np.uint8)
        array[z - 2 : z + 3, y - 2 : y + 3, x - 2 : x + 3] = 1
        truth |= array
        labels = LabelVolume(array, spacing, origin, direction, manifest.labels)
        output = SegmentationLogic().write_result(labels, [node], manifest, output)
    written = SegmentationLogic.export_training_case([node], output, tmp_path, "case1", ["CT"])
    segmentation = slicerio.read_segmentation(str(written[-1]))
    voxels = np.transpose(segmentation["voxels"], (2, 1, 0))  # slicerio: (i, j, k)
    assert voxels.shape == shape
    assert np.array_equal(voxels > 0, truth > 0)

"""adapter/logic: the blocking Logic run against a real MRML scene with the tiny sphere model.

The model (Testing/fixtures) segments 300 HU balls; it is trained, not mocked, so these tests
check real behaviour: names and terminology from the manifest, voxel alignment with the input
volume, the .seg.nrrd file, cancel, re-runs that keep user edits, ROI, point prompts, export.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import dice, make_sphere_image, rotation_matrix, sphere_mask  # noqa: E402
from UNetPlusPlusLib.adapter import geometry, segmentation_writer  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest, terminology_entry_string  # noqa: E402
from UNetPlusPlusLib.errors import CancelledError, UNetPlusPlusError  # noqa: E402

RADIUS = 9.0


@pytest.fixture(scope="module")
def manifest(sphere_model) -> ModelManifest:
    return ModelManifest.load(sphere_model)


@pytest.fixture(scope="module")
def oblique_sphere() -> sitk.Image:
    """A 300 HU ball in an oblique, anisotropic volume."""
    return make_sphere_image(
        (24, 20, 16), (1.7, 2.1, 2.6), (-15.0, 22.0, 40.0), rotation_matrix((12, -8, 25)),
        radius_mm=RADIUS,
    )  # fmt: skip


def centre_of(image: sitk.Image):
    return image.TransformContinuousIndexToPhysicalPoint([(s - 1) / 2 for s in image.GetSize()])


def add_volume(scene, image: sitk.Image, name: str = "CT"):
    return geometry.volume_node_from_volume(scene, volume_from_sitk([image]), name)


def segment_mask(node, name: str, shape=None) -> np.ndarray:
    segmentation = node.GetSegmentation()
    segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
    image = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    return geometry.array_from_oriented_image(image, shape) == segment.GetLabelValue()


def scene_state(scene) -> list:
    """Every node and every segment (name and voxels) in the scene."""
    state = []
    for i in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(i)
        state.append(node.GetID())
        if node.IsA("vtkMRMLSegmentationNode"):
            for name in segmentation_writer.segment_names(node):
                state.append((name, segment_mask(node, name).tobytes()))
    return state


def test_segment_writes_coded_segments_aligned_with_the_volume(
    logic, manifest, sphere_model, sphere_predictor, oblique_sphere
):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, oblique_sphere)

    node = logic.segment([volume_node], sphere_model, device="cpu")

    assert node.GetScene() is scene
    assert segmentation_writer.segment_names(node) == [label.name for label in manifest.labels]
    segmentation = node.GetSegmentation()
    segment = segmentation.GetNthSegment(0)
    assert np.allclose(segment.GetColor(), manifest.labels[0].color)
    import vtk

    tag = vtk.reference("")
    segment.GetTag(segment.GetTerminologyEntryTagName(), tag)
    assert str(tag) == terminology_entry_string(manifest.labels[0])
    assert "SCT^10200004^Liver" in str(tag)
    # on the volume's voxels, and equal to the engine's own result on the same image
    labelmap = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    assert np.allclose(
        geometry.image_to_world_matrix(labelmap), geometry.world_ijk_to_ras(volume_node)
    )
    engine = sphere_predictor.segment(volume_from_sitk([oblique_sphere]), depth="auto")
    assert np.array_equal(segment_mask(node, "liver"), engine.labels.array == 1)
    truth = sphere_mask(oblique_sphere, centre_of(oblique_sphere), RADIUS)
    assert dice(segment_mask(node, "liver"), truth) > 0.85


def test_seg_nrrd_written_by_slicer_reads_back(logic, sphere_model, oblique_sphere, tmp_path):
    import slicerio
    from UNetPlusPlusLib.segfile import read_seg_nrrd

    scene = slicer.vtkMRMLScene()
    node = logic.segment([add_volume(scene, oblique_sphere)], sphere_model, device="cpu")
    path = tmp_path / "result.seg.nrrd"
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetCropToMinimumExtent(False)
    assert storage.WriteData(node)

    raw = slicerio.read_segmentation(str(path))
    assert [s["name"] for s in raw["segments"]] == ["liver"]
    assert raw["segments"][0]["terminology"]["type"][1] == "10200004"
    labels = read_seg_nrrd(path)
    grid = volume_from_sitk([oblique_sphere]).grid
    assert labels.grid.isclose(grid)
    assert np.array_equal(labels.array == 1, segment_mask(node, "liver"))


def test_cancel_mid_run_leaves_the_scene_unchanged(logic, sphere_model, oblique_sphere):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, oblique_sphere)
    existing = logic.segment([volume_node], sphere_model, device="cpu")
    before = scene_state(scene)
    events = []

    with pytest.raises(CancelledError):
        logic.segment(
            [volume_node],
            sphere_model,
            device="cpu",
            output_node=existing,
            replace_existing=True,
            progress=lambda *event: events.append(event),
            cancel=lambda: len(events) > 0,
        )

    assert events, "the run reported no progress before it was cancelled"
    assert scene_state(scene) == before


def test_rerun_keeps_edited_segments_and_replace_is_explicit(logic, sphere_model, oblique_sphere):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, oblique_sphere)
    first = logic.segment([volume_node], sphere_model, device="cpu")
    # the user paints a block into the liver segment
    segmentation = first.GetSegmentation()
    segment = segmentation.GetNthSegment(0)
    labelmap = segment.GetRepresentation(segmentation_writer.binary_labelmap_name())
    from vtkmodules.util import numpy_support

    voxels = numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())
    voxels.reshape(labelmap.GetDimensions()[::-1])[0:3, 0:3, 0:3] = segment.GetLabelValue()
    labelmap.Modified()
    edited = segment_mask(first, "liver").copy()
    assert edited[0:3, 0:3, 0:3].all()

    second = logic.segment([volume_node], sphere_model, device="cpu", output_node=first)

    assert second is not first
    assert np.array_equal(segment_mask(first, "liver"), edited)
    assert not segment_mask(second, "liver")[0:3, 0:3, 0:3].any()

    replaced = logic.segment(
        [volume_node], sphere_model, device="cpu", output_node=first, replace_existing=True
    )
    assert replaced is first
    assert np.array_equal(segment_mask(first, "liver"), segment_mask(second, "liver"))
    # even when replacing, the painted segment is kept under a new name, and the panel says so
    assert np.array_equal(segment_mask(first, "liver (edited)"), edited)
    assert any("'liver (edited)'" in warning for warning in logic.warnings)
    # the new, unedited 'liver' is replaced by a further run without another copy
    logic.segment(
        [volume_node], sphere_model, device="cpu", output_node=first, replace_existing=True
    )
    assert sorted(segmentation_writer.segment_names(first)) == ["liver", "liver (edited)"]


def test_missing_or_extra_input_gives_a_clear_error(logic, sphere_model, oblique_sphere):
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, oblique_sphere)
    before = scene_state(scene)
    with pytest.raises(UNetPlusPlusError, match="No input volume selected for CT"):
        logic.segment([None], sphere_model, device="cpu")
    with pytest.raises(UNetPlusPlusError, match=r"needs 1 input volume\(s\) \(CT\); 2 given"):
        logic.segment([volume_node, volume_node], sphere_model, device="cpu")
    assert scene_state(scene) == before


def test_roi_restricts_inference(logic, sphere_model):
    image = make_sphere_image(
        (24, 24, 24), (2.0, 2.0, 2.0), (-23.0, -23.0, -23.0), radius_mm=RADIUS
    )
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, image)
    roi = slicer.vtkMRMLMarkupsROINode()
    scene.AddNode(roi)
    roi.SetCenter(RADIUS, 0.0, 0.0)  # the ball's right half (RAS x > 0)
    roi.SetSize(2 * RADIUS, 4 * RADIUS, 4 * RADIUS)

    node = logic.segment([volume_node], sphere_model, device="cpu", roi_node=roi)

    mask = segment_mask(node, "liver")
    truth = sphere_mask(image, (0.0, 0.0, 0.0), RADIUS)
    points_ras = geometry.lps_to_ras(
        [image.TransformIndexToPhysicalPoint([int(i) for i in idx[::-1]])
         for idx in np.argwhere(mask)]
    )  # fmt: skip
    assert points_ras[:, 0].min() >= -2.0  # nothing left of the ROI (one voxel of slack)
    assert 0.35 * truth.sum() < mask.sum() < 0.75 * truth.sum()


def test_point_prompted_model_adds_one_numbered_segment_per_click(logic, sphere_model, tmp_path):
    package = tmp_path / "nodule-model"
    shutil.copytree(sphere_model.parent, package)
    data = json.loads((package / "model.json").read_text())
    data["prompt"] = {"kind": "point", "box_mm": [30.0, 30.0, 30.0]}
    (package / "model.json").write_text(json.dumps(data))
    left, right = (-20.0, 0.0, 0.0), (20.0, 0.0, 0.0)
    size, spacing, origin = (36, 20, 20), (2.0, 2.0, 2.0), (-35.0, -19.0, -19.0)
    image = make_sphere_image(size, spacing, origin, center_lps=left, radius_mm=7.0)
    array = np.maximum(
        sitk.GetArrayFromImage(image),
        sitk.GetArrayFromImage(
            make_sphere_image(size, spacing, origin, center_lps=right, radius_mm=7.0)
        ),
    )
    both = sitk.GetImageFromArray(array)
    both.CopyInformation(image)
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, both)

    with pytest.raises(UNetPlusPlusError, match="give a point"):
        logic.segment([volume_node], package / "model.json", device="cpu")
    first = logic.segment(
        [volume_node], package / "model.json", device="cpu", point_ras=geometry.lps_to_ras(left)
    )
    second = logic.segment(
        [volume_node],
        package / "model.json",
        device="cpu",
        point_ras=geometry.lps_to_ras(right),
        output_node=first,
    )

    assert second is first
    assert segmentation_writer.segment_names(first) == ["liver 1", "liver 2"]
    for name, centre in (("liver 1", left), ("liver 2", right)):
        truth = sphere_mask(both, centre, 7.0)
        # each nodule is stored with its own small extent (issue 10, defect 5)
        assert dice(segment_mask(first, name, truth.shape), truth) > 0.8


def test_export_training_case_is_read_by_the_trainer(logic, sphere_model, oblique_sphere, tmp_path):
    dataset_module = pytest.importorskip("UNetPlusPlusLib.training.dataset")
    slicer_export = pytest.importorskip("UNetPlusPlusLib.training.dataset_slicer")
    cases_module = pytest.importorskip("UNetPlusPlusLib.training.cases")
    scene = slicer.vtkMRMLScene()
    volume_node = add_volume(scene, oblique_sphere)
    node = logic.segment([volume_node], sphere_model, device="cpu")
    nodes_before = scene.GetNumberOfNodes()

    written = logic.export_training_case([volume_node], node, tmp_path / "export", "case007")

    assert [p.name for p in written] == ["case007.nrrd", "case007.seg.nrrd"]
    assert scene.GetNumberOfNodes() == nodes_before  # storage nodes stay out of the scene
    dataset = slicer_export.describe_slicer_export(tmp_path / "export")
    assert dataset.label_names == ["liver"]
    (case,) = dataset_module.find_cases(dataset)
    data = cases_module.read_case(case, dataset)
    assert data.image.grid.isclose(volume_from_sitk([oblique_sphere]).grid)
    assert np.array_equal(data.labels == 1, segment_mask(node, "liver"))

    two = logic.export_training_case(
        [volume_node, volume_node], node, tmp_path / "multi", "case008", ["FLAIR", "T1"]
    )
    assert [p.name for p in two] == ["case008_FLAIR.nrrd", "case008_T1.nrrd", "case008.seg.nrrd"]
    with pytest.raises(UNetPlusPlusError, match="not a valid file name"):
        logic.export_training_case([volume_node], node, tmp_path, "a/b")

    # a second export under the same case name (a script's fixed name) keeps the first
    corrected = tmp_path / "export" / "case007.seg.nrrd"
    before = corrected.read_bytes()
    with pytest.raises(UNetPlusPlusError, match=r"Case 'case007' already exists .*case007.nrrd"):
        logic.export_training_case([volume_node], node, tmp_path / "export", "case007")
    assert corrected.read_bytes() == before
    again = logic.export_training_case(
        [volume_node], node, tmp_path / "export", "case007", overwrite=True
    )
    assert [p.name for p in again] == ["case007.nrrd", "case007.seg.nrrd"]


def test_export_refuses_channel_names_that_clash_or_are_no_file_names(
    logic, sphere_model, oblique_sphere, tmp_path
):
    """Tester 13: two volumes whose nodes share a name (or two equal channel names) were written
    to one file, <case>_T1.nrrd, the first channel silently lost; a name with '/' went into
    another folder; three names for two volumes dropped one silently."""
    scene = slicer.vtkMRMLScene()
    first, second = add_volume(scene, oblique_sphere, "T1"), add_volume(scene, oblique_sphere)
    second.SetName("T1")  # Slicer lets the user give two nodes one name (Data module)
    node = logic.segment([first], sphere_model, device="cpu")
    out = tmp_path / "export"
    for names, match in [
        ((), "T1.*twice"),
        (("FLAIR", "FLAIR"), "FLAIR.*twice"),
        (("FLAIR", "../T1"), "not a valid file name"),
        (("FLAIR", "T1", "T2"), "3 channel names for 2 volumes"),
    ]:
        with pytest.raises(UNetPlusPlusError, match=match):
            logic.export_training_case([first, second], node, out, "case1", names)
        assert not out.exists() or list(out.iterdir()) == []
    written = logic.export_training_case([first, second], node, out, "case1", ["T1", "T2"])
    assert [p.name for p in written] == ["case1_T1.nrrd", "case1_T2.nrrd", "case1.seg.nrrd"]


# --------------------------------------------------------------------------- input sanity
def test_check_inputs_refuses_an_empty_volume_before_any_job(logic, manifest, oblique_sphere):
    scene = slicer.vtkMRMLScene()
    empty = add_volume(scene, oblique_sphere * 0, "empty")
    before = scene_state(scene)
    with pytest.raises(UNetPlusPlusError, match="Input channel 'CT' is empty"):
        logic.check_inputs([empty], manifest)
    with pytest.raises(UNetPlusPlusError, match="is empty"):
        logic.start_job([empty], manifest, depth=1)
    assert scene_state(scene) == before


def test_input_warnings_reach_the_logic_and_the_job(logic, manifest):
    thick = make_sphere_image((24, 24, 3), (2.0, 2.0, 12.0), radius_mm=8.0)
    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, thick, "thick")
    warnings = logic.check_inputs([node], manifest)
    assert len(warnings) == 1 and "very thick voxels" in warnings[0]
    logic.segment([node], manifest, depth=1)
    assert any("very thick voxels" in w for w in logic.warnings)
    job = logic.start_job([node], manifest, depth=1)
    try:
        assert any("very thick voxels" in w for w in job.warnings)
        job.wait(timeout=120)
    finally:
        job.cancel()
    assert job.state == "succeeded"
    assert any("very thick voxels" in w for w in job.result["warnings"])

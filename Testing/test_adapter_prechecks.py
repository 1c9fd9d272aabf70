"""The Slicer Logic refuses, before any run starts, what the engine's process would refuse only
after its start (seconds later): an image that is a speck at the model's scale (a header
spacing in a wrong unit, engine/scale_check.py; it only warned of fine voxels and started the
run), and an ROI wholly off the image (named by its node, in RAS: the in-process engine named
an LPS box, "(LPS) lies outside the volume"). Real MRML (slicer-core), the tiny sphere model;
the scene is untouched and no job is started."""

from __future__ import annotations

import pytest
import SimpleITK as sitk

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import make_sphere_image  # noqa: E402
from test_adapter_logic import add_volume, scene_state  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

ROI_OFF = "ROI 'R' from (495, 495, 495) to (505, 505, 505) mm RAS lies outside the image"


def ball(scene, spacing: float, name: str):
    """The sphere model's test ball (24 x 20 x 20 voxels) with ``spacing`` mm in its header."""
    image = make_sphere_image((24, 20, 20), spacing=(spacing,) * 3, radius_mm=5 * spacing, noise=5)
    return add_volume(scene, sitk.Cast(image, sitk.sitkInt16), name)


def refused(action) -> str:
    with pytest.raises(UNetPlusPlusError) as error:
        action()
    return str(error.value)


def test_a_speck_at_the_models_scale_is_refused_before_any_run(sphere_model):
    scene = slicer.vtkMRMLScene()
    node = ball(scene, 0.05, "ball")  # 1.2 mm across: the sphere model's tile is 64 mm
    logic = SegmentationLogic(persistent=False)
    before = scene_state(scene)
    try:
        for action in (
            lambda: logic.check_inputs([node], sphere_model),
            lambda: logic.start_job([node], sphere_model, device="cpu"),
            lambda: logic.segment([node], sphere_model, device="cpu"),
        ):
            message = refused(action)
            assert message.startswith(  # the engine's words (the CLI's), naming the volume
                "Volume 'ball' has voxels of 0.05 x 0.05 x 0.05 mm and measures only "
                "1.2 x 1 x 1 mm: no scan of a patient is that small"
            ), message
            assert "wrong unit" in message and "Traceback" not in message
        assert not logic._jobs and scene_state(scene) == before
    finally:
        logic.shutdown()


def test_an_roi_off_the_image_is_refused_naming_the_node_in_ras(sphere_model):
    scene = slicer.vtkMRMLScene()
    node = ball(scene, 2.0, "ball")  # voxel centres x -46 to 0, y -38 to 0, z 0 to 38 mm RAS
    roi = slicer.vtkMRMLMarkupsROINode()
    roi.SetName("R")
    scene.AddNode(roi)
    roi.SetCenter(500.0, 500.0, 500.0)  # placed in another view, far off the image
    roi.SetSize(10.0, 10.0, 10.0)
    logic = SegmentationLogic(persistent=False)
    before = scene_state(scene)
    try:
        for action in (
            lambda: logic.segment([node], sphere_model, device="cpu", roi_node=roi),
            lambda: logic.start_job([node], sphere_model, device="cpu", roi_node=roi),
        ):
            message = refused(action)
            assert message == (
                f"{ROI_OFF}, whose voxel centres span x -46.0 to 0.0, y -38.0 to 0.0, z 0.0 "
                "to 38.0 mm RAS; place the box on the image."
            ), message
        assert not logic._jobs and scene_state(scene) == before
        roi.SetCenter(-20.0, -20.0, 20.0)  # on the image: no refusal of the box
        logic.check_inputs([node], sphere_model)
        from UNetPlusPlusLib.adapter.geometry import volume_from_nodes
        from UNetPlusPlusLib.adapter.input_checks import check_roi

        check_roi(roi, volume_from_nodes([node]).grid)
    finally:
        logic.shutdown()

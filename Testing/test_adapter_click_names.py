"""A refused lung-nodule click in the Slicer Logic's in-process run names the point as the CLI
does: its RAS coordinates (mm, as Slicer shows them) and, in a list of several, its label and
place (adapter/input_checks.py). The engine's own message said only "The clicked point", and
named an LPS box for a click off the image. Real MRML (slicer-core), the shipped nodule model;
the refusals come before the model is loaded."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from test_adapter_logic import add_volume, scene_state  # noqa: E402
from test_click_check import AIR, NODULE, chest  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.registry import find_model  # noqa: E402
from UNetPlusPlusLib.engine.volume import volume_to_sitk  # noqa: E402
from UNetPlusPlusLib.errors import UNetPlusPlusError  # noqa: E402

AIR_RAS = (-AIR[0], -AIR[1], AIR[2])  # (-56, -4, 30): Slicer's clicks are RAS
NODULE_RAS = (-NODULE[0], -NODULE[1], NODULE[2])


@pytest.fixture(scope="module")
def chest_scene():
    scene = slicer.vtkMRMLScene()
    node = add_volume(scene, volume_to_sitk(chest()), "chest")
    points = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(points)  # in a scene, Slicer labels the points F-1, F-2, ...
    for position in (NODULE_RAS, AIR_RAS, NODULE_RAS):
        points.AddControlPoint(*position)
    return scene, node, points


def test_points_are_named_by_their_label_and_place():
    from UNetPlusPlusLib.adapter.input_checks import point_name, point_where

    points = slicer.vtkMRMLMarkupsFiducialNode()
    slicer.vtkMRMLScene().AddNode(points)
    points.AddControlPoint(1.0, 2.0, 3.0)
    assert point_name(points, 0) == "Point 'F-1'"
    points.AddControlPoint(4.0, 5.0, 6.0, "left upper lobe")
    assert point_name(points, 1) == "Point 'left upper lobe' (2 of 2)"
    points.SetNthControlPointLabel(0, "")
    assert point_name(points, 0) == "Point 1 of 2"
    assert point_where((-56.04, -4.0, 30.0)) == "The clicked point at (-56.0, -4.0, 30.0) mm RAS"


def test_a_click_in_the_air_is_refused_naming_the_point(chest_scene):
    scene, node, points = chest_scene
    logic = SegmentationLogic()
    before = scene_state(scene)
    position = SegmentationLogic.point_from_markups(points, 1)
    with pytest.raises(UNetPlusPlusError) as refused:
        logic.segment(
            [node],
            find_model("lung-nodule"),
            point_ras=position,
            point_name=SegmentationLogic.point_name(points, 1),
        )
    assert str(refused.value).startswith(
        "Point 'F-2' (2 of 3) at (-56.0, -4.0, 30.0) mm RAS lies in the air outside the body "
    ), refused.value
    with pytest.raises(UNetPlusPlusError, match=r"^The clicked point at \(-56\.0, -4\.0, 30\.0\)"):
        logic.segment([node], "lung-nodule", point_ras=AIR_RAS)
    assert scene_state(scene) == before


def test_a_click_off_the_image_is_refused_in_ras(chest_scene):
    """The engine named the click's analysis box in LPS ("The region from (-516, -19, -6) to
    ..."), a box the user never drew, in a frame Slicer does not show."""
    scene, node, _points = chest_scene
    before = scene_state(scene)
    with pytest.raises(UNetPlusPlusError) as refused:
        SegmentationLogic().segment([node], "lung-nodule", point_ras=(500.0, 3.0, 4.0))
    assert str(refused.value) == (
        "The clicked point at (500.0, 3.0, 4.0) mm RAS lies outside the image, whose voxel "
        "centres run from (0.0, 0.0, 0.0) to (-111.3, -111.3, 58.8) mm RAS; click on the image."
    )
    assert scene_state(scene) == before

"""A clicked point (markups control point) off the input volume is refused by the Slicer Logic
before any run starts, naming the point by its label and its world RAS position at 0.1 mm, in
the background run (``start_job``) as in the in-process one. Before, ``start_job`` started the
engine's process, which refused the point only there, seconds later. Real MRML (slicer-core),
the tiny sphere model, a point list under a parent transform; the scene is untouched and no
job is started."""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import vtk  # noqa: E402
from test_adapter_logic import scene_state  # noqa: E402
from test_adapter_prechecks import ball, refused  # noqa: E402
from UNetPlusPlusLib.adapter import job  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402

# the ball's voxel centres, as the refusal names them (2 mm voxels, 24 x 20 x 20)
SPAN = "whose voxel centres run from (0.0, 0.0, 0.0) to (-46.0, -38.0, 38.0) mm RAS"


def node_times(scene) -> list:
    """Every node's modification time: a refusal modifies none."""
    return [scene.GetNthNode(i).GetMTime() for i in range(scene.GetNumberOfNodes())]


def shifted_points(scene, shift_x: float):
    """A point list named 'P' under transform 'T', which moves it ``shift_x`` mm along R."""
    transform = slicer.vtkMRMLLinearTransformNode()
    transform.SetName("T")
    scene.AddNode(transform)
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, shift_x)
    transform.SetMatrixTransformToParent(matrix)
    points = slicer.vtkMRMLMarkupsFiducialNode()
    points.SetName("P")
    scene.AddNode(points)
    points.SetAndObserveTransformNodeID(transform.GetID())
    return points


def test_a_point_off_the_image_is_refused_before_any_run_naming_it(sphere_model):
    scene = slicer.vtkMRMLScene()
    node = ball(scene, 2.0, "ball")
    points = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(points)
    points.AddControlPoint(-20.0, -20.0, 20.0)  # on the image
    points.AddControlPoint(500.04, 3.0, -4.0, "far")  # placed in another view
    position = SegmentationLogic.point_from_markups(points, 1)
    name = SegmentationLogic.point_name(points, 1)
    logic = SegmentationLogic(persistent=False)
    before, times = scene_state(scene), node_times(scene)
    try:
        for action in (
            lambda: logic.start_job(
                [node], sphere_model, device="cpu", point_ras=position, point_name=name
            ),
            lambda: logic.segment(
                [node], sphere_model, device="cpu", point_ras=position, point_name=name
            ),
        ):
            assert refused(action) == (
                "Point 'far' (2 of 2) at (500.0, 3.0, -4.0) mm RAS lies outside the image, "
                f"{SPAN}; click on the image."
            )
        assert not logic._jobs
        assert scene_state(scene) == before and node_times(scene) == times
    finally:
        logic.shutdown()


def test_a_point_under_a_transform_is_checked_where_it_is_in_the_world(sphere_model):
    scene = slicer.vtkMRMLScene()
    node = ball(scene, 2.0, "ball")
    points = shifted_points(scene, 300.0)
    points.AddControlPoint(-20.0, -20.0, 20.0, "moved")  # on the image before its transform
    logic = SegmentationLogic(persistent=False)
    before, times = scene_state(scene), node_times(scene)
    try:
        message = refused(
            lambda: logic.start_job(
                [node],
                sphere_model,
                device="cpu",
                point_ras=SegmentationLogic.point_from_markups(points, 0),
                point_name=SegmentationLogic.point_name(points, 0),
            )
        )
        assert message.startswith("Point 'moved' at (280.0, -20.0, 20.0) mm RAS lies outside")
        assert not logic._jobs
        assert scene_state(scene) == before and node_times(scene) == times

        # off the image in its own coordinates, on it in the world: it runs
        points.SetNthControlPointPosition(0, -320.0, -20.0, 20.0)
        running = logic.start_job(
            [node],
            sphere_model,
            device="cpu",
            point_ras=SegmentationLogic.point_from_markups(points, 0),
            point_name=SegmentationLogic.point_name(points, 0),
        )
        assert running.state == job.RUNNING and running.point_ras == [-20.0, -20.0, 20.0]
    finally:
        logic.shutdown()

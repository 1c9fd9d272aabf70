"""The panel catches its input volume cropped in place while the module is open
(widget/input_watch.py): the real panel on the .ui in offscreen Qt, real MRML (slicer-core),
the stand-ins of test_ui_output_release.py; an oblique volume, no model run (cheap).

Before, the output selector was checked only when the input volume or the task changed, so a
volume cropped in place (the same node, a new grid) kept its old output selected until a run
wrote a new node. Now the volume node's events (ImageDataModifiedEvent, ModifiedEvent,
TransformModifiedEvent) check it when it happens; voxel edits, renames and a grid the user
chose for the segmentation (the volume unchanged) release nothing. The watched volume's
observers go when another volume is chosen, and when it is removed from the scene.
"""

from __future__ import annotations

import types

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
QtWidgets = pytest.importorskip("PySide6.QtWidgets")

import test_ui_output_release  # noqa: E402
import vtk  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from test_adapter_logic import add_volume  # noqa: E402
from test_adapter_user_geometry import chest, crop_in_place, labels_on, specify_geometry  # noqa: E402
from test_ui import UI_PATH  # noqa: E402
from test_ui_output_release import load_ui, wire_panel  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import write_segments  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402

panel_widget = test_ui_output_release.panel_widget  # its fixture


def open_panel(panel_widget, root, scene, manifest, tmp_path, others=()):
    """The panel on ``root``'s widgets with a stand-in parameter node, as
    test_ui_output_release does it; task ``manifest``, and ``others`` installed too."""
    models = [manifest, *others]
    logic = types.SimpleNamespace(availableModels=lambda: models, trainingLogic=TrainingLogic())
    return wire_panel(
        panel_widget, logic, root, scene, tmp_path, task=manifest.name, depth="auto", device="cpu"
    )


def test_a_volume_cropped_in_place_releases_its_output_when_it_happens(
    panel_widget, sphere_model, tmp_path
):
    app, root = load_ui()
    manifest = ModelManifest.load(sphere_model)
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    output = write_segments(labels_on(whole, manifest.labels), node)
    other = add_volume(scene, make_sphere_image((8, 8, 6)), "other")
    panel, p = open_panel(panel_widget, root, scene, manifest, tmp_path)

    inputs = root.findChild(QtWidgets.QComboBox, "inputVolumeSelector0")
    outputs = root.findChild(QtWidgets.QComboBox, "outputSegmentationSelector")
    status = root.findChild(QtWidgets.QLabel, "statusLabel")
    log = root.findChild(QtWidgets.QPlainTextEdit, "logTextEdit")
    inputs.setCurrentIndex(inputs.findText("chest"))
    outputs.setCurrentIndex(outputs.findText(output.GetName()))
    assert p.inputVolume0 is node and p.outputSegmentation is output

    # voxels edited, renamed, the segmentation's own grid chosen: the output stays
    node.GetImageData().Modified()
    node.SetName("chest")
    specify_geometry(output, node, oversampling=2.0)
    assert p.outputSegmentation is output and "Output is now" not in log.toPlainText()

    crop_in_place(node, whole)  # while the module is open: released at once
    assert p.outputSegmentation is None
    assert outputs.currentText() == "Create new segmentation"
    assert status.text().startswith(
        f"Output is now 'Create new segmentation': segmentation '{output.GetName()}' is not for "
        "input volume 'chest' (it was made for volume 'chest' on another grid ("
    ), status.text()
    assert status.text().endswith(
        "the volume was cropped or resampled since); it is left unchanged."
    )
    assert log.toPlainText().count("Output is now") == 1
    assert output.GetScene() is scene and output.GetSegmentation().GetNumberOfSegments() == 1

    # another input volume: the cropped one is no longer observed (nor kept alive by it)
    inputs.setCurrentIndex(inputs.findText("other"))
    events = (vtk.vtkCommand.ModifiedEvent, slicer.vtkMRMLVolumeNode.ImageDataModifiedEvent)
    assert not any(panel.hasObserver(node, e, panel.onInputVolumeModified) for e in events)
    assert all(panel.hasObserver(other, e, panel.onInputVolumeModified) for e in events)
    # deleted while the parameter node is not observed (the module not shown): not kept alive
    scene.RemoveNode(other)
    assert not panel.Observations and panel._watchedVolume is None
    panel.watchInputVolume(node)
    panel.watchInputVolume(None)  # what scene close and cleanup do
    assert not panel.Observations
    root.close()
    app.processEvents()


def test_a_volume_moved_by_a_transform_releases_its_output_and_says_so(
    panel_widget, sphere_model, tmp_path
):
    """The volume put under a transform (TransformModifiedEvent) while the module is open: the
    output is released, and the status names the transform (before: "the volume was cropped or
    resampled since", which was false)."""
    app, root = load_ui()
    manifest = ModelManifest.load(sphere_model)
    scene = slicer.vtkMRMLScene()
    whole, node = chest(scene)
    output = write_segments(labels_on(whole, manifest.labels), node)
    panel, p = open_panel(panel_widget, root, scene, manifest, tmp_path)
    p.inputVolume0, p.outputSegmentation = node, output
    assert p.outputSegmentation is output

    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode", "registration")
    moved = vtk.vtkMatrix4x4()
    moved.SetElement(0, 3, 25.0)
    transform.SetMatrixTransformToParent(moved)
    node.SetAndObserveTransformNodeID(transform.GetID())
    status = root.findChild(QtWidgets.QLabel, "statusLabel").text()
    assert p.outputSegmentation is None, status
    assert status.endswith(
        "the volume was moved by transform 'registration' since); it is left unchanged."
    ), status
    root.close()
    app.processEvents()


BRAIN = UI_PATH.parents[2] / "UNetPlusPlusLib" / "Resources" / "Models" / "brain-tumor"


def test_another_task_takes_the_volumes_named_for_its_channels(
    panel_widget, sphere_model, tmp_path, monkeypatch
):
    """The CT chosen for a one-channel task is not left as FLAIR of the brain tumour model
    beside a volume named flair (before: only empty selectors were filled)."""
    app, root = load_ui()
    ct_model, brain = ModelManifest.load(sphere_model), ModelManifest.load(BRAIN / "model.json")
    scene = slicer.vtkMRMLScene()
    ct = add_volume(scene, make_sphere_image((8, 8, 8)), "CT")
    mr = {name: add_volume(scene, make_sphere_image((8, 8, 8)), f"case_{name}")
          for name in ("flair", "t1", "t1ce", "t2")}  # fmt: skip
    volumes = scene.GetNodesByClass("vtkMRMLScalarVolumeNode")
    listed = [volumes.GetItemAsObject(i) for i in range(volumes.GetNumberOfItems())]
    monkeypatch.setattr(slicer.util, "getNodesByClass", lambda name: listed, raising=False)
    panel, p = open_panel(panel_widget, root, scene, ct_model, tmp_path, others=[brain])
    p.inputVolume0 = ct

    tasks = root.findChild(QtWidgets.QComboBox, "taskSelector")
    tasks.currentIndexChanged.connect(panel.onTaskSelected)  # as setup() connects it
    tasks.setCurrentIndex(tasks.findData(brain.name))  # the user chooses the brain task
    assert p.task == brain.name
    chosen = [p.inputVolume0, p.inputVolume1, p.inputVolume2, p.inputVolume3]
    assert chosen == [mr["flair"], mr["t1"], mr["t1ce"], mr["t2"]], [v.GetName() for v in chosen]
    # a volume whose name says its channel stays, even after another task change
    p.inputVolume1 = mr["t1"]
    tasks.setCurrentIndex(tasks.findData(ct_model.name))
    assert p.inputVolume0 is mr["flair"]  # one channel: no name to match, the choice stays
    root.close()
    app.processEvents()

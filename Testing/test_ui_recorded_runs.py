"""Choosing an output segmentation whose segments record the runs that wrote them (a scene or
a .seg.nrrd opened later) shows those runs' warnings in the status text and the log: the real
panel (widget/recorded_runs.py through panel_widget's ``onParameterNodeModified``) on the .ui
in offscreen Qt and real MRML nodes, as test_ui_output_release.py wires it. No model runs."""

from __future__ import annotations

import types

import numpy as np
import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

import test_ui_output_release  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from test_adapter_logic import add_volume  # noqa: E402
from test_ui_output_release import QtWidgets, load_ui, wire_panel  # noqa: E402
from UNetPlusPlusLib.adapter.run_tags import tag_run  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import write_segments  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic  # noqa: E402
from UNetPlusPlusLib.engine.image_read import volume_from_sitk  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume  # noqa: E402
from UNetPlusPlusLib.run_record import make_record  # noqa: E402

panel_widget = test_ui_output_release.panel_widget  # its fixture
CUT = "The 'liver' segment is cut by the edge of the image at its top (head end)."


def _written(scene, volume, manifest, name: str, warnings: list):
    """A segmentation as the module writes it: one segment, tagged with its run's record."""
    grid = volume_from_sitk([make_sphere_image((8, 8, 8))]).grid
    array = np.zeros(grid.size_xyz[::-1], np.uint8)
    array[2:5, 2:5, 2:5] = 1
    labels = LabelVolume(array, grid.spacing, grid.origin, grid.direction, manifest.labels)
    written: list = []
    node = write_segments(labels, volume, node_name=name, written=written)
    tag_run(node, written, make_record(manifest, 3, warnings))
    return node


def test_choosing_a_segmentation_shows_the_warnings_its_runs_recorded(
    panel_widget, sphere_model, tmp_path
):
    app, root = load_ui()
    scene = slicer.vtkMRMLScene()
    volume = add_volume(scene, make_sphere_image((8, 8, 8)), "CT")
    manifest = ModelManifest.load(sphere_model)
    _written(scene, volume, manifest, "warned", [CUT])
    _written(scene, volume, manifest, "clean", [])
    logic = types.SimpleNamespace(availableModels=lambda: [manifest], trainingLogic=TrainingLogic())
    panel, p = wire_panel(
        panel_widget, logic, root, scene, tmp_path, task=manifest.name, depth="auto", device="cpu"
    )
    inputs = root.findChild(QtWidgets.QComboBox, "inputVolumeSelector0")
    outputs = root.findChild(QtWidgets.QComboBox, "outputSegmentationSelector")
    status = root.findChild(QtWidgets.QLabel, "statusLabel")
    log = root.findChild(QtWidgets.QPlainTextEdit, "logTextEdit")
    inputs.setCurrentIndex(inputs.findText("CT"))

    outputs.setCurrentIndex(outputs.findText("warned"))
    assert status.text().splitlines() == [
        "Segmentation 'warned' records the runs that wrote it:",
        "'liver': sphere-test, depth 3; 1 warning",
        f"Warning: {CUT}",
    ]
    assert log.toPlainText().count(f"Warning: {CUT}") == 1
    inputs.setCurrentIndex(inputs.findText("CT"))  # another change, the same output: once
    assert log.toPlainText().count(f"Warning: {CUT}") == 1

    outputs.setCurrentIndex(outputs.findText("clean"))  # "no warnings" is said, not nothing
    assert status.text().splitlines()[1:] == ["'liver': sphere-test, depth 3; no warnings"]
    outputs.setCurrentIndex(0)  # "Create new segmentation": the last text stays
    assert "no warnings" in status.text()
    root.close()
    app.processEvents()

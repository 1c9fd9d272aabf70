"""A double-click on "Add current case" (or "Export training case") adds one case, and adding a
case already in the dataset (the same image and labels) writes nothing and says where it is.

Before, the double-click's second click exported again: ``case001`` and ``case002``, the same
case twice (a duplicate biases the dataset, and a copy split between training and validation
leaks). Now the second click within the double-click interval is ignored (widget/click_guard.py)
and, at the root, the export recognises the case by its recorded identity
(adapter/case_identity.py) whenever it is clicked again.

The real panel on the .ui in offscreen Qt with real MRML (slicer-core) and the real export, as
in test_ui_double_click.py; the panel's clock is injected: no sleeps, no timing asserted.
"""

from __future__ import annotations

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
QtTest = pytest.importorskip("PySide6.QtTest")

import test_ui_double_click  # noqa: E402
from test_ui_output_release import QtCore, QtWidgets  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import write_segments  # noqa: E402
from UNetPlusPlusLib.engine.volume import LabelVolume  # noqa: E402

real_panel = test_ui_double_click.real_panel
panel_widget = test_ui_double_click.panel_widget  # the fixtures of test_ui_double_click.py
logic = test_ui_double_click.logic


def with_segmentation(panel, logic, monkeypatch, corrected=False):
    """The panel's volume with a segmentation of its sphere as the output; the module logic's
    background export, polled by hand (:func:`finish_export`); error dialogs recorded instead
    of shown."""
    volume = panel._parameterNode.inputVolume0
    mask = (slicer.util.arrayFromVolume(volume) > 100).astype("uint8")
    mask[0, 0, :4] = corrected  # "corrected" in Segment Editor: four more voxels
    labels = LabelVolume(mask, (2.0,) * 3, (0.0,) * 3, [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                         panel.currentModel().labels)  # fmt: skip
    panel._parameterNode.outputSegmentation = write_segments(labels, volume, node_name="seg")
    panel.logic.startTrainingExport = logic.start_training_export  # module_logic's
    panel._exportTimer = QtCore.QTimer()  # setupExport()'s, polled by hand
    errors = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **kw: errors.append(text))
    return errors


def finish_export(panel) -> None:
    """Wait for the background export to end, then poll it as the panel's timer does."""
    job = panel._exportJob
    if job is not None:
        assert job.wait(120)
    panel.onPollExport()


def click_twice(button) -> None:
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # a double-click: two clicks
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)


def test_a_double_click_on_add_current_case_adds_one_case(
    panel_widget, logic, sphere_model, tmp_path, monkeypatch
):
    app, root, panel, _segment = real_panel(panel_widget, logic, sphere_model, tmp_path)
    cases = tmp_path / "cases"
    panel._parameterNode.trainingDirectory = cases
    errors = with_segmentation(panel, logic, monkeypatch)
    button = root.findChild(QtWidgets.QPushButton, "addCaseButton")
    button.clicked.connect(lambda checked=False: panel.onAddCaseButton())  # setupTraining()'s
    status = root.findChild(QtWidgets.QLabel, "trainingStatusLabel")

    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # the export starts in a thread
    assert status.text() == "Exporting case001..." and not button.isEnabled()
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # its second click comes meanwhile
    finish_export(panel)
    assert button.isEnabled()
    assert sorted(p.name for p in cases.glob("*.nrrd")) == ["case001.nrrd", "case001.seg.nrrd"]
    assert status.text() == f"Added case001 to {cases}" and errors == []

    panel.clock.now += 5.0  # clicked again later: the case is in the dataset already
    before = {p.name: p.read_bytes() for p in cases.iterdir()}
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)
    finish_export(panel)
    assert {p.name: p.read_bytes() for p in cases.iterdir()} == before  # nothing written
    assert "already in the dataset as case001" in status.text() and errors == []

    # the mask corrected since: the labels of case001 are replaced, no same-image case002
    with_segmentation(panel, logic, monkeypatch, corrected=True)
    panel.clock.now += 5.0
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)
    finish_export(panel)
    assert not list(cases.glob("case002*")) and errors == []
    assert (cases / "case001.nrrd").read_bytes() == before["case001.nrrd"]
    assert (cases / "case001.seg.nrrd").read_bytes() != before["case001.seg.nrrd"]
    assert status.text().startswith("The image is already in the dataset as case001: its labels")
    (kept,) = (cases / ".replaced").glob("case001-*.seg.nrrd")  # the old labels, not lost
    assert kept.read_bytes() == before["case001.seg.nrrd"]
    assert f"The old labels are kept in {kept} (1 earlier version(s) of case001" in status.text()
    root.close()
    app.processEvents()


def test_a_double_click_on_export_exports_once(
    panel_widget, logic, sphere_model, tmp_path, monkeypatch
):
    """ "Export training case" writes under its case name: the second click refused it with an
    error box ("already exists"); now it is ignored, and a later click says where it is."""
    app, root, panel, _segment = real_panel(panel_widget, logic, sphere_model, tmp_path)
    out = tmp_path / "export"
    panel._parameterNode.exportDirectory, panel._parameterNode.caseName = out, "patient7"
    errors = with_segmentation(panel, logic, monkeypatch)
    button = root.findChild(QtWidgets.QPushButton, "exportButton")
    button.clicked.connect(lambda checked=False: panel.onExportButton())  # setup()'s
    status = root.findChild(QtWidgets.QLabel, "statusLabel")

    click_twice(button)
    finish_export(panel)
    assert sorted(p.name for p in out.glob("*.nrrd")) == ["patient7.nrrd", "patient7.seg.nrrd"]
    assert status.text() == f"Exported 2 files to {out}" and errors == []

    panel._parameterNode.caseName = "patient8"  # the same case under another name, later
    panel.clock.now += 5.0
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)
    finish_export(panel)
    assert not list(out.glob("patient8*")) and errors == []
    assert "already in the dataset as patient7" in status.text()
    root.close()
    app.processEvents()

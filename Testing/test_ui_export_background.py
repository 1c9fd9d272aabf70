"""The panel's export runs in the background (widget/export_control.py): while its thread
writes, the panel says what it writes and both export buttons stay disabled; when it is done
(or has failed) the panel says so, once, and the buttons come back.

The real panel on the .ui in offscreen Qt with real MRML (slicer-core) and the real background
export (adapter/training_export.start_training_export), as in test_ui_add_case.py. The image
writer is held on an event, so the test knows the thread is mid-write: no sleeps, no timing.
"""

from __future__ import annotations

import threading

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
QtTest = pytest.importorskip("PySide6.QtTest")

import test_ui_add_case  # noqa: E402
from test_ui_add_case import finish_export, with_segmentation  # noqa: E402
from test_ui_output_release import QtCore, QtWidgets  # noqa: E402
from UNetPlusPlusLib.adapter import training_export  # noqa: E402

real_panel = test_ui_add_case.real_panel
panel_widget = test_ui_add_case.panel_widget  # the fixtures of test_ui_double_click.py
logic = test_ui_add_case.logic
WAIT = 120  # s: a safety net against a hang only


def held_writer(monkeypatch):
    """The real image writer, held at its start until ``go_on`` is set; ``writing`` is set
    once the export's thread is in it. Returns (writing, go_on)."""
    writing, go_on = threading.Event(), threading.Event()
    real_write = training_export.write_volume_file

    def held(snapshot, path):
        writing.set()
        assert go_on.wait(WAIT)
        return real_write(snapshot, path)

    monkeypatch.setattr(training_export, "write_volume_file", held)
    return writing, go_on


def test_the_panel_shows_the_write_and_keeps_the_buttons_disabled(
    panel_widget, logic, sphere_model, tmp_path, monkeypatch
):
    app, root, panel, _segment = real_panel(panel_widget, logic, sphere_model, tmp_path)
    out = tmp_path / "export"
    panel._parameterNode.exportDirectory, panel._parameterNode.caseName = out, "patient7"
    errors = with_segmentation(panel, logic, monkeypatch)
    export = root.findChild(QtWidgets.QPushButton, "exportButton")
    export.clicked.connect(lambda checked=False: panel.onExportButton())  # setup()'s
    add_case = root.findChild(QtWidgets.QPushButton, "addCaseButton")
    status = root.findChild(QtWidgets.QLabel, "statusLabel")
    writing, go_on = held_writer(monkeypatch)

    QtTest.QTest.mouseClick(export, QtCore.Qt.LeftButton)
    assert writing.wait(WAIT)  # its thread is in the writer; this (main) thread runs on
    job = panel._exportJob
    assert status.text() == "Exporting patient7..."
    panel.onPollExport()  # the timer's tick: what it is writing
    assert status.text() == "Exporting patient7: writing patient7.nrrd (1 of 1)..."
    assert not export.isEnabled() and not add_case.isEnabled()
    panel.updateButtons()  # a parameter change meanwhile does not enable them
    panel.updateTrainingButtons()
    assert not export.isEnabled() and not add_case.isEnabled()
    panel.startExport([], None, out, "other", [], added=False)  # a queued click: ignored
    assert panel._exportJob is job and not list(out.glob("*.nrrd"))

    go_on.set()
    finish_export(panel)
    assert status.text() == f"Exported 2 files to {out}" and errors == []
    assert sorted(p.name for p in out.glob("*.nrrd")) == ["patient7.nrrd", "patient7.seg.nrrd"]
    assert export.isEnabled() and add_case.isEnabled() and panel._exportJob is None
    root.close()
    app.processEvents()


def test_a_write_failing_in_the_thread_is_one_message_and_leaves_nothing(
    panel_widget, logic, sphere_model, tmp_path, monkeypatch
):
    """The cases folder's staging folder vanishes while the image is written (a network share
    dropped, a clean-up script): the thread's writer fails for real; the panel shows that one
    error, in its status line and one dialog, and no file of the case is left."""
    app, root, panel, _segment = real_panel(panel_widget, logic, sphere_model, tmp_path)
    cases = tmp_path / "cases"
    cases.mkdir()
    panel._parameterNode.trainingDirectory = cases
    errors = with_segmentation(panel, logic, monkeypatch)
    add_case = root.findChild(QtWidgets.QPushButton, "addCaseButton")
    add_case.clicked.connect(lambda checked=False: panel.onAddCaseButton())  # setupTraining()'s
    status = root.findChild(QtWidgets.QLabel, "trainingStatusLabel")
    writing, go_on = held_writer(monkeypatch)

    QtTest.QTest.mouseClick(add_case, QtCore.Qt.LeftButton)
    assert writing.wait(WAIT)
    (staging,) = cases.glob(".unetpp-export-*")  # the labels are staged there already
    for path in staging.iterdir():
        path.unlink()
    staging.rmdir()
    go_on.set()
    finish_export(panel)

    assert len(errors) == 1 and errors[0] == status.text()
    assert errors[0].startswith(f"Could not write {cases / 'case001.nrrd'}: ")
    assert errors[0].endswith("nothing was written.")
    assert list(cases.iterdir()) == [] and add_case.isEnabled()
    root.close()
    app.processEvents()


def test_quitting_slicer_mid_write_waits_for_the_case_to_be_written(
    panel_widget, logic, sphere_model, tmp_path, monkeypatch
):
    """Slicer's aboutToQuit arrives while the thread writes: the panel waits for the write
    (let go here by another thread once the panel waits), so the case is whole."""
    app, root, panel, _segment = real_panel(panel_widget, logic, sphere_model, tmp_path)
    out = tmp_path / "export"
    panel._parameterNode.exportDirectory, panel._parameterNode.caseName = out, "patient7"
    errors = with_segmentation(panel, logic, monkeypatch)
    panel._trainingTimer = QtCore.QTimer()  # setupTraining()'s
    panel.logic.shutdownTraining = lambda: None  # no training runs
    writing, go_on = held_writer(monkeypatch)
    panel.exportTrainingCase()
    job = panel._exportJob
    waiting, job_wait = threading.Event(), job.wait

    def wait(timeout=None):  # the panel waits on the job: only then is the writer let go
        waiting.set()
        return job_wait(timeout)

    job.wait = wait
    releaser = threading.Thread(target=lambda: waiting.wait(WAIT) and go_on.set())
    releaser.start()
    try:
        panel.onAboutToQuit()  # returns once the write has ended
        assert waiting.is_set() and job.finished
    finally:
        go_on.set()  # (a failure above leaves no thread held)
    assert job.result() is not None and errors == []
    assert sorted(p.name for p in out.iterdir()) == [
        "patient7.export.json", "patient7.nrrd", "patient7.seg.nrrd"
    ]  # fmt: skip
    releaser.join()
    root.close()
    app.processEvents()

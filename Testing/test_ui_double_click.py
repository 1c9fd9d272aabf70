"""A double-click on "Segment" (or "Train") starts the run and leaves it running: the button
turns into "Cancel" at the start, and Qt emits ``clicked`` again for the double-click's second
press and release (a click queued while the start writes the inputs comes just as soon). Such a
click, within the platform's double-click interval (``QApplication.doubleClickInterval()``) of
the start, is not a Cancel (widget/click_guard.py); a Cancel later still cancels at once.

Before, the second click cancelled the run the first had started ("Cancelled; the scene was not
changed."). The panel's clock is injected (``panel.clock``): no sleeps, no timing asserted.

The Segment test is the real panel (widget/panel_widget.py) on the .ui in offscreen Qt (Qt for
Python) with real MRML (slicer-core) and a real background run of the test sphere model,
clicked with QTest; the stand-ins are those of test_ui_output_release.py.
"""

from __future__ import annotations

import sys
import time
import types

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
QtTest = pytest.importorskip("PySide6.QtTest")

import test_ui_output_release  # noqa: E402
from helpers import make_sphere_image  # noqa: E402
from test_adapter_logic import add_volume  # noqa: E402
from test_ui_output_release import QtCore, QtWidgets, load_ui, wire_panel  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.widget.click_guard import (  # noqa: E402
    DEFAULT_DOUBLE_CLICK_MS,
    CancelGuard,
    double_click_interval_ms,
)

panel_widget = test_ui_output_release.panel_widget  # its fixture


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_guard_ignores_a_click_within_the_interval_only():
    clock = Clock()
    guard = CancelGuard(clock=clock, interval_ms=lambda: 500)
    assert not guard.ignores()  # not armed: a Cancel cancels
    guard.arm()
    assert guard.ignores()  # the double-click's second click, at once
    clock.now += 0.499
    assert guard.ignores()
    clock.now += 0.002  # past the interval: a deliberate Cancel
    assert not guard.ignores()
    clock.now -= 0.3  # disarmed by it: nothing ignored any more
    assert not guard.ignores()


def test_the_interval_is_the_platforms(monkeypatch):
    qt = types.ModuleType("qt")  # PythonQt's QApplication.doubleClickInterval(): a static, ms
    qt.QApplication = types.SimpleNamespace(doubleClickInterval=lambda: 650)
    monkeypatch.setitem(sys.modules, "qt", qt)
    assert double_click_interval_ms() == 650
    monkeypatch.setitem(sys.modules, "qt", None)  # no Qt (the CLI's tests): Qt's default
    assert double_click_interval_ms() == DEFAULT_DOUBLE_CLICK_MS == 400


@pytest.fixture(scope="module")
def logic():
    segmentation = SegmentationLogic(persistent=False)
    yield segmentation
    segmentation.shutdown()


def real_panel(panel_widget, logic, sphere_model, tmp_path):
    """The panel on the offscreen .ui, its Segment button connected as setup() connects it,
    the sphere model's task and a small volume chosen; its clock stopped."""
    app, root = load_ui()
    scene = slicer.vtkMRMLScene()
    volume = add_volume(scene, make_sphere_image((16, 16, 16)), "CT")
    manifest = ModelManifest.load(sphere_model)
    module_logic = types.SimpleNamespace(
        availableModels=lambda: [manifest], trainingLogic=TrainingLogic(),
        segmentationLogic=logic, startJob=logic.start_job,
    )  # fmt: skip
    panel, p = wire_panel(
        panel_widget, module_logic, root, scene, tmp_path,
        attributes={"_timer": QtCore.QTimer(), "clock": Clock()},  # timer polled below
        task=manifest.name, depth="1", device="cpu", replaceExisting=False, tta=False,
        channelCheck=True, interactive=False,
    )  # fmt: skip
    p.inputVolume0 = volume
    button = root.findChild(QtWidgets.QPushButton, "segmentButton")
    button.clicked.connect(lambda checked=False: panel.onSegmentButton())  # setup()'s
    assert button.isEnabled() and button.text() == "Segment"
    return app, root, panel, button


def test_a_double_click_on_segment_leaves_the_run_running(
    panel_widget, logic, sphere_model, tmp_path
):
    app, root, panel, button = real_panel(panel_widget, logic, sphere_model, tmp_path)
    status = root.findChild(QtWidgets.QLabel, "statusLabel")
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # the double-click: two clicks
    job = panel._job
    assert job is not None and button.text() == "Cancel"
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # within the interval (no time)
    assert panel._job is job and not job.finished and not job._cancel_requested
    assert button.text() == "Cancel" and status.text() == "Starting...", status.text()

    panel.clock.now += QtWidgets.QApplication.doubleClickInterval() / 1000.0 + 0.01
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # read "Cancel", clicked it: at once
    assert job._cancel_requested and status.text() == "Cancelling..."
    deadline = time.monotonic() + 120
    while not job.finished and time.monotonic() < deadline:
        panel.onPollJob()
        time.sleep(0.05)
    assert job.state == "cancelled", job.state
    assert status.text() == "Cancelled; the scene was not changed.", status.text()
    assert button.text() == "Segment"
    root.close()
    app.processEvents()


def test_a_click_as_a_placed_point_starts_its_run_is_not_a_cancel(run_control, logic, chest_scene):
    """With "Segment each new point automatically", a placed point's run turns the button into
    "Cancel" without a click on it; a click meant for "Segment" at that moment is not a Cancel.
    The runs that follow while the button stays "Cancel" (here the point placed while the
    cancel completes) are not guarded: a Cancel then works at once. Real MRML point events,
    real one-shot runs of the nodule model, cancelled before they end (cheap)."""
    from test_run_control_queue import NODULE_RAS, clicks, place

    run_control, errors = run_control
    _scene, _node, seeds = chest_scene
    host = clicks(run_control, logic, chest_scene)
    host.clock = Clock()  # stopped
    place(host, seeds, NODULE_RAS)  # F-1 runs: the button reads "Cancel"
    first = host._job
    assert first is not None and host.ui.segmentButton.text == "Cancel"
    host.onSegmentButton()  # clicked as it turned: F-1 goes on
    assert not first._cancel_requested and host.ui.statusLabel.text == "Starting..."

    host.clock.now += 1.0  # the user has read "Cancel"
    host.onSegmentButton()
    assert first._cancel_requested and host.ui.statusLabel.text == "Cancelling..."
    place(host, seeds, NODULE_RAS)  # F-2, placed while it stops: runs after the cancel
    poll(host, lambda: host._job is not first)
    second = host._job
    assert not second.finished and host.ui.segmentButton.text == "Cancel"
    host.onSegmentButton()  # at once (no time passes): the button never left "Cancel"
    assert second._cancel_requested
    poll(host, lambda: second.finished)
    assert [first.state, second.state] == ["cancelled", "cancelled"] and errors == []


def poll(host, condition) -> None:
    """Poll as the panel's timer does until ``condition()``."""
    deadline = time.monotonic() + 120
    while not condition() and time.monotonic() < deadline:
        host.onPollJob()
        time.sleep(0.05)
    assert condition(), "timed out"


def test_a_double_click_on_train_leaves_the_training_running(
    panel_widget, logic, sphere_model, tmp_path, monkeypatch
):
    """The same for "Train": a real `unetpp train` of one exported case (its tree killed once
    the deliberate Cancel is seen: cheap)."""
    from UNetPlusPlusLib.adapter.segmentation_writer import write_segments
    from UNetPlusPlusLib.engine.volume import LabelVolume

    monkeypatch.setenv("UNETPP_HOME", str(tmp_path / "home"))  # nothing installed anywhere
    app, root, panel, _segment = real_panel(panel_widget, logic, sphere_model, tmp_path)
    volume = panel._parameterNode.inputVolume0
    mask = (slicer.util.arrayFromVolume(volume) > 100).astype("uint8")  # the sphere
    labels = LabelVolume(mask, (2.0,) * 3, (0.0,) * 3, [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                         panel.currentModel().labels)  # fmt: skip
    segmentation = write_segments(labels, volume, node_name="CT liver")
    cases = tmp_path / "cases"  # one case, as "Add current case" exports it
    logic.export_training_case([volume], segmentation, cases, "case001")
    p = panel._parameterNode
    p.trainingBudget, p.trainFromScratch = "10m", False
    p.trainingChannelCheck, p.trainingStrictLabels = True, False
    p.trainingDirectory = cases  # the panel counts the usable cases
    panel._trainingTimer = QtCore.QTimer()  # setupTraining()'s, not started by the test
    button = root.findChild(QtWidgets.QPushButton, "trainButton")
    button.clicked.connect(lambda checked=False: panel.onTrainButton())  # setupTraining()'s
    assert button.isEnabled() and button.text() == "Train"

    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # the double-click: two clicks
    job = panel._trainingJob
    assert job is not None and button.text() == "Cancel", panel.ui.logTextEdit.toPlainText()
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)
    status = root.findChild(QtWidgets.QLabel, "trainingStatusLabel")
    assert panel._trainingJob is job and panel.trainingRunning() and not job._cancel_requested
    assert status.text() != "Cancelling..." and button.text() == "Cancel"

    panel.clock.now += QtWidgets.QApplication.doubleClickInterval() / 1000.0 + 0.01
    QtTest.QTest.mouseClick(button, QtCore.Qt.LeftButton)  # read "Cancel", clicked it
    assert job._cancel_requested and status.text() == "Cancelling..."
    job.close()  # its tree killed now (test_adapter_training.py: the cancel itself)
    assert job.state == "cancelled", job.state
    root.close()
    app.processEvents()

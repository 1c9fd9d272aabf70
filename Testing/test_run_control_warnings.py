"""The panel's status text shows every warning of a run, each once and in order: the Slicer
side's input checks (``job.warnings``: here a NIfTI file whose sform and qform disagree, which
only the Slicer side sees) and the engine's (its copies of the same checks only once), after a
run that succeeded, failed (a refused click), was cancelled, or was refused before it started.
Before, only the engine result's warnings were shown, and nothing after a failure or cancel.

The panel's code (widget/run_control.py) runs unchanged on real MRML (slicer-core) with real
background jobs of the engine. 3D Slicer's GUI cannot run here, so the few widgets it sets are
stand-ins that keep what is set (as Slicer's Python sets ``label.text``), ``slicer.i18n.tr``
returns its text and ``slicer.util.errorDisplay`` records its message.
"""

from __future__ import annotations

import sys
import time
import types

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)

from helpers import load_with_storage_node, write_nifti_two_transforms  # noqa: E402
from test_adapter_nifti_source import thick_ct  # noqa: E402
from test_click_check import AIR, chest  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402
from UNetPlusPlusLib.engine.registry import find_model  # noqa: E402
from UNetPlusPlusLib.engine.volume import volume_to_sitk  # noqa: E402
from UNetPlusPlusLib.widget.point_queue import PointQueue  # noqa: E402

DISAGREE = "its NIfTI header holds two transforms that disagree"
THICK = "has very thick voxels"


class Widget:
    """A label or button: keeps ``text``, ``enabled``, ``toolTip`` and ``setValue``'s value."""

    text, enabled, toolTip, value = "", True, "", 0

    def setValue(self, value: int) -> None:  # noqa: N802 (Qt's spelling)
        self.value = value


class SteppingClock:
    """The panel's clock (widget/click_guard.py): each reading is 1 s after the one before, so
    each click is a deliberate one, never the second click of a double-click (a Cancel right
    after Segment cancels); test_ui_double_click.py stops it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class Timer:
    def start(self) -> None: ...

    def stop(self) -> None: ...


@pytest.fixture
def run_control(monkeypatch):
    """widget/run_control.py imported with ``slicer.i18n`` and ``errorDisplay`` stand-ins."""
    return import_run_control(monkeypatch)


def import_run_control(monkeypatch):
    """widget/run_control.py and the messages of ``errorDisplay`` (see :func:`run_control`)."""
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    monkeypatch.setitem(sys.modules, "slicer.i18n", i18n)
    for name in ("run_control", "point_batch"):  # both import tr
        monkeypatch.delitem(sys.modules, f"UNetPlusPlusLib.widget.{name}", raising=False)
    errors: list[str] = []
    monkeypatch.setattr(slicer.util, "errorDisplay", lambda text, **_: errors.append(text))
    from UNetPlusPlusLib.widget import run_control

    return run_control, errors


def panel(
    run_control, logic: SegmentationLogic, manifest: ModelManifest, volumes, seeds=None, host=None
):
    """The panel's RunControl (or ``host``, one made from it) with the parameter node's values,
    the task and the inputs."""
    host = run_control.RunControl() if host is None else host
    host.ui = types.SimpleNamespace(
        statusLabel=Widget(), progressBar=Widget(), segmentButton=Widget(), exportButton=Widget(),
        nodulePlaceWidget=types.SimpleNamespace(setCurrentNode=lambda node: None),
    )  # fmt: skip
    # UNetPlusPlusLogic's two members used here (widget/module_logic.py)
    host.logic = types.SimpleNamespace(segmentationLogic=logic, startJob=logic.start_job)
    host._parameterNode = types.SimpleNamespace(
        depth="1", device="cpu", roi=None, noduleSeeds=seeds, outputSegmentation=None,
        replaceExisting=False, tta=False, channelCheck=True, interactive=True,
    )  # fmt: skip
    host._timer, host._job, host._dependenciesReady = Timer(), None, True
    host.clock = SteppingClock()
    host._points, host._currentPoint = PointQueue(), None  # panel_widget's
    host._seenPointIds, host._observedSeeds = set(), None
    host.currentModel = lambda: manifest
    host.inputVolumes = lambda _manifest: list(volumes)
    host.inputProblem = lambda _manifest: None
    host.fitEmptyRoi = lambda _volumes: None  # panel_widget's: the warning of a fitted ROI
    host._fittedRoi = None
    host.log = []
    host.appendLog = host.log.append
    return host


def run(host, cancel: bool = False) -> str:
    """Click Segment (and Cancel at once), poll as the panel's timer does; the status text."""
    host.onSegmentButton()
    if cancel and host._job is not None:
        host.onSegmentButton()  # the button reads "Cancel" while a job runs
    deadline = time.monotonic() + 120
    while host._job is not None and not host._job.finished and time.monotonic() < deadline:
        host.onPollJob()
        time.sleep(0.05)
    return host.ui.statusLabel.text


def warning_lines(status: str) -> list[str]:
    return [line for line in status.splitlines() if line.startswith("Warning: ")]


@pytest.fixture(scope="module")
def logic():
    segmentation = SegmentationLogic(persistent=False)
    yield segmentation
    segmentation.shutdown()


def test_a_finished_run_shows_the_slicer_side_and_engine_warnings_once(
    run_control, logic, sphere_model, tmp_path
):
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(
        scene, write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii.gz"), "CT"
    )
    host = panel(run_control[0], logic, ModelManifest.load(sphere_model), [node])
    status = run(host)
    assert status.startswith("Done: depth 1 on cpu"), status
    lines = warning_lines(status)
    assert len(lines) == 2 and DISAGREE in lines[0] and THICK in lines[1], status
    assert f"Volume 'CT' (from {tmp_path / 'ct.nii.gz'})" in lines[0]
    assert THICK in str(host._job.result["warnings"])  # the engine said it too: shown once

    fitted = "ROI 'R' had not been placed; it now holds the whole volume."
    host.fitEmptyRoi = lambda _volumes: fitted  # the panel's own warning comes first
    assert warning_lines(run(host)) == [f"Warning: {fitted}", *lines]


def test_a_refused_click_shows_the_warnings_known_before(run_control, logic, tmp_path):
    run_control, errors = run_control
    scene = slicer.vtkMRMLScene()
    path = write_nifti_two_transforms(volume_to_sitk(chest()), tmp_path / "chest.nii.gz")
    node = load_with_storage_node(scene, path, "chest")
    seeds = slicer.vtkMRMLMarkupsFiducialNode()
    scene.AddNode(seeds)
    seeds.AddControlPoint(-AIR[0], -AIR[1], AIR[2])
    host = panel(run_control, logic, find_model("lung-nodule"), [node], seeds)
    status = run(host)
    assert host._job.state == "failed"
    assert status.startswith("Failed; the scene was not changed.\nWarning: "), status
    assert [DISAGREE in line for line in warning_lines(status)] == [True], status
    assert "lies in the air outside the body" in errors[-1]
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0


def test_a_cancelled_run_shows_the_warnings_known_before(
    run_control, logic, sphere_model, tmp_path
):
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(
        scene, write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii"), "CT"
    )
    host = panel(run_control[0], logic, ModelManifest.load(sphere_model), [node])
    status = run(host, cancel=True)
    assert host._job.state == "cancelled"
    assert status.startswith("Cancelled; the scene was not changed.\nWarning: "), status
    lines = warning_lines(status)
    assert DISAGREE in lines[0] and THICK in lines[1] and len(lines) == 2, status


def test_a_run_refused_before_it_started_shows_the_warnings(run_control, sphere_model, tmp_path):
    """The engine cannot start (no such interpreter): the checks had run, their warnings are
    shown with the refusal."""
    run_control, errors = run_control
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(
        scene, write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii.gz"), "CT"
    )
    logic = SegmentationLogic(python=str(tmp_path / "no-python"), persistent=False)
    host = panel(run_control, logic, ModelManifest.load(sphere_model), [node])
    status = run(host)
    assert host._job is None and "Cannot start the segmentation engine" in errors[-1]
    assert status.startswith("Not started; nothing was written.\nWarning: "), status
    lines = warning_lines(status)
    assert DISAGREE in lines[0] and THICK in lines[1] and len(lines) == 2, status


def test_a_start_refused_before_the_checks_shows_no_earlier_warnings(run_control, sphere_model):
    """Refused before the input checks ran (no point, no ROI): the last run's warnings are
    not shown as this one's."""
    run_control, errors = run_control
    logic = SegmentationLogic(persistent=False)
    logic.warnings = ["A warning of the last run."]
    host = panel(run_control, logic, find_model("lung-nodule"), [None])
    assert run(host) == "Not started; nothing was written."
    assert errors[-1] == "Place a point on the nodule or choose an ROI around it."


def test_a_refused_start_puts_back_the_roi_it_fitted(run_control, sphere_model, tmp_path):
    """Segment fits an ROI that was never placed to the volume (RunControl.fitEmptyRoi); when
    the start is then refused, the ROI is put back as it was: the scene is left untouched, and
    the status does not claim the ROI now holds the whole volume (tester, session 10)."""
    run_control, errors = run_control
    scene = slicer.vtkMRMLScene()
    node = load_with_storage_node(
        scene, write_nifti_two_transforms(thick_ct(), tmp_path / "ct.nii.gz"), "CT"
    )
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "R")
    logic = SegmentationLogic(python=str(tmp_path / "no-python"), persistent=False)
    host = panel(run_control, logic, ModelManifest.load(sphere_model), [node])
    host._parameterNode.roi = roi
    del host.fitEmptyRoi  # RunControl's own, on real MRML
    status = run(host)
    assert host._job is None and "Cannot start the segmentation engine" in errors[-1]
    assert roi.GetNumberOfControlPoints() == 0 and roi.GetSize() == (0.0, 0.0, 0.0)
    assert "holds the whole volume" not in status, status
    assert "ROI 'R' is back as it was." in host.log

    placed = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "P")
    placed.SetCenter(1.0, 2.0, 3.0)
    placed.SetSize(0.0, 20.0, 20.0)  # placed, but flat: fitted too, then put back
    host._parameterNode.roi = placed
    run(host)
    assert list(placed.GetCenter()) == [1.0, 2.0, 3.0] and placed.GetSize() == (0.0, 20.0, 20.0)

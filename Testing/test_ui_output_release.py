"""The panel sets the output back to "Create new segmentation" when the input volume changes to
one the chosen segmentation was not made for: the real panel (widget/panel_widget.py
``onParameterNodeModified`` -> run_control.py ``releaseOtherVolumesOutput``) on the .ui loaded
in offscreen Qt (Qt for Python, Slicer widgets mapped to Qt stand-ins as in test_ui.py) and
real MRML nodes (slicer-core). No model runs (cheap).

3D Slicer cannot run here, so what Slicer provides around the panel is stood in for, and only
that: Qt for Python's classes for ``qt`` (PythonQt), widgets seen as PythonQt shows them (Qt
properties as attributes), ``slicer.i18n.tr`` returning its text, and a parameter node that
does what parameterNodeWrapper's ``connectGui`` does for the node selectors (a selection sets
the parameter and the parameter change is observed by the panel; a parameter set shows in its
selector, None as the selector's ``noneDisplay``).
"""

from __future__ import annotations

import os
import sys
import types

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtCore = pytest.importorskip("PySide6.QtCore")
QtWidgets = pytest.importorskip("PySide6.QtWidgets")
QtUiTools = pytest.importorskip("PySide6.QtUiTools")

from helpers import make_sphere_image  # noqa: E402
from test_adapter_logic import add_volume  # noqa: E402
from test_ui import UI_PATH, qt_ready_ui, string_property, ui_widgets  # noqa: E402
from UNetPlusPlusLib.adapter.segmentation_writer import new_segmentation_node  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic  # noqa: E402
from UNetPlusPlusLib.engine.manifest import ModelManifest  # noqa: E402

#: PythonQt's attribute -> Qt for Python's getter and setter
PROPERTIES = {
    "text": ("text", "setText"),
    "enabled": ("isEnabled", "setEnabled"),
    "toolTip": ("toolTip", "setToolTip"),
    "currentIndex": ("currentIndex", "setCurrentIndex"),
    "count": ("count", None),
}


class PythonQtView:
    """A Qt for Python widget as Slicer's PythonQt shows it: ``label.text = ...`` calls
    ``setText``; ``setCurrentNode`` (qSlicerMarkupsPlaceWidget's, a QPushButton here) does
    nothing."""

    def __init__(self, widget) -> None:
        object.__setattr__(self, "widget", widget)

    def __getattr__(self, name: str):
        if name in PROPERTIES:
            return getattr(self.widget, PROPERTIES[name][0])()
        if name == "setCurrentNode":
            return lambda node: None
        return getattr(self.widget, name)

    def __setattr__(self, name: str, value) -> None:
        getattr(self.widget, PROPERTIES[name][1])(value)


class ParameterNode:
    """The panel's parameter node as parameterNodeWrapper and ``connectGui`` make it, for the
    node selectors (``SlicerParameterName`` in the .ui): each set shows in the bound selector
    and calls the observers (ModifiedEvent); a selection in a selector sets its parameter."""

    def __init__(self, root, scene, **values) -> None:
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_observers", [])
        object.__setattr__(self, "_scene", scene)
        bound = {}
        for name, element in ui_widgets().items():
            parameter = string_property(element, "SlicerParameterName")
            if element.get("class") == "qMRMLNodeComboBox" and parameter:
                combo = root.findChild(QtWidgets.QComboBox, name)
                combo.clear()  # None, then the scene's nodes of the selector's class
                combo.addItem(string_property(element, "noneDisplay") or "None")
                class_name = element.find("property/stringlist/string").text
                nodes = scene.GetNodesByClass(class_name)
                combo.addItems(
                    [nodes.GetItemAsObject(i).GetName() for i in range(nodes.GetNumberOfItems())]
                )
                combo.currentIndexChanged.connect(
                    lambda _i, c=combo, p=parameter: self._selected(p, c.currentText())
                )
                bound[parameter] = combo
        object.__setattr__(self, "_bound", bound)

    def __getattr__(self, name: str):
        return self._values.get(name)

    def __setattr__(self, name: str, value) -> None:
        self._values[name] = value
        combo = self._bound.get(name)
        if combo is not None:
            combo.blockSignals(True)
            combo.setCurrentIndex(0 if value is None else combo.findText(value.GetName()))
            combo.blockSignals(False)
        for observer in self._observers:
            observer()

    def _selected(self, name: str, text: str) -> None:
        setattr(self, name, self._scene.GetFirstNodeByName(text) if text else None)


def load_ui():
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    data, _ = qt_ready_ui({}, whole=True)  # the collapsed sections' widgets too
    buffer = QtCore.QBuffer()
    buffer.setData(QtCore.QByteArray(data))
    buffer.open(QtCore.QIODevice.ReadOnly)
    root = QtUiTools.QUiLoader().load(buffer)
    assert root is not None
    return app, root


@pytest.fixture
def panel_widget(monkeypatch):
    """widget/panel_widget.py with ``qt``, ``slicer.i18n`` and parameterNodeWrapper stood in;
    the widget modules imported so are forgotten afterwards (the others come back)."""
    before = set(sys.modules)
    yield import_panel_widget(monkeypatch)
    for name in set(sys.modules) - before:
        if name.startswith("UNetPlusPlusLib.widget."):
            del sys.modules[name]


def import_panel_widget(monkeypatch):
    """widget/panel_widget.py with ``qt``, ``slicer.i18n`` and parameterNodeWrapper stood in."""
    qt = types.ModuleType("qt")
    qt.QTimer, qt.Qt, qt.QApplication = QtCore.QTimer, QtCore.Qt, QtWidgets.QApplication
    qt.QObject, qt.QEvent = QtCore.QObject, QtCore.QEvent
    i18n = types.ModuleType("slicer.i18n")
    i18n.tr = lambda text: text
    wrapper = types.ModuleType("slicer.parameterNodeWrapper")
    wrapper.parameterNodeWrapper = lambda cls: cls
    wrapper.Choice = lambda choices: None
    for name, module in (("qt", qt), ("slicer.i18n", i18n)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setitem(sys.modules, "slicer.parameterNodeWrapper", wrapper)
    for name in (
        "panel_widget",
        "run_control",
        "point_batch",
        "training_control",
        "parameter_node",
    ):
        monkeypatch.delitem(sys.modules, f"UNetPlusPlusLib.widget.{name}", raising=False)
    from UNetPlusPlusLib.widget import panel_widget

    return panel_widget


def wire_panel(panel_widget, module_logic, root, scene, tmp_path, attributes=None, **parameters):
    """The panel on ``root``'s widgets (the offscreen .ui) as the module's setup() wires it,
    with a stand-in parameter node holding ``parameters`` and ``trainingDirectory=tmp_path``;
    ``attributes`` are set on the panel before the node is. Returns (panel, node)."""
    panel = panel_widget.UNetPlusPlusPanel(module_logic, str(UI_PATH), lambda: True)
    children = root.findChildren(QtWidgets.QWidget)
    panel.ui = types.SimpleNamespace(**{w.objectName(): PythonQtView(w) for w in children})
    panel._inputLabels = [getattr(panel.ui, f"inputVolumeLabel{i}") for i in range(4)]
    panel._inputSelectors = [getattr(panel.ui, f"inputVolumeSelector{i}") for i in range(4)]
    panel._dependenciesReady, panel._trainingJob = True, None
    for name, value in (attributes or {}).items():
        setattr(panel, name, value)
    p = ParameterNode(root, scene, trainingDirectory=tmp_path, **parameters)
    p._observers.append(panel.onParameterNodeModified)  # setParameterNode's observer
    panel._parameterNode = p
    panel.refreshModels()  # fills the task selector, then onParameterNodeModified
    return panel, p


def test_a_new_input_volume_sets_the_output_back_to_create_new(
    panel_widget, sphere_model, tmp_path
):
    app, root = load_ui()
    scene = slicer.vtkMRMLScene()
    a = add_volume(scene, make_sphere_image((8, 8, 8)), "patient A")
    b = add_volume(scene, make_sphere_image((8, 8, 6), origin=(40.0, 0.0, 0.0)), "patient B")
    output = new_segmentation_node(scene, a, "patient A segmentation")
    manifest = ModelManifest.load(sphere_model)

    logic = types.SimpleNamespace(availableModels=lambda: [manifest], trainingLogic=TrainingLogic())
    panel, p = wire_panel(
        panel_widget, logic, root, scene, tmp_path, task=manifest.name, depth="auto", device="cpu"
    )

    inputs = root.findChild(QtWidgets.QComboBox, "inputVolumeSelector0")
    outputs = root.findChild(QtWidgets.QComboBox, "outputSegmentationSelector")
    status = root.findChild(QtWidgets.QLabel, "statusLabel")
    inputs.setCurrentIndex(inputs.findText("patient A"))  # the user's choices
    outputs.setCurrentIndex(outputs.findText("patient A segmentation"))
    assert p.inputVolume0 is a and p.outputSegmentation is output
    assert outputs.currentText() == "patient A segmentation"
    assert "Output is now" not in status.text()

    inputs.setCurrentIndex(inputs.findText("patient B"))  # another patient
    message = (
        "Output is now 'Create new segmentation': segmentation 'patient A segmentation' is not "
        "for input volume 'patient B' (it was made for volume 'patient A'); it is left "
        "unchanged."
    )
    assert p.inputVolume0 is b and p.outputSegmentation is None
    assert outputs.currentText() == "Create new segmentation"
    assert status.text() == message
    log = root.findChild(QtWidgets.QPlainTextEdit, "logTextEdit").toPlainText()
    assert log.splitlines().count(f"warning: {message}") == 1
    assert (
        output.GetScene() is scene
        and output.GetNodeReference(output.GetReferenceImageGeometryReferenceRole()) is a
    )  # left as it was

    # a node the user then chooses on purpose stays chosen; volume A again: nothing to say
    outputs.setCurrentIndex(outputs.findText("patient A segmentation"))
    assert p.outputSegmentation is output and outputs.currentText() == "patient A segmentation"
    inputs.setCurrentIndex(inputs.findText("patient A"))
    assert p.outputSegmentation is output
    assert log.splitlines().count(f"warning: {message}") == 1
    root.close()
    app.processEvents()

"""The panel's "Train / fine-tune" section: the .ui loads offscreen (Qt for Python) with its
widgets, its bindings match the parameter node, and the widget code drives it (issue 12)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_ui import (
    _method_calls,
    parameter_fields,
    qt_ready_ui,
    string_property,
    ui_tree,
    ui_widgets,
    widget_source,
)

SECTION = "trainCollapsibleButton"
WIDGETS = {
    "trainingDirectoryButton": ("ctkDirectoryButton", "trainingDirectory"),
    "trainingCasesLabel": ("QLabel", None),
    "addCaseButton": ("QPushButton", None),
    "trainFromScratchCheckBox": ("QCheckBox", "trainFromScratch"),
    "trainingChannelCheckCheckBox": ("QCheckBox", "trainingChannelCheck"),
    "trainingStrictLabelsCheckBox": ("QCheckBox", "trainingStrictLabels"),
    "trainingBudgetSelector": ("QComboBox", "trainingBudget"),
    "planButton": ("QPushButton", None),
    "trainingPlanLabel": ("QLabel", None),
    "trainButton": ("QPushButton", None),
    "trainingProgressBar": ("QProgressBar", None),
    "trainingStatusLabel": ("QLabel", None),
}


def test_section_holds_its_widgets_with_their_bindings():
    section = next(w for w in ui_tree().iter("widget") if w.get("name") == SECTION)
    assert string_property(section, "text") == "Train / fine-tune"
    inside = {w.get("name"): w for w in section.iter("widget")}
    for name, (cls, parameter) in WIDGETS.items():
        assert name in inside, name
        assert inside[name].get("class") == cls, name
        assert string_property(inside[name], "SlicerParameterName") == parameter, name
    fields = parameter_fields()
    assert fields["trainingDirectory"] == "Path" and fields["trainFromScratch"] == "bool"
    assert "BUDGET_CHOICES" in fields["trainingBudget"]
    from UNetPlusPlusLib.adapter.training_panel import BUDGET_CHOICES

    assert BUDGET_CHOICES == ("10m", "30m", "2h")


def test_every_parameter_is_bound_to_one_widget_only():
    """parameterNodeWrapper.connectGui keeps one widget per parameter name (a dict): a second
    widget bound to the same parameter would silently unbind the first."""
    bound = {}
    for name, widget in ui_widgets().items():
        parameter = string_property(widget, "SlicerParameterName")
        if parameter is not None:
            assert parameter not in bound, f"{parameter} bound to {bound[parameter]} and {name}"
            bound[parameter] = name


def test_widget_code_connects_the_buttons_and_stops_training_with_the_scene():
    source = widget_source()
    for name in ("addCaseButton", "planButton", "trainButton"):
        assert f"self.ui.{name}.connect(" in source, name
    assert "self.setupTraining()" in _method_calls("UNetPlusPlusPanel")["setup"]
    assert "self.stopTraining()" in _method_calls("UNetPlusPlusPanel")["shutdownLogic"]
    control = _method_calls("TrainingControl")
    assert "shutdownTraining" in control["stopTraining"]
    assert "refreshModels" in control["onModelInstalled"]
    assert "plan_only=planOnly" in control["startTraining"]
    # the sequence-order switch reaches `unetpp train` (test_adapter_training runs it)
    assert "channel_check_args(p.trainingChannelCheck)" in control["startTraining"]
    assert parameter_fields()["trainingChannelCheck"] == "bool"
    assert "strict_labels_args(p.trainingStrictLabels)" in control["startTraining"]
    assert parameter_fields()["trainingStrictLabels"] == "bool"
    assert {n for n in WIDGETS} <= set(ui_widgets())


def expanded_tree():
    """The .ui with the training section expanded (Qt stand-ins drop a collapsed layout)."""
    tree = ui_tree()
    section = next(w for w in tree.iter("widget") if w.get("name") == SECTION)
    for prop in section.findall("property"):
        if prop.get("name") == "collapsed":
            section.remove(prop)
    return tree


def test_section_renders_offscreen_while_training(tmp_path, monkeypatch):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtCore = pytest.importorskip("PySide6.QtCore")
    QtWidgets = pytest.importorskip("PySide6.QtWidgets")
    QtUiTools = pytest.importorskip("PySide6.QtUiTools")
    import test_ui
    from PIL import Image
    from UNetPlusPlusLib.adapter.training_panel import BUDGET_CHOICES, epoch_text

    monkeypatch.setattr(test_ui, "ui_tree", expanded_tree)
    tree_bytes, _ = qt_ready_ui({"trainingDirectoryButton": "UNetPlusPlus-training"})
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    buffer = QtCore.QBuffer()
    buffer.setData(QtCore.QByteArray(tree_bytes))
    buffer.open(QtCore.QIODevice.ReadOnly)
    root = QtUiTools.QUiLoader().load(buffer)
    assert root is not None
    section = root.findChild(QtWidgets.QGroupBox, SECTION)
    found = {n: section.findChild(QtWidgets.QWidget, n) for n in WIDGETS}
    assert all(found.values()), [n for n, w in found.items() if w is None]
    # what TrainingControl shows while a fine-tune runs
    found["trainingCasesLabel"].setText(
        "3 case(s) to train on, 1 refused\nCase 'case004': no image beside case004.seg.nrrd "
        "(expected case004.nrrd or case004_<channel>.nrrd)."
    )
    found["trainingBudgetSelector"].addItems(list(BUDGET_CHOICES))
    found["trainButton"].setText("Cancel")
    found["trainingProgressBar"].setValue(35)
    event = {"done": 7, "total": 20, "loss": 0.41, "eta_s": 212, "dice": {"2": 0.86}}
    found["trainingStatusLabel"].setText(epoch_text(event))
    section.resize(420, section.sizeHint().height())
    section.show()
    app.processEvents()
    path = tmp_path / "train.png"
    assert section.grab().save(str(path), "PNG")
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 200 and pixels.std() > 10
    root.close()

"""The nodule section of the panel's .ui says what "Segment each new point automatically" and
Segment do with placed points (widget/point_batch.py), loaded offscreen (Qt for Python) as
test_ui.py loads it: the option is bound to ``interactive``, points placed while it is off are
landmarks that Segment runs on request. Before, the texts said each point adds a segment, and
turning the option on ran the landmarks."""

from __future__ import annotations

import os

import pytest
from test_ui import qt_ready_ui, string_property, ui_widgets


def load_panel():
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtCore = pytest.importorskip("PySide6.QtCore")
    QtWidgets = pytest.importorskip("PySide6.QtWidgets")
    QtUiTools = pytest.importorskip("PySide6.QtUiTools")
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    data, _ = qt_ready_ui({})
    buffer = QtCore.QBuffer()
    buffer.setData(QtCore.QByteArray(data))
    buffer.open(QtCore.QIODevice.ReadOnly)
    root = QtUiTools.QUiLoader().load(buffer)
    assert root is not None
    return app, root, QtWidgets


def test_the_nodule_section_says_what_segment_does_with_placed_points():
    app, root, QtWidgets = load_panel()
    section = root.findChild(QtWidgets.QGroupBox, "noduleCollapsibleButton")
    option = section.findChild(QtWidgets.QCheckBox, "interactiveCheckBox")
    help_label = section.findChild(QtWidgets.QLabel, "noduleHelpLabel")
    assert option.text() == "Segment each new point automatically"
    assert string_property(ui_widgets()["interactiveCheckBox"], "SlicerParameterName") == (
        "interactive"
    )
    tip = option.toolTip()
    assert "placed while this is off are landmarks" in tip and "click Segment" in tip, tip
    assert "Segment runs the placed points that have no segment yet." in help_label.text()
    # the section's widgets sit in one form, in reading order: help, points, place, option
    layout = section.layout()
    order = [layout.itemAt(i).widget().objectName() for i in range(layout.count())]
    assert order.index("noduleHelpLabel") < order.index("interactiveCheckBox"), order
    root.show()
    app.processEvents()
    assert option.isVisible() and help_label.isVisible()
    root.close()

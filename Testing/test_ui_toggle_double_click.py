"""A double-click on a toggle of the prompt sections (the nodule points' "Place" button, the
ROI's, "Segment each new point automatically") toggles it once (widget/click_guard.py
``act_once_on_double_click``, installed by the panel's ``guardToggles``).

Qt delivers a double-click as press, release, double-click press, release, and
QAbstractButton takes the double-click press as a press: a checkable button toggled on and off
again, so a double-click on "Place" left Slicer out of place mode (the next click in a slice
view placed nothing). The buttons are real Qt buttons in offscreen Qt (Qt for Python): the
"Place" buttons as qSlicerMarkupsPlaceWidget makes them (``placeButton()``, a checkable
QToolButton whose ``toggled`` sets the place mode), the check box from the .ui. No model run,
no MRML (cheap).
"""

from __future__ import annotations

import types

import pytest

slicer = pytest.importorskip("slicer")
QtTest = pytest.importorskip("PySide6.QtTest")

import test_ui_output_release  # noqa: E402
from test_ui_output_release import QtCore, QtWidgets, load_ui  # noqa: E402

panel_widget = test_ui_output_release.panel_widget  # its fixture
QtGui = pytest.importorskip("PySide6.QtGui")


class PlaceWidget:
    """qSlicerMarkupsPlaceWidget as the panel uses it (Modules/Loadable/Markups/Widgets/
    qSlicerMarkupsPlaceWidget.cxx: ``PlaceButton`` a checkable QToolButton, its
    ``toggled(bool)`` connected to ``setPlaceModeEnabled``)."""

    def __init__(self) -> None:
        self.button = QtWidgets.QToolButton()
        self.button.setCheckable(True)
        self.modes: list[bool] = []  # each setPlaceModeEnabled(bool)
        self.button.toggled.connect(self.modes.append)
        self.button.show()

    def placeButton(self):
        return self.button


def double_click(widget) -> None:
    """A double-click as Qt delivers it: press, release, double-click press, release."""
    centre = QtCore.QPointF(widget.rect().center())
    events = (
        (QtCore.QEvent.MouseButtonPress, QtCore.Qt.LeftButton),
        (QtCore.QEvent.MouseButtonRelease, QtCore.Qt.NoButton),
        (QtCore.QEvent.MouseButtonDblClick, QtCore.Qt.LeftButton),
        (QtCore.QEvent.MouseButtonRelease, QtCore.Qt.NoButton),
    )
    for kind, buttons in events:
        event = QtGui.QMouseEvent(
            kind, centre, widget.mapToGlobal(centre), QtCore.Qt.LeftButton, buttons,
            QtCore.Qt.NoModifier,
        )  # fmt: skip
        QtWidgets.QApplication.sendEvent(widget, event)


def test_a_double_click_on_a_toggle_toggles_it_once(panel_widget):
    app, root = load_ui()
    checkbox = root.findChild(QtWidgets.QCheckBox, "interactiveCheckBox")
    points, roi, unguarded = PlaceWidget(), PlaceWidget(), PlaceWidget()
    checkbox.show()
    double_click(unguarded.button)  # Qt alone: on, then off again
    assert unguarded.modes == [True, False] and not unguarded.button.isChecked()

    panel = panel_widget.UNetPlusPlusPanel(None, "", lambda: True)
    panel.ui = types.SimpleNamespace(
        nodulePlaceWidget=points, roiPlaceWidget=roi, interactiveCheckBox=checkbox
    )
    panel.guardToggles()  # as setup() does
    was = checkbox.isChecked()
    for place in (points, roi):
        double_click(place.button)
        assert place.modes == [True] and place.button.isChecked()  # in place mode: once
        QtTest.QTest.mouseClick(place.button, QtCore.Qt.LeftButton)  # a click later: off
        assert place.modes == [True, False] and not place.button.isChecked()
    double_click(checkbox)
    assert checkbox.isChecked() is not was
    QtTest.QTest.mouseClick(checkbox, QtCore.Qt.LeftButton)
    assert checkbox.isChecked() is was
    root.close()
    app.processEvents()

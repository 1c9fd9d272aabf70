"""Multi-channel inputs (issue 10, defect 2): a channel without a volume, or one volume chosen for
several channels, is refused with one message naming the channels, in the panel's check and in
the Logic on real MRML; the .ui's channel selectors allow "None", so Qt never auto-selects the
first volume into every channel."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from UNetPlusPlusLib.adapter.panel import channel_input_problem

REPO = Path(__file__).resolve().parents[1]
UI_PATH = REPO / "UNetPlusPlus" / "Resources" / "UI" / "UNetPlusPlus.ui"
BRAIN_MODEL = (
    REPO
    / "UNetPlusPlus"
    / "UNetPlusPlusLib"
    / "Resources"
    / "Models"
    / "brain-tumor"
    / "model.json"
)
CHANNELS = ["FLAIR", "T1", "T1ce", "T2"]


class Node:
    def __init__(self, name: str) -> None:
        self.name = name

    def GetName(self) -> str:  # noqa: N802 (MRML's spelling)
        return self.name


def test_four_distinct_volumes_pass():
    assert channel_input_problem(CHANNELS, [Node(c) for c in CHANNELS]) is None


def test_one_volume_in_two_channels_is_refused_naming_both():
    flair = Node("flair")
    message = channel_input_problem(CHANNELS, [flair, Node("t1"), flair, Node("t2")])
    assert message is not None
    assert "FLAIR and T1ce" in message and "'flair'" in message


def test_the_same_volume_in_every_channel_is_refused():
    flair = Node("flair")
    message = channel_input_problem(CHANNELS, [flair] * 4)
    assert "FLAIR and T1 and T1ce and T2" in message


def test_empty_channels_are_named():
    message = channel_input_problem(CHANNELS, [Node("flair"), None, Node("t1ce"), None])
    assert message is not None and "T1, T2" in message


def test_channel_selectors_allow_none_in_the_ui_loaded_by_qt():
    """The real .ui, loaded by Qt (PySide6, offscreen): Slicer's ``noneEnabled`` property of each
    channel selector is read back from the loaded widget (kept as a dynamic property, as the
    qMRMLNodeComboBox class is not available outside Slicer)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtCore = pytest.importorskip("PySide6.QtCore")
    QtWidgets = pytest.importorskip("PySide6.QtWidgets")
    QtUiTools = pytest.importorskip("PySide6.QtUiTools")
    tree = ET.parse(UI_PATH).getroot()
    for widget in tree.iter("widget"):
        if widget.get("class") == "qMRMLNodeComboBox":
            widget.set("class", "QComboBox")
            for prop in widget.findall("property"):
                if prop.get("name") in ("noneEnabled", "noneDisplay"):
                    prop.set("stdset", "0")  # a dynamic property, read back below
                elif prop.get("name") not in ("toolTip", "SlicerParameterName"):
                    widget.remove(prop)
        elif widget.get("class", "").startswith(("qMRML", "qSlicer", "ctk")):
            widget.set("class", "QWidget")
    for tag in ("customwidgets", "connections"):
        for element in tree.findall(tag):
            tree.remove(element)
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    buffer = QtCore.QBuffer()
    buffer.setData(QtCore.QByteArray(ET.tostring(tree, encoding="utf-8")))
    buffer.open(QtCore.QIODevice.ReadOnly)
    root = QtUiTools.QUiLoader().load(buffer)
    assert root is not None
    for i in range(4):
        selector = root.findChild(QtWidgets.QComboBox, f"inputVolumeSelector{i}")
        assert selector is not None
        assert selector.property("noneEnabled") is True, f"inputVolumeSelector{i}"
        assert selector.property("SlicerParameterName") == f"inputVolume{i}"
        assert selector.property("noneDisplay")
    root.close()
    app.processEvents()


# ----------------------------------------------------------------------------- real MRML
def _mrml():
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkMRMLScene"):
        pytest.skip("slicer-core (MRML) is not installed")
    return slicer


def _volumes(slicer, names):
    from UNetPlusPlusLib.adapter import geometry
    from UNetPlusPlusLib.engine.volume import Volume

    scene = slicer.vtkMRMLScene()
    rng = np.random.default_rng(0)
    nodes = []
    for name in names:
        volume = Volume(
            array=rng.normal(size=(1, 6, 7, 8)).astype(np.float32),
            spacing=(1.0, 1.0, 1.0),
            origin=(0.0, 0.0, 0.0),
            direction=np.eye(3),
        )
        nodes.append(geometry.volume_node_from_volume(scene, volume, name))
    return scene, nodes


@pytest.mark.parametrize("run", ["segment", "start_job"])
def test_logic_refuses_one_volume_in_two_channels_on_real_mrml(run):
    slicer = _mrml()
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    _scene, (flair, t1, t2) = _volumes(slicer, ["flair", "t1", "t2"])
    manifest = ModelManifest.load(BRAIN_MODEL)
    with pytest.raises(UNetPlusPlusError, match="FLAIR and T1ce use the same volume 'flair'"):
        getattr(SegmentationLogic(), run)([flair, t1, flair, t2], manifest)


def test_logic_refuses_an_empty_channel_on_real_mrml():
    slicer = _mrml()
    from UNetPlusPlusLib.adapter.logic import SegmentationLogic
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.errors import UNetPlusPlusError

    _scene, (flair, t1, t1ce) = _volumes(slicer, ["flair", "t1", "t1ce"])
    manifest = ModelManifest.load(BRAIN_MODEL)
    with pytest.raises(UNetPlusPlusError, match="No input volume selected for T2"):
        SegmentationLogic().start_job([flair, t1, t1ce, None], manifest)

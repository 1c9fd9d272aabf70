"""The Slicer panel, statically: the .ui, the Widget code and the parameter node agree, the module
imports nothing heavy at file scope, and the panel renders (offscreen, Qt for Python) into
Screenshots/panel.png.

3D Slicer itself cannot run here, so Slicer's custom widgets are mapped to their closest Qt
classes before loading (ctkCollapsibleButton -> QGroupBox, qMRMLNodeComboBox -> QComboBox, ...).
"""

from __future__ import annotations

import ast
import os
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UNetPlusPlus"
UI_PATH = MODULE_DIR / "Resources" / "UI" / "UNetPlusPlus.ui"
MODULE_PATH = MODULE_DIR / "UNetPlusPlus.py"
WIDGET_DIR = MODULE_DIR / "UNetPlusPlusLib" / "widget"
WIDGET_FILES = sorted(WIDGET_DIR.glob("*.py"))
SCREENSHOT = REPO / "Screenshots" / "panel.png"

# Slicer widget -> (Qt stand-in, the parameter types it can be bound to)
NODE_WIDGETS = {"qMRMLNodeComboBox"}
BINDABLE = {
    "qMRMLNodeComboBox": "vtkMRML",
    "QCheckBox": "bool",
    "QComboBox": "Choice",
    "QLineEdit": "str",
    "ctkDirectoryButton": "Path",
}
STAND_INS = {
    "qMRMLWidget": "QWidget",
    "qSlicerWidget": "QWidget",
    "ctkCollapsibleButton": "QGroupBox",
    "qMRMLNodeComboBox": "QComboBox",
    "qSlicerMarkupsPlaceWidget": "QPushButton",
    "ctkDirectoryButton": "QPushButton",
}
SLICER_ONLY_PROPERTIES = {
    "nodeTypes", "showChildNodeTypes", "noneEnabled", "addEnabled", "removeEnabled",
    "renameEnabled", "noneDisplay", "baseName", "collapsed",
}  # fmt: skip
ALLOWED_FILE_SCOPE_IMPORTS = {"qt", "ctk", "vtk", "numpy", "slicer", "UNetPlusPlusLib"}
MAX_MODULE_FILE_LINES = 200
MAX_FILE_LINES = 500


# ----------------------------------------------------------------------------- parsing
def ui_tree() -> ET.Element:
    return ET.parse(UI_PATH).getroot()


def ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ui_tree().iter("widget")}


def string_property(widget: ET.Element, name: str) -> str | None:
    for prop in widget.findall("property"):
        if prop.get("name") == name:
            node = prop.find("string")
            return node.text if node is not None else None
    return None


def widget_source() -> str:
    """The source of the module file and every file of the widget package, concatenated."""
    return "\n".join(p.read_text(encoding="utf-8") for p in [MODULE_PATH, *WIDGET_FILES])


def module_ast() -> ast.Module:
    """The module file and the widget package, parsed as one module."""
    return ast.parse(widget_source())


def module_constant(name: str):
    for node in module_ast().body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def parameter_fields() -> dict[str, str]:
    """Field name -> annotation source of the @parameterNodeWrapper class."""
    for node in module_ast().body:
        if isinstance(node, ast.ClassDef) and any(
            getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list
        ):
            return {
                item.target.id: ast.unparse(item.annotation)
                for item in node.body
                if isinstance(item, ast.AnnAssign)
            }
    raise AssertionError("no @parameterNodeWrapper class in the widget package")


def widget_names_used_by_code() -> set[str]:
    """``self.ui.<name>`` and ``getattr(self.ui, f"<prefix>{i}")`` (over range(MAX_CHANNELS))."""
    names = set()
    channels = module_constant("MAX_CHANNELS")
    for node in ast.walk(module_ast()):
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self.ui":
            names.add(node.attr)
        if (
            isinstance(node, ast.Call)
            and getattr(node.func, "id", None) == "getattr"
            and ast.unparse(node.args[0]) == "self.ui"
        ):
            template = node.args[1]
            if isinstance(template, ast.Constant):
                names.add(template.value)
            else:
                prefix = "".join(v.value for v in template.values if isinstance(v, ast.Constant))
                names |= {f"{prefix}{i}" for i in range(channels)}
    return names


# ----------------------------------------------------------------------------- static checks
def test_every_widget_the_code_uses_exists_in_the_ui():
    used = widget_names_used_by_code()
    assert {"segmentButton", "taskSelector", "inputVolumeSelector3", "logTextEdit"} <= used
    missing = sorted(used - set(ui_widgets()))
    assert not missing, f"widgets used by the panel code but absent from the .ui: {missing}"


def test_every_parameter_binding_matches_a_field_of_the_right_type():
    fields = parameter_fields()
    bound = {}
    for name, widget in ui_widgets().items():
        parameter = string_property(widget, "SlicerParameterName")
        if parameter is None:
            continue
        assert parameter in fields, f"{name} is bound to unknown parameter {parameter!r}"
        kind = BINDABLE.get(widget.get("class"))
        assert kind is not None, f"{name} ({widget.get('class')}) cannot be bound"
        assert kind in fields[parameter], f"{name} cannot show {parameter}: {fields[parameter]}"
        if widget.get("class") in NODE_WIDGETS:
            types = [s.text for s in widget.iter("string") if (s.text or "").startswith("vtkMRML")]
            assert fields[parameter] in types, f"{name} lists {types}, not {fields[parameter]}"
        bound[parameter] = name
    # task and device are filled at run time (installed models, local GPUs) and synchronised by
    # the Widget; every other field has a widget
    assert set(fields) - set(bound) == {"task", "device"}
    source = widget_source()
    for manual in ("task", "device"):
        assert f"self._parameterNode.{manual} = " in source


def test_mrml_widgets_receive_the_scene():
    tree = ui_tree()
    receivers = {
        c.findtext("receiver")
        for c in tree.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
    }
    mrml = {n for n, w in ui_widgets().items() if w.get("class").startswith(("qMRML", "qSlicer"))}
    mrml.discard(tree.find("widget").get("name"))  # the top-level widget sends it
    assert mrml and mrml <= receivers, f"no setMRMLScene connection for {sorted(mrml - receivers)}"


def test_depth_choices_are_the_panel_choices():
    fields = parameter_fields()
    from UNetPlusPlusLib.adapter import panel

    assert "panel.DEPTH_CHOICES" in fields["depth"]
    assert panel.DEPTH_CHOICES == ("auto", "1", "2", "3", "4", "ensemble")


def _top_level_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
                package = ".".join(base.relative_to(MODULE_DIR).parts)
                target = f"{package}.{node.module}" if node.module else package
                names += [target] if node.module else [f"{package}.{a.name}" for a in node.names]
            elif node.module == "UNetPlusPlusLib.adapter" or node.module == "UNetPlusPlusLib":
                names += [f"{node.module}.{a.name}" for a in node.names]
            else:
                names.append(node.module)
    return names


def test_module_imports_nothing_heavy_at_file_scope():
    stdlib = set(sys.stdlib_module_names)
    pending, seen = [MODULE_PATH], set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        # the module and the widget package may import Slicer, Qt, vtk and numpy; the other
        # library modules they pull in only the standard library and each other
        slicer_side = path == MODULE_PATH or path.parent == WIDGET_DIR
        allowed = ALLOWED_FILE_SCOPE_IMPORTS if slicer_side else {"UNetPlusPlusLib"}
        for name in _top_level_imports(path):
            root = name.split(".")[0]
            assert root in stdlib or root in allowed, f"{path.name} imports {name} at file scope"
            if root == "UNetPlusPlusLib":
                target = MODULE_DIR.joinpath(*name.split("."))
                if target.with_suffix(".py").is_file():
                    target = target.with_suffix(".py")
                else:
                    target = target / "__init__.py"
                assert target.is_file(), name
                pending.append(target)
                parts = name.split(".")
                pending += [
                    MODULE_DIR.joinpath(*parts[:n], "__init__.py") for n in range(1, len(parts))
                ]
    lib_modules = {p.relative_to(MODULE_DIR).as_posix() for p in seen if p != MODULE_PATH}
    assert {"UNetPlusPlusLib/__init__.py", "UNetPlusPlusLib/adapter/panel.py"} <= lib_modules
    assert not any("engine" in m for m in lib_modules), lib_modules
    assert "UNetPlusPlusLib/widget/panel_widget.py" in lib_modules


def test_module_file_is_a_thin_shell_and_the_widget_files_are_small():
    """The module file keeps the module class, sample data and shells (SlicerNNUnet's split)."""
    tree = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert set(classes) == {"UNetPlusPlus", "UNetPlusPlusWidget"}
    imported = {
        a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names
    }
    # Slicer finds the Logic and the self-test by name in the module file
    assert {"UNetPlusPlusLogic", "UNetPlusPlusTest"} <= imported
    shell = classes["UNetPlusPlusWidget"]
    assert len(shell.body) <= 8 and shell.end_lineno - shell.lineno < 50
    lines = len(MODULE_PATH.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_MODULE_FILE_LINES, lines
    for path in WIDGET_FILES:
        count = len(path.read_text(encoding="utf-8").splitlines())
        assert count <= MAX_FILE_LINES, f"{path.name}: {count} lines"


# ----------------------------------------------------------------------------- rendering
def qt_ready_ui(sample: dict, whole: bool = False) -> tuple[bytes, dict[str, str]]:
    """The .ui with Slicer widgets replaced by Qt stand-ins; also combo box -> first item text.
    A collapsed section shows its title only, unless ``whole`` (every widget is built)."""
    tree = ui_tree()
    first_items = {}
    for widget in tree.iter("widget"):
        cls = widget.get("class")
        name = widget.get("name")
        if cls == "qMRMLNodeComboBox":
            first_items[name] = sample.get(name) or string_property(widget, "noneDisplay") or ""
        if cls == "ctkCollapsibleButton":
            collapsed = any(
                p.get("name") == "collapsed" and p.findtext("bool") == "true"
                for p in widget.findall("property")
            )
            for prop in widget.findall("property"):
                if prop.get("name") == "text":
                    prop.set("name", "title")
                    label = prop.find("string")
                    label.text = ("\u25b8 " if collapsed else "\u25be ") + (label.text or "")
            if collapsed and not whole:
                for layout in widget.findall("layout"):
                    widget.remove(layout)
        if cls in ("qSlicerMarkupsPlaceWidget", "ctkDirectoryButton"):
            text = ET.SubElement(ET.SubElement(widget, "property", name="text"), "string")
            text.text = sample.get(name, "")
        for prop in list(widget.findall("property")):
            if prop.get("name") in SLICER_ONLY_PROPERTIES or prop.get("stdset") == "0":
                widget.remove(prop)
        widget.set("class", STAND_INS.get(cls, cls))
    for tag in ("customwidgets", "connections"):
        for element in tree.findall(tag):
            tree.remove(element)
    return ET.tostring(tree, encoding="utf-8"), first_items


def preview_model():
    """An installed model (the multi-channel one if any), else the test fixture model."""
    from UNetPlusPlusLib.engine.manifest import ModelManifest
    from UNetPlusPlusLib.engine.registry import list_models

    models = list_models()
    if models:
        return max(models, key=lambda m: len(m.channels)), models
    fixture = ModelManifest.load(REPO / "Testing" / "fixtures" / "sphere_model" / "model.json")
    return fixture, [fixture]


def test_panel_renders_offscreen_into_the_screenshot(tmp_path):
    """Renders into tmp; UNETPP_UPDATE_SCREENSHOTS=1 refreshes Screenshots/panel.png."""
    screenshot = SCREENSHOT if os.environ.get("UNETPP_UPDATE_SCREENSHOTS") else tmp_path / "p.png"
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    QtCore = pytest.importorskip("PySide6.QtCore")
    QtWidgets = pytest.importorskip("PySide6.QtWidgets")
    QtUiTools = pytest.importorskip("PySide6.QtUiTools")
    from PIL import Image
    from UNetPlusPlusLib.adapter import panel

    manifest, models = preview_model()
    channels = [c.name for c in manifest.channels]
    case = "Brats18_2013_11_1" if len(channels) > 1 else "LiverCT"
    sample = {f"inputVolumeSelector{i}": f"{case}_{c.lower()}" for i, c in enumerate(channels)}
    if len(channels) == 1:
        sample["inputVolumeSelector0"] = case
    sample["exportDirectoryButton"] = "UNetPlusPlus-training"
    sample["nodulePlaceWidget"] = "Place a point"
    sample["roiPlaceWidget"] = "Place ROI"
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    data, first_items = qt_ready_ui(sample)
    buffer = QtCore.QBuffer()
    buffer.setData(QtCore.QByteArray(data))
    buffer.open(QtCore.QIODevice.ReadOnly)
    root = QtUiTools.QUiLoader().load(buffer)
    assert root is not None, "QUiLoader could not build the panel"
    find = lambda name, cls=QtWidgets.QWidget: root.findChild(cls, name)  # noqa: E731

    # what the Widget does for the selected model (UNetPlusPlusPanel.updateModelDependentGui)
    tasks = find("taskSelector", QtWidgets.QComboBox)
    for model in models:
        tasks.addItem(f"{panel.task_title(model)} - {model.name}")
    tasks.setCurrentIndex(models.index(manifest))
    find("modelDescriptionLabel", QtWidgets.QLabel).setText(panel.model_summary(manifest))
    depth = find("depthSelector", QtWidgets.QComboBox)
    for choice in panel.DEPTH_CHOICES:
        depth.addItem(panel.depth_item_text(manifest, choice))
    devices = find("deviceSelector", QtWidgets.QComboBox)
    devices.addItems(["auto (GPU if available)", "CPU"])
    for name, text in first_items.items():
        find(name, QtWidgets.QComboBox).addItem(text)
    for i in range(module_constant("MAX_CHANNELS")):
        visible = i < len(channels)
        find(f"inputVolumeLabel{i}").setVisible(visible)
        find(f"inputVolumeSelector{i}").setVisible(visible)
        if visible:
            label = f"{channels[i]}:" if len(channels) > 1 else "Input volume:"
            find(f"inputVolumeLabel{i}", QtWidgets.QLabel).setText(label)
    find("noduleCollapsibleButton").setVisible(panel.is_prompted(manifest))
    find("interactiveCheckBox", QtWidgets.QCheckBox).setChecked(True)
    # a run in progress: the Segment button has become Cancel
    button = find("segmentButton", QtWidgets.QPushButton)
    button.setEnabled(True)
    button.setText("Cancel")
    text, percent = panel.progress_text("infer", 12, 48)
    find("progressBar", QtWidgets.QProgressBar).setValue(percent)
    find("statusLabel", QtWidgets.QLabel).setText(text)

    root.resize(420, 10)
    root.resize(420, root.sizeHint().height())
    root.show()
    app.processEvents()
    pixmap = root.grab()
    screenshot.parent.mkdir(exist_ok=True)
    assert pixmap.save(str(screenshot), "PNG")
    root.close()

    pixels = np.asarray(Image.open(screenshot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[0] > 300 and pixels.shape[1] >= 400
    assert pixels.std() > 10, "the rendered panel is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 20
    assert re.search(r"auto \(L\d\)", depth.itemText(0))


def _method_calls(class_name: str) -> dict[str, str]:
    """Method name -> its source, for a class of the widget package."""
    for node in ast.walk(module_ast()):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {f.name: ast.unparse(f) for f in node.body if isinstance(f, ast.FunctionDef)}
    raise KeyError(class_name)


def test_cleanup_scene_close_and_application_exit_shut_the_logic_down():
    """Module cleanup (also run by Reload), scene close and Slicer's exit stop running jobs and
    remove their working folders through the Logic's shutdown()."""
    methods = _method_calls("UNetPlusPlusPanel")
    for hook in ("cleanup", "onSceneStartClose", "onAboutToQuit"):
        assert "self.shutdownLogic()" in methods[hook], hook
    assert "shutdown" in methods["shutdownLogic"]
    assert "slicer.app.connect('aboutToQuit()', self.onAboutToQuit)" in methods["setup"]
    assert "slicer.app.disconnect('aboutToQuit()', self.onAboutToQuit)" in methods["cleanup"]
    shell = ast.parse(MODULE_PATH.read_text(encoding="utf-8"))
    widget = next(n for n in shell.body if getattr(n, "name", "") == "UNetPlusPlusWidget")
    cleanup = next(f for f in widget.body if getattr(f, "name", "") == "cleanup")
    assert "self.panel.cleanup()" in ast.unparse(cleanup)

"""A models listing that fails in the panel (widget/panel_widget.py ``refreshModels``): a
``UNETPP_MODELS`` entry that is no folder is refused since review cli20
(engine/model_search.check_env_dir), which empties the task list in Slicer. The task selector
said "No model installed (see Troubleshooting)", though the shipped models are there, and the
reason went to the collapsed log alone. Now the selector says the models could not be listed
and the status line gives the reason. The real panel on the offscreen .ui and the real
listing (SegmentationLogic.available_models) with the environment variable set."""

from __future__ import annotations

import types

import pytest

slicer = pytest.importorskip("slicer")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("slicer-core (MRML) is not installed", allow_module_level=True)
QtWidgets = pytest.importorskip("PySide6.QtWidgets")

import test_ui_output_release  # noqa: E402
from test_ui_output_release import load_ui, wire_panel  # noqa: E402
from UNetPlusPlusLib.adapter.logic import SegmentationLogic  # noqa: E402
from UNetPlusPlusLib.adapter.training_logic import TrainingLogic  # noqa: E402

panel_widget = test_ui_output_release.panel_widget  # its fixture


def _panel(panel_widget, tmp_path):
    _app, root = load_ui()
    logic = types.SimpleNamespace(
        availableModels=SegmentationLogic.available_models, trainingLogic=TrainingLogic()
    )
    wire_panel(
        panel_widget, logic, root, slicer.vtkMRMLScene(), tmp_path, depth="auto", device="cpu"
    )
    tasks = root.findChild(QtWidgets.QComboBox, "taskSelector")
    status = root.findChild(QtWidgets.QLabel, "statusLabel")
    return [tasks.itemText(i) for i in range(tasks.count())], status.text()


def test_a_models_folder_that_does_not_exist_is_said_not_no_model_installed(
    panel_widget, tmp_path, monkeypatch
):
    wrong = tmp_path / "typo"
    monkeypatch.setenv("UNETPP_MODELS", str(wrong))
    items, status = _panel(panel_widget, tmp_path)
    assert items == ["Models could not be listed (see the status below)"]
    assert status.startswith(f"UNETPP_MODELS names {wrong}, which does not exist"), status


def test_without_the_error_the_shipped_models_are_listed(panel_widget, tmp_path, monkeypatch):
    monkeypatch.delenv("UNETPP_MODELS", raising=False)
    items, status = _panel(panel_widget, tmp_path)
    assert any(item.endswith(" - lung-nodule-ct") for item in items), items
    assert "UNETPP_MODELS" not in status

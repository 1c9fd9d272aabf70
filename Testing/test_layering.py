"""The layering contract: the engine imports neither Slicer nor Qt, and the module file imports
only what Slicer provides, so it loads before torch is installed."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "UNetPlusPlus" / "UNetPlusPlusLib"
MODULE_FILE = LIB.parent / "UNetPlusPlus.py"
FORBIDDEN_IN_ENGINE = {"slicer", "qt", "ctk", "PySide6", "PyQt5", "PyQt6", "vtk", "mrml"}
ALLOWED_AT_MODULE_SCOPE = {"slicer", "qt", "ctk", "vtk", "numpy", "UNetPlusPlusLib"}


def _imported_roots(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else ast.walk(tree)
    roots = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


ENGINE_FILES = sorted(
    [*(LIB / "engine").glob("*.py"), *(LIB / "training").glob("*.py"),
     *LIB.glob("cli*.py"), LIB / "segfile.py", LIB / "preview.py", LIB / "errors.py",
     LIB / "resources.py", LIB / "cancel.py", LIB / "warm_cache.py"]
)  # fmt: skip


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: p.name)
def test_engine_imports_neither_slicer_nor_qt(path):
    assert not (_imported_roots(path) & FORBIDDEN_IN_ENGINE), path


def test_module_file_imports_only_what_slicer_provides_at_file_scope():
    stdlib = set(sys.stdlib_module_names)
    roots = _imported_roots(MODULE_FILE, top_level_only=True) - stdlib - {"__future__"}
    assert roots <= ALLOWED_AT_MODULE_SCOPE, roots - ALLOWED_AT_MODULE_SCOPE


def test_only_the_module_and_the_widget_package_import_the_widget_package():
    """The widget package (Qt, Slicer GUI) sits on top: the adapter, the engine and the CLI never
    import it, so they keep running without Slicer."""
    for path in sorted(LIB.rglob("*.py")):
        if path.parent == LIB / "widget":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n.startswith("UNetPlusPlusLib.widget") for n in names), path


def test_listing_models_does_not_import_torch():
    code = (
        "import sys; import UNetPlusPlusLib.engine.registry as r; r.list_models(); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


PANEL_SET_UP = """
import sys, time
from UNetPlusPlusLib.adapter import install, panel
from UNetPlusPlusLib.adapter.logic import SegmentationLogic

logic = SegmentationLogic()
install.dependencies_ready()
for manifest in logic.available_models():
    panel.task_title(manifest), panel.model_summary(manifest)
    [panel.depth_item_text(manifest, c) for c in panel.DEPTH_CHOICES]
deadline = time.monotonic() + 120
while (devices := logic.device_list()) is None and time.monotonic() < deadline:
    time.sleep(0.05)
choices = panel.device_choices(devices)
logic.shutdown()
print("torch" in sys.modules, [c[1] for c in choices], logic.device_error())
"""


def test_opening_the_panel_does_not_import_torch():
    """The Logic, the panel helpers and the device list leave torch out of Slicer's process:
    the engine's own process lists the devices (``unetpp devices --json``)."""
    pytest.importorskip("slicer")
    out = subprocess.run(
        [sys.executable, "-c", PANEL_SET_UP], capture_output=True, text=True, timeout=180
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False ['auto', 'cpu'] None"

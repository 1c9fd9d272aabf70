"""The layering contract: the engine imports neither Slicer nor Qt, and the module file imports
only what Slicer provides, so it loads before torch is installed."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "UNetPlusPlus" / "UNetPlusPlusLib"
MODULE_FILE = LIB.parent / "UNetPlusPlus.py"
FORBIDDEN_IN_ENGINE = {"slicer", "qt", "ctk", "PySide6", "PyQt5", "PyQt6", "vtk", "mrml"}
ALLOWED_AT_MODULE_SCOPE = {"slicer", "qt", "ctk", "vtk", "numpy", "UNetPlusPlusLib"}


@functools.cache
def _tree(path: Path) -> ast.Module:
    """The parsed source of ``path``, parsed once for all the tests of this file."""
    return ast.parse(path.read_text(encoding="utf-8"))


def _imported_roots(path: Path, top_level_only: bool = False) -> set[str]:
    tree = _tree(path)
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
     LIB / "resources.py", LIB / "cancel.py", LIB / "warm_cache.py", LIB / "exit_codes.py",
     LIB / "run_record.py", LIB / "segment_outputs.py", LIB / "output_stamp.py"]
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
        for node in ast.walk(_tree(path)):
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


LIST_MODELS = """
import json, sys
from UNetPlusPlusLib.cli import main
from UNetPlusPlusLib.engine.manifest_model import ModelManifest
from UNetPlusPlusLib.engine.registry import find_model

code = main(["models", "list"])
data = json.loads(find_model("brain-tumor").path.read_text())
data["test_time_augmentation"] = {"mirror_axes": ["y", "z"]}
ModelManifest.from_dict(data)  # each optional reference's check, without numpy
print(json.dumps([code, sorted({"numpy", "torch"} & set(sys.modules))]))
"""


def test_listing_models_imports_neither_numpy_nor_torch():
    """`unetpp models list` is a light command: the checks of the shipped brain-tumour model's
    plausible volumes, channel fingerprint and bias-field reference (and of test-time
    augmentation) imported numpy (about 0.2 s) from the modules that use them."""
    out = subprocess.run(
        [sys.executable, "-c", LIST_MODELS], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert sum(line.strip() == "status: ok" for line in lines) >= 3, out.stdout
    assert json.loads(lines[-1]) == [0, []]


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


# ------------------------------------------------------------------------------ import cycles
def _module_names() -> dict[str, Path]:
    """Every module under UNetPlusPlus/ by dotted name (the module file is ``UNetPlusPlus``)."""
    names = {}
    for path in sorted(MODULE_FILE.parent.rglob("*.py")):
        parts = path.relative_to(MODULE_FILE.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def imported_names(source: str | ast.Module, package: str) -> set[str]:
    """Every dotted name the imports of ``source`` (text or parsed tree) may load, wherever they
    stand (file scope, functions, ``if TYPE_CHECKING``): the module, and ``module.name`` for each
    name of a ``from`` import (it may be a submodule). ``package``: the importing module's
    package, for relative imports."""
    names = set()
    for node in ast.walk(ast.parse(source) if isinstance(source, str) else source):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules under UNetPlusPlus/ that it imports anywhere in its code."""
    modules = _module_names()
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        imported = imported_names(_tree(path), package)
        graph[name] = {target for target in imported if target in modules} - {name}
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); each component sorted, components in no fixed order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        work.append((node, iter(sorted(graph[node]))))

    for root in sorted(graph):
        if root in index:
            continue
        work: list = []
        visit(root)
        while work:
            node, targets = work[-1]
            for target in targets:
                if target not in index:
                    visit(target)
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = [stack.pop()]
                    while component[-1] != node:
                        component.append(stack.pop())
                    on_stack.difference_update(component)
                    components.append(sorted(component))
    return components


def test_the_cycle_scan_sees_every_kind_of_import():
    source = (
        "import a.b\nfrom . import c\nfrom ..d import e\n"
        "def f():\n    from .g import h\n"
        "if TYPE_CHECKING:\n    from x.y import Z\n"
    )
    assert imported_names(source, "p.q") == {
        "a.b", "p.q", "p.q.c", "p.d", "p.d.e", "p.q.g", "p.q.g.h", "x.y", "x.y.Z"
    }  # fmt: skip
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": set(), "f": set()}
    assert sorted(c for c in strongly_connected_components(graph) if len(c) > 1) == [
        ["a", "b", "c"]
    ]
    real = import_graph()  # the module file and the package's modules, inner imports counted
    assert "UNetPlusPlusLib.widget.module_logic" in real["UNetPlusPlus"]
    assert "UNetPlusPlusLib.engine.runtime_env" in real["UNetPlusPlusLib.cli"]  # in main()


def test_no_import_cycles_between_modules():
    """The project's rule "small modules with one job each ... no import cycles between
    modules", counting every import: those inside functions hid four cycles before."""
    cycles = [c for c in strongly_connected_components(import_graph()) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)

"""`make slicer-package` (issue 10, "Installing without the Extensions Index"): the archive has
the layout and the description file that Slicer's Extensions Manager reads when a user picks
"Install from file" (Base/QTCore/qSlicerExtensionsManagerModel.cxx, Slicer 5.8), and the module
it installs runs: its engine lists the built-in models from the installed folder."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NAME = "UNetPlusPlus"


def load_packager():
    spec = importlib.util.spec_from_file_location(
        "slicer_package", REPO / "scripts" / "slicer_package.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_s4ext(text: str) -> dict[str, str]:
    """As qSlicerExtensionsManagerModel::parseExtensionDescriptionFile: skip '#' and empty
    lines; the first space-separated token is the key, the rest (joined by one space) the value."""
    metadata = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, *value = line.split()
        metadata[key] = " ".join(value)
    return metadata


def install_like_slicer(archive: Path, extensions_dir: Path, os_name: str, revision: str = ""):
    """installExtension(archiveFile) + extractExtensionArchive: the name is the base name of the
    first *.s4ext member; the archive is extracted into <extensions>/<name>/, whose one
    top-level folder (on macOS its Slicer.app/Contents/Extensions-<revision>/<name>) becomes
    <extensions>/<name>."""
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        s4ext = next(n for n in names if n.endswith(".s4ext"))
        name = Path(s4ext).name.split(".")[0]  # QFileInfo::completeBaseName of "<name>.s4ext"
        tops = {n.split("/")[0] for n in names}
        assert len(tops) == 1, f"Slicer expects one top-level folder, got {sorted(tops)}"
        target = extensions_dir / name
        target.mkdir(parents=True)
        tar.extractall(target, filter="data")
    source = target / tops.pop()
    if os_name == "macosx":
        source = source / "Slicer.app" / "Contents" / f"Extensions-{revision}" / name
    installed = extensions_dir / f"{name}-installed"
    source.rename(installed)
    return name, installed


@pytest.fixture(scope="module")
def packager():
    return load_packager()


@pytest.mark.parametrize("version", ["5.8", "5.12"])
def test_archive_installs_like_slicer_and_its_engine_runs(packager, tmp_path, version):
    archive = packager.build(tmp_path / "dist", version)
    assert archive.name.startswith(f"Slicer{version}-linux-amd64-UNetPlusPlus-git")
    assert archive.name.endswith(".tar.gz")
    name, installed = install_like_slicer(archive, tmp_path / "Extensions", "linux")
    assert name == NAME

    # the description Slicer reads after extraction: <name>/share/Slicer-X.Y/<name>.s4ext
    description = installed / "share" / f"Slicer-{version}" / f"{NAME}.s4ext"
    metadata = parse_s4ext(description.read_text(encoding="utf-8"))
    cmake = packager.cmake_variables(REPO / "CMakeLists.txt")
    assert metadata["depends"] == cmake["EXTENSION_DEPENDS"] == "PyTorch"
    assert metadata["category"] == cmake["EXTENSION_CATEGORY"]
    assert metadata["homepage"] == cmake["EXTENSION_HOMEPAGE"]
    assert metadata["description"] == " ".join(cmake["EXTENSION_DESCRIPTION"].split())
    assert metadata["scm"] == "git" and len(metadata["scmrevision"]) in (2, 40)
    assert metadata["enabled"] == "1"
    # the keys of Slicer's template (Utilities/Templates/Extensions/extension_description.s4ext.in)
    template_keys = {
        "scm", "scmurl", "scmrevision", "depends", "build_subdirectory", "homepage",
        "contributors", "category", "iconurl", "status", "description", "screenshoturls",
        "enabled",
    }  # fmt: skip
    text = description.read_text(encoding="utf-8")
    assert {line.split()[0] for line in text.splitlines() if line and line[0] != "#"} == (
        template_keys
    )

    # the module path Slicer adds: <name>/lib/Slicer-X.Y/qt-scripted-modules
    modules = installed / "lib" / f"Slicer-{version}" / "qt-scripted-modules"
    for relative in [
        f"{NAME}.py",
        f"{NAME}Lib/widget/panel_widget.py",
        f"{NAME}Lib/engine/predictor.py",
        f"Resources/UI/{NAME}.ui",
        f"Resources/Icons/{NAME}.png",
        f"Resources/Terminology/{NAME}.term.json",
        f"{NAME}Lib/Resources/Models/liver/model.json",
        f"{NAME}Lib/Resources/Models/liver/weights.safetensors",
    ]:
        assert (modules / relative).is_file(), relative
    shipped = {p.relative_to(modules).as_posix() for p in modules.rglob("*.py")}
    source = {
        p.relative_to(REPO / NAME).as_posix() for p in (REPO / NAME / f"{NAME}Lib").rglob("*.py")
    }
    assert source <= shipped and not any("__pycache__" in p for p in shipped)

    # the installed engine finds its built-in models in <module>/UNetPlusPlusLib/Resources/Models
    env = {**os.environ, "PYTHONPATH": str(modules), "UNETPP_MODELS": ""}
    env["UNETPP_HOME"] = str(tmp_path / "home")  # an empty user cache
    out = subprocess.run(
        [sys.executable, "-m", f"{NAME}Lib.cli", "models"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    for task in ("liver", "brain-tumor", "lung-nodule"):
        assert f"{modules / (NAME + 'Lib') / 'Resources' / 'Models' / task}" in out.stdout, (
            out.stdout
        )


def test_macos_layout_needs_the_slicer_revision(packager, tmp_path):
    with pytest.raises(packager.PackageError, match="slicer-revision"):
        packager.build(tmp_path, "5.8", os_name="macosx")
    archive = packager.build(
        tmp_path, "5.8", os_name="macosx", arch="arm64", slicer_revision="33241"
    )
    assert archive.name.startswith("33241-macosx-arm64-UNetPlusPlus-")
    name, installed = install_like_slicer(archive, tmp_path / "Extensions", "macosx", "33241")
    assert (installed / "share" / "Slicer-5.8" / f"{NAME}.s4ext").is_file()
    assert (installed / "lib" / "Slicer-5.8" / "qt-scripted-modules" / f"{NAME}.py").is_file()


def test_bad_options_are_refused(packager, tmp_path):
    with pytest.raises(packager.PackageError, match="MAJOR.MINOR"):
        packager.build(tmp_path, "5")
    assert packager.main(["--slicer-version", "5.8", "--os", "linux", "--out", str(tmp_path)]) == 0

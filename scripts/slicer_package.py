"""Build the extension archive that Slicer's Extensions Manager takes through "Install from file".

The extension is scripted only (Python, a .ui, icons, JSON and the model weights), so the archive
that Slicer's CMake/CPack build would produce can be assembled without compiling Slicer. The
layout follows Slicer's source (5.8; unchanged in 5.10 and 5.12):

- ``qSlicerExtensionsManagerModel::installExtension(archiveFile)`` lists the archive and takes the
  extension name from the first ``*.s4ext`` member (its base name);
- ``extractExtensionArchive`` extracts into ``<extensions>/<name>/``, expects one top-level folder
  and renames it to ``<name>``; on macOS it copies
  ``<top>/Slicer.app/Contents/Extensions-<slicer revision>/<name>`` instead;
- the description is then read from ``<name>/share/Slicer-X.Y/<name>.s4ext``
  (``Slicer_SHARE_DIR``), as "key value" lines (``parseExtensionDescriptionFile``), in the format
  of ``Utilities/Templates/Extensions/extension_description.s4ext.in``;
- the module is found in ``<name>/lib/Slicer-X.Y/qt-scripted-modules``
  (``Slicer_QTSCRIPTEDMODULES_LIB_DIR``, ``extensionModulePaths``), where
  ``slicerMacroBuildScriptedModule`` installs the scripts and resources listed in
  ``UNetPlusPlus/CMakeLists.txt`` (the built-in models are package data,
  ``UNetPlusPlusLib/Resources/Models``);
- the file name follows CPack (``SlicerExtensionCPack.cmake``):
  ``<slicer revision>-<os>-<arch>-<name>-<scm><revision>-<date>.tar.gz`` (``Slicer5.8`` in place
  of the revision when it is not given; Slicer does not read the file name).

Slicer X.Y is part of every path, so an archive fits one Slicer minor version. Usage::

    python scripts/slicer_package.py --slicer-version 5.8 [--os linux|win|macosx] [--out dist]

Prints the archive path(s). Standard library only.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NAME = "UNetPlusPlus"
MODULE_DIR = REPO / NAME
OS_NAMES = ("linux", "win", "macosx")  # Slicer_OS_*_NAME (CMake/SlicerBlockOperatingSystemNames)
# s4ext keys in the order of Slicer's template, and the CMake variable each comes from
S4EXT_FROM_CMAKE = {
    "homepage": "EXTENSION_HOMEPAGE",
    "contributors": "EXTENSION_CONTRIBUTORS",
    "category": "EXTENSION_CATEGORY",
    "iconurl": "EXTENSION_ICONURL",
    "status": "EXTENSION_STATUS",
    "description": "EXTENSION_DESCRIPTION",
    "screenshoturls": "EXTENSION_SCREENSHOTURLS",
}


class PackageError(Exception):
    """The archive cannot be built (a missing file, a bad option)."""


def cmake_variables(path: Path) -> dict[str, str]:
    """``set(NAME "value")`` of a CMakeLists.txt (comments dropped; one value per variable)."""
    text = re.sub(r"#[^\n]*", "", path.read_text(encoding="utf-8"))
    return {m.group(1): m.group(2) for m in re.finditer(r'set\((\w+)\s+"([^"]*)"\s*\)', text)}


def cmake_globs(cmake: str) -> dict[str, list[str]]:
    """``file(GLOB_RECURSE NAME RELATIVE ${CMAKE_CURRENT_SOURCE_DIR} <patterns>)`` of the module's
    CMakeLists.txt, evaluated: variable name -> matching files relative to the module folder."""
    found = {}
    for match in re.finditer(r"file\(GLOB_RECURSE\s+(\w+)\s+RELATIVE\s+\S+(.*?)\)", cmake, re.S):
        files = set()
        for pattern in match.group(2).split():
            pattern = pattern.replace("${CMAKE_CURRENT_SOURCE_DIR}/", "")
            pattern = pattern.replace("${MODULE_NAME}", NAME)
            folder, _, leaf = pattern.rpartition("/")
            # GLOB_RECURSE: the last component matches files in every folder below ``folder``
            files |= {
                p.relative_to(MODULE_DIR).as_posix()
                for p in (MODULE_DIR / folder).rglob(leaf)
                if p.is_file() and "__pycache__" not in p.parts
            }
        found[match.group(1)] = sorted(files)
    return found


def module_files() -> dict[str, Path]:
    """Path inside ``qt-scripted-modules`` -> source file, as ``UNetPlusPlus/CMakeLists.txt``
    installs them (``slicerMacroBuildScriptedModule`` keeps each path relative to the module
    folder): ``MODULE_PYTHON_SCRIPTS`` and ``MODULE_PYTHON_RESOURCES``, globs evaluated."""
    cmake = re.sub(r"#[^\n]*", "", (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8"))
    globs = cmake_globs(cmake)
    files: dict[str, Path] = {}
    for variable in ("MODULE_PYTHON_SCRIPTS", "MODULE_PYTHON_RESOURCES"):
        block = re.search(rf"set\({variable}(.*?)\)", cmake, re.S)
        if block is None:
            raise PackageError(f"UNetPlusPlus/CMakeLists.txt has no {variable}")
        for item in block.group(1).split():
            glob = re.fullmatch(r"\$\{(\w+)\}", item)
            if glob and glob.group(1) in globs:
                items = globs[glob.group(1)]
            elif glob:
                raise PackageError(f"UNetPlusPlus/CMakeLists.txt: unknown {item} in {variable}")
            else:
                items = [item.replace("${MODULE_NAME}", NAME)]
            files.update({relative: MODULE_DIR / relative for relative in items})
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise PackageError(f"files to package are missing: {', '.join(missing)}")
    return files


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def description(revision: str) -> str:
    """The ``<name>.s4ext`` text: Slicer's template keys, values from the extension's CMake
    variables and catalog entry (``UNetPlusPlus.json``)."""
    variables = cmake_variables(REPO / "CMakeLists.txt")
    catalog = json.loads((REPO / f"{NAME}.json").read_text(encoding="utf-8"))
    values = {
        "scm": catalog.get("scm_type", "git"),
        "scmurl": catalog.get("scm_url", "NA"),
        "scmrevision": revision,
        "depends": variables.get("EXTENSION_DEPENDS") or "NA",
        "build_subdirectory": catalog.get("build_subdirectory", "."),
    }
    for key, variable in S4EXT_FROM_CMAKE.items():
        values[key] = " ".join(variables.get(variable, "").split())  # one line, as Slicer's
    values["enabled"] = variables.get("EXTENSION_ENABLED", "1")
    lines = ["# Written by scripts/slicer_package.py (the keys of Slicer's .s4ext template)"]
    lines += [f"{key} {value}".rstrip() for key, value in values.items()]
    return "\n".join(lines) + "\n"


def build(
    out_dir: Path,
    slicer_version: str,
    os_name: str = "linux",
    arch: str = "amd64",
    slicer_revision: str = "",
) -> Path:
    """Write the archive for Slicer ``slicer_version`` ("5.8") into ``out_dir``; return its path.

    ``slicer_revision`` (Help > About in Slicer) is part of the file name, and of the layout on
    macOS, where it is required. Raises ``PackageError``.
    """
    if not re.fullmatch(r"\d+\.\d+", slicer_version):
        raise PackageError(f"--slicer-version must be MAJOR.MINOR, like 5.8: {slicer_version!r}")
    if os_name not in OS_NAMES:
        raise PackageError(f"--os must be one of {', '.join(OS_NAMES)}: {os_name!r}")
    if os_name == "macosx" and not slicer_revision.isdigit():
        raise PackageError("--slicer-revision (Help > About in Slicer) is required for macOS")
    commit = _git("rev-parse", "HEAD") or "NA"
    date = _git("log", "-1", "--format=%cs") or time.strftime("%Y-%m-%d")
    scm_revision = "git" + (commit[:7] if commit != "NA" else "NA")
    # CPack's first field is Slicer's revision; without one, the version keeps names distinct
    first = slicer_revision or f"Slicer{slicer_version}"
    base = f"{first}-{os_name}-{arch}-{NAME}-{scm_revision}-{date}"
    root = base
    if os_name == "macosx":  # Slicer_BUNDLE_LOCATION / Extensions-<revision> / <name>
        root = f"{base}/Slicer.app/Contents/Extensions-{slicer_revision}/{NAME}"
    slicer_dir = f"Slicer-{slicer_version}"
    members: list[tuple[str, bytes | Path]] = [
        (f"{root}/share/{slicer_dir}/{NAME}.s4ext", description(commit).encode("utf-8"))
    ]
    for relative, source in module_files().items():
        members.append((f"{root}/lib/{slicer_dir}/qt-scripted-modules/{relative}", source))
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"{base}.tar.gz"
    mtime = int(time.mktime(time.strptime(date, "%Y-%m-%d")))
    with tarfile.open(archive, "w:gz") as tar:
        for name, content in members:
            data = content if isinstance(content, bytes) else content.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), mtime, 0o644
            tar.addfile(info, io.BytesIO(data))
    return archive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--slicer-version", action="append", required=True,
        help="Slicer MAJOR.MINOR, e.g. 5.8 (repeat for one archive per version)",
    )  # fmt: skip
    parser.add_argument("--os", default="linux", choices=OS_NAMES)
    parser.add_argument("--arch", default="amd64", help="amd64 (arm64 for Apple silicon)")
    parser.add_argument("--slicer-revision", default="", help="required for --os macosx")
    parser.add_argument("--out", type=Path, default=REPO / "dist")
    args = parser.parse_args(argv)
    try:
        for version in args.slicer_version:
            print(build(args.out, version, args.os, args.arch, args.slicer_revision))
    except PackageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Docs and comments match the code and Slicer's source (issue 10, defect 10): segment names in
the README tutorial, cited documents that exist, and the Slicer versions quoted for APIs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from UNetPlusPlusLib.engine.manifest import ModelManifest

REPO = Path(__file__).resolve().parents[1]

# API -> the first Slicer release that has it, read in Slicer's source (git tags v5.8.0, v5.10.0,
# v5.12.0): Base/Python/slicer/packaging.py first ships in v5.12.0; vtkSegment::SetTerminology
# (Libs/vtkSegmentationCore/vtkSegment.h) in v5.10.0.
FIRST_SLICER_VERSION = {"slicer.packaging": "5.12", "SetTerminology": "5.10"}


def tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "*.py", "*.md", "*.txt", "*.ui", "Makefile", "*.json"],
            cwd=REPO, capture_output=True, text=True, check=True,
        ).stdout.split()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    skip = {"Testing/fixtures/slicer_terminology_codes.json", "Testing/test_docs.py"}
    return [REPO / name for name in out if name not in skip and (REPO / name).is_file()]


def test_the_tutorial_names_nodule_segments_as_the_code_writes_them():
    """The Logic names the n-th nodule "<label name> n" (adapter/logic.py, write_result), as the
    Slicer tutorial (docs/SLICER.md) says."""
    manifest = ModelManifest.load(
        REPO
        / "UNetPlusPlus"
        / "UNetPlusPlusLib"
        / "Resources"
        / "Models"
        / "lung-nodule"
        / "model.json"
    )
    name = manifest.labels[0].name
    tutorial = (REPO / "docs" / "SLICER.md").read_text(encoding="utf-8")  # moved from README
    section = tutorial[tutorial.index("### Lung nodule") :]
    section = section[: section.index("\n### ")]
    assert f"**{name} 1**, **{name} 2**" in section
    numbered = set(re.findall(r"\*\*([a-z ]+?) \d\*\*", section))
    assert numbered == {name}, numbered
    ui = (REPO / "UNetPlusPlus" / "Resources" / "UI" / "UNetPlusPlus.ui").read_text()
    assert f"({name} 1, {name} 2, ...)" in ui


def test_every_cited_document_exists():
    cited = re.compile(
        r"(?<![\w/])((?:docs|(?:UNetPlusPlus/UNetPlusPlusLib/)?Resources/Models/[\w-]+)/[\w./-]+\.md)\b"
    )
    missing = []
    for path in tracked_text_files():
        for target in cited.findall(path.read_text(encoding="utf-8", errors="replace")):
            if not (REPO / target).is_file():
                missing.append(f"{path.relative_to(REPO)} cites {target}")
    assert not missing, missing


def test_slicer_versions_quoted_for_apis_match_slicers_source():
    wrong = []
    for path in tracked_text_files():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines):
            for api, version in FIRST_SLICER_VERSION.items():
                if api not in line:
                    continue
                context = " ".join(lines[i : i + 2])  # a claim may wrap onto the next line
                for quoted in re.findall(r"Slicer (\d+\.\d+)", context):
                    if quoted != version:
                        wrong.append(f"{path.relative_to(REPO)}:{i + 1}: {api} in {quoted}")
    assert not wrong, wrong


def _github_anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation but '-' and '_' dropped,
    each space a '-' (so "Your edits ... (`--overwrite`)" ends in "---overwrite")."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_markdown_link_and_anchor_in_readme_and_docs_resolves():
    """A link's file exists and its #anchor is one of that file's headings (tester 13: the
    README's link to CLI.md's "--overwrite" section and four MR links of INPUT_CHECKS.md,
    whose sections moved to INPUT_CHECKS_MR.md, led nowhere)."""
    pages = [REPO / "README.md"] + sorted((REPO / "docs").glob("*.md"))
    broken = []
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if link.startswith(("http://", "https://", "mailto:")):
                continue
            name, _, anchor = link.partition("#")
            target = (page.parent / name).resolve() if name else page
            if not target.exists():
                broken.append(f"{page.name}: {link} (no such file)")
                continue
            if anchor and target.suffix == ".md":
                lines = target.read_text(encoding="utf-8").splitlines()
                anchors = {_github_anchor(x.lstrip("#")) for x in lines if x.startswith("#")}
                if anchor not in anchors:
                    broken.append(f"{page.name}: {link} (no such heading)")
    assert not broken, broken


def test_readme_says_which_outputs_are_cropped():
    """The README said the output "always sits exactly on the input grid (size ...)", while a
    single click's labelmap is cropped (docs/CLI.md; Testing/test_point_crop.py checks that it
    lies on the input's voxels): the sentence names the crop and keeps the grid claim."""
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    claim = readme[readme.index("The output always lies exactly on the input's voxel grid") :]
    claim = claim[: claim.index("## ")]
    assert "(size," not in claim and "always sits" not in readme
    assert "single `--point`" in claim and "cropped" in claim and "origin" in claim

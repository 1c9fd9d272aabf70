"""Terminology (issue 10, defect 8): every code of every shipped model resolves in the context its
segments name, so Slicer's terminology selector shows a match.

The contexts are those Slicer loads: its default DICOM master lists (their codes, extracted from
Slicer's source by fixtures/make_slicer_terminology_codes.py; the two files are the same git
blobs in Slicer v5.8.0, v5.10.0 and v5.12.0) and the extension's own ``.term.json`` files, which
the module loads through the Terminologies logic at start-up.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from UNetPlusPlusLib.engine.manifest import (
    ANATOMIC_CONTEXT,
    SEGMENTATION_CONTEXT,
    STANDARD_TERMINOLOGY,
    LabelSpec,
    ModelManifest,
    terminology_entry_string,
)

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "UNetPlusPlus"
TERMINOLOGY_DIR = MODULE_DIR / "Resources" / "Terminology"
MODELS = MODULE_DIR / "UNetPlusPlusLib" / "Resources" / "Models"
SHIPPED_MANIFESTS = sorted(MODELS.glob("*/model.json"))
SLICER_CODES = json.loads(
    (REPO / "Testing" / "fixtures" / "slicer_terminology_codes.json").read_text(encoding="utf-8")
)
# vtkSlicerTerminologiesModuleLogic.cxx (Slicer 5.8): the schemas LoadTerminologyFromFile accepts
TERMINOLOGY_SCHEMAS = {
    "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/segment-context-schema.json#",
    "https://raw.githubusercontent.com/qiicr/dcmqi/master/doc/schemas/segment-context-schema.json#",
}


def code_key(entry: dict) -> str:
    return f"{entry['CodingSchemeDesignator']}^{entry['CodeValue']}"


def shipped_contexts() -> dict[str, dict[str, list[str]]]:
    """Context name -> {category: [types]} of the extension's .term.json files."""
    contexts = {}
    for path in sorted(TERMINOLOGY_DIR.glob("*.term.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        contexts[data["SegmentationCategoryTypeContextName"]] = {
            code_key(c): [code_key(t) for t in c["Type"]]
            for c in data["SegmentationCodes"]["Category"]
        }
    return contexts


def loaded_terminologies() -> dict[str, dict[str, list[str]]]:
    return {**SLICER_CODES["terminologies"], **shipped_contexts()}


def unresolved(entry: str) -> list[str]:
    """What of a TerminologyEntry string is missing from the context it names."""
    context, category, type_, _modifier, anatomic_context, region, _ = entry.split("~")
    code = lambda triplet: "^".join(triplet.split("^")[:2])  # noqa: E731
    terminologies = loaded_terminologies()
    problems = []
    if context not in terminologies:
        return [f"context {context!r} is not loaded"]
    types = terminologies[context].get(code(category))
    if types is None:
        problems.append(f"category {category} not in {context!r}")
    elif code(type_) not in types:
        problems.append(f"type {type_} not in {context!r} / {category}")
    if region != "^^":
        regions = SLICER_CODES["anatomic_contexts"].get(anatomic_context)
        if regions is None:
            problems.append(f"anatomic context {anatomic_context!r} is not loaded")
        elif code(region) not in regions:
            problems.append(f"region {region} not in {anatomic_context!r}")
    return problems


@pytest.mark.parametrize("path", SHIPPED_MANIFESTS, ids=lambda p: p.parent.name)
def test_every_code_of_every_shipped_model_resolves_in_its_context(path):
    manifest = ModelManifest.load(path)
    for label in manifest.labels:
        entry = terminology_entry_string(label)
        assert not unresolved(entry), (label.name, unresolved(entry))


def test_every_standard_code_resolves_in_its_context():
    """Labels without codes get these by name (training exports, other models)."""
    for name in STANDARD_TERMINOLOGY:
        entry = terminology_entry_string(LabelSpec(1, name, (1.0, 0.0, 0.0), None))
        assert not unresolved(entry), (name, unresolved(entry))


def test_the_enhancing_tumour_code_is_not_in_slicers_master_list():
    """Why the extension ships a context: Slicer's default list lacks NCIt C113842."""
    master = SLICER_CODES["terminologies"][SEGMENTATION_CONTEXT]
    assert all("NCIt^C113842" not in types for types in master.values())
    assert ANATOMIC_CONTEXT in SLICER_CODES["anatomic_contexts"]


def test_the_shipped_context_is_one_slicer_loads():
    files = sorted(TERMINOLOGY_DIR.glob("*.term.json"))
    assert files
    for path in files:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["@schema"] in TERMINOLOGY_SCHEMAS
        assert data["SegmentationCategoryTypeContextName"] not in SLICER_CODES["terminologies"]
        for category in data["SegmentationCodes"]["Category"]:
            for entry in [category, *category["Type"]]:
                assert entry["CodingSchemeDesignator"] and entry["CodeValue"]
                assert entry["CodeMeaning"]
    # it ships with the module (CMake resources) and is loaded when Slicer has started
    cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    for path in files:
        relative = path.relative_to(MODULE_DIR).as_posix().replace("UNetPlusPlus", "${MODULE_NAME}")
        assert relative in cmake
    module = (MODULE_DIR / "UNetPlusPlus.py").read_text(encoding="utf-8")
    assert re.search(r'connect\("startupCompleted\(\)", loadTerminology\)', module)
    loader = ast.unparse(
        ast.parse((MODULE_DIR / "UNetPlusPlusLib" / "widget" / "terminology.py").read_text())
    )
    assert "logic.LoadTerminologyFromFile(path)" in loader and "*.term.json" in loader


def test_a_context_survives_the_seg_nrrd_round_trip():
    """segfile reads back the context a label names (training exports keep it)."""
    slicerio = pytest.importorskip("slicerio.segmentation")
    from UNetPlusPlusLib.segfile import terminology_from_slicerio

    manifest = ModelManifest.load(MODELS / "brain-tumor" / "model.json")
    for label in manifest.labels:
        parsed = slicerio.terminology_entry_from_string(terminology_entry_string(label))
        assert terminology_from_slicerio(parsed) == label.terminology, label.name

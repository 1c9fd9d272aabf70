"""Standard terminology for segments: Slicer's terminology contexts, the project's codes and
Slicer's ``TerminologyEntry`` tag string.

Plain Python (no Slicer, no torch). The codes follow DICOM (SNOMED CT, NCI Thesaurus); each
context name is one Slicer loads: its DICOM master lists, or the extension's own context file
``UNetPlusPlus/Resources/Terminology/UNetPlusPlus.term.json`` for codes those lists lack.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Optional

# Slicer terminology contexts (Slicer docs, Segmentations, "TerminologyEntry tag"): the default
# ones ship with Slicer (Modules/Loadable/Terminologies/Resources/*-DICOM-Master.json).
SEGMENTATION_CONTEXT = "Segmentation category and type - DICOM master list"
ANATOMIC_CONTEXT = "Anatomic codes - DICOM master list"
# Codes missing from Slicer's DICOM master list (the NCIt brain lesion types of DICOM CID 7168)
# live in the extension's own context, UNetPlusPlus/Resources/Terminology/UNetPlusPlus.term.json,
# which the module loads into Slicer's Terminologies logic at start-up.
UNETPP_CONTEXT = "UNet++ - brain lesion segmentation types"

TERMINOLOGY_CODES = tuple(
    "category type type_modifier anatomic_region anatomic_region_modifier".split()
)
# Optional context names: where category/type/type_modifier ("context") and the anatomic codes
# ("anatomic_context") are defined; default SEGMENTATION_CONTEXT and ANATOMIC_CONTEXT.
TERMINOLOGY_CONTEXTS = ("context", "anatomic_context")
# Characters that would break Slicer's "a^b^c~..." terminology string or its "|"-separated tags.
RESERVED_CODE_CHARS = set("~^|")


def _code(scheme: str, code: str, meaning: str) -> dict:
    return {"scheme": scheme, "code": code, "meaning": meaning}


ANATOMICAL_STRUCTURE = _code("SCT", "123037004", "Anatomical Structure")
MORPHOLOGICALLY_ALTERED = _code("SCT", "49755003", "Morphologically Altered Structure")
TISSUE = _code("SCT", "85756007", "Tissue")
_BRAIN = _code("SCT", "12738006", "Brain")


def _lesion(type_code: dict, region: dict, context: Optional[str] = None) -> dict:
    entry = {"category": MORPHOLOGICALLY_ALTERED, "type": type_code, "anatomic_region": region}
    if context:
        entry["context"] = context
    return entry


# Standard codes for the project's labels. SNOMED CT (SCT) where DICOM uses it; the brain tumour
# sub-regions follow DICOM CID 7168 "Brain Lesion Segmentation Type With Necrosis", which codes
# enhancing and non-enhancing lesion with NCI Thesaurus (NCIt) concepts. The whole tumour is
# SCT "Neoplasm" (CID 7159). Categories and context names match Slicer's DICOM master list,
# except the two NCIt types, which that list lacks: they name the extension's own context.
STANDARD_TERMINOLOGY: dict[str, dict] = {
    "liver": {"category": ANATOMICAL_STRUCTURE, "type": _code("SCT", "10200004", "Liver")},
    "lung nodule": _lesion(_code("SCT", "27925004", "Nodule"), _code("SCT", "39607008", "Lung")),
    "necrotic core": _lesion(_code("SCT", "6574001", "Necrosis"), _BRAIN),
    "non-enhancing tumor": _lesion(
        _code("NCIt", "C81175", "Non-Enhancing Lesion"), _BRAIN, UNETPP_CONTEXT
    ),
    "edema": _lesion(_code("SCT", "79654002", "Edema"), _BRAIN),
    "enhancing tumor": _lesion(
        _code("NCIt", "C113842", "Enhancing Lesion"), _BRAIN, UNETPP_CONTEXT
    ),
    "whole tumor": _lesion(_code("SCT", "108369006", "Neoplasm"), _BRAIN),
}
_TERMINOLOGY_ALIASES = {
    "nodule": "lung nodule",
    "necrosis": "necrotic core",
    "necrotic tumor core": "necrotic core",
    "necrotic and non-enhancing tumor core": "necrotic core",
    "oedema": "edema",
    "peritumoral edema": "edema",
}


def standard_terminology(name: str) -> Optional[dict]:
    """The standard codes for a label name (case, '_' and British spelling tolerated), or None."""
    key = " ".join(name.lower().replace("_", " ").replace("tumour", "tumor").split())
    key = _TERMINOLOGY_ALIASES.get(key, key)
    entry = STANDARD_TERMINOLOGY.get(key)
    return copy.deepcopy(entry) if entry is not None else None


def _code_triplet(code: Optional[Mapping]) -> str:
    if not code:
        return "^^"
    return f"{code['scheme']}^{code['code']}^{code['meaning']}"


def terminology_entry_string(label: Any) -> str:
    """Slicer's ``TerminologyEntry`` tag value for a segment (``Segment{i}_Tags`` in .seg.nrrd);
    ``label`` is a manifest ``LabelSpec`` (``name`` and ``terminology``).

    Format: ``context~category~type~typeModifier~anatomicContext~region~regionModifier`` where
    each code is ``scheme^value^meaning`` and the two contexts are the label's ``context`` and
    ``anatomic_context`` or Slicer's DICOM master lists (Slicer docs, "TerminologyEntry tag";
    parsed by ``slicerio.terminology_entry_from_string``). Labels without codes get the label's
    standard codes when it has a known name, else Slicer's generic "Tissue".
    """
    terminology = label.terminology or standard_terminology(label.name)
    if terminology is None:
        terminology = {"category": TISSUE, "type": TISSUE}
    return "~".join(
        [
            terminology.get("context") or SEGMENTATION_CONTEXT,
            _code_triplet(terminology["category"]),
            _code_triplet(terminology["type"]),
            _code_triplet(terminology.get("type_modifier")),
            terminology.get("anatomic_context") or ANATOMIC_CONTEXT,
            _code_triplet(terminology.get("anatomic_region")),
            _code_triplet(terminology.get("anatomic_region_modifier")),
        ]
    )

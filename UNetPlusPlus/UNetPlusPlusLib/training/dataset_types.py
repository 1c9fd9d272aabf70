"""Dataset records and the small rules every layout shares.

A dataset is described by a :class:`DatasetDescription` (channels, labels, sources of cases);
each case found on disk is a :class:`CaseFiles`. The layouts that fill them are
:mod:`.dataset_json` (``dataset.json`` with file patterns, :mod:`.dataset_patterns`) and
:mod:`.dataset_slicer` (a folder of 3D Slicer exports).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from ..engine.manifest import ChannelSpec
from ..errors import UNetPlusPlusError

PathLike = Union[str, Path]
Selector = Union[int, str]

IMAGE_SUFFIXES = (".nrrd", ".nii.gz", ".nii", ".mha", ".mhd")
SEGMENTATION_SUFFIX = ".seg.nrrd"
LABELMAP_MARKERS = ("-label", "_label", ".label")
COLOR_TABLE_SUFFIXES = (".ctbl", ".txt", ".csv")
DEFAULT_CT_WINDOW = (-1000.0, 1000.0)
SLICER_EXPORT = "slicer-export"

# Distinct, readable colours for labels that bring none (Slicer's GenericAnatomyColors-like).
DEFAULT_COLORS = (
    (0.87, 0.56, 0.38),
    (0.50, 0.68, 0.50),
    (0.95, 0.84, 0.57),
    (0.69, 0.48, 0.40),
    (0.44, 0.72, 0.82),
    (0.85, 0.40, 0.60),
)


@dataclass
class LabelDescription:
    """One model class (its value is its position, 1..K); colour and codes go to the manifest."""

    name: str
    color: tuple[float, float, float]
    terminology: Optional[dict] = None


@dataclass
class SourceDescription:
    """A group of cases sharing file patterns and a label mapping.

    ``label_map`` maps each model label name to selectors in the label file: integers are label
    values, strings are segment (or colour-table) names or terminology codes ("SCT:10200004").
    """

    name: str
    images: list[str]
    label: str
    label_map: dict[str, list[Selector]]
    label_source: str = ""
    color_table: Optional[str] = None
    layout: str = "patterns"


@dataclass
class CaseFiles:
    """The files of one training case."""

    case_id: str
    patient_id: str
    images: list[Path]
    label: Path
    source: SourceDescription
    color_table: Optional[Path] = None


@dataclass
class DatasetDescription:
    """Everything needed to find, read and preprocess the cases of a dataset."""

    name: str
    task: str
    root: Path
    channels: list[ChannelSpec]
    labels: list[LabelDescription]
    sources: list[SourceDescription]
    description: str = ""
    patient_regex: Optional[str] = None
    validation_cases: list[str] = field(default_factory=list)
    allow_empty: bool = False
    spacing: Optional[tuple[float, float, float]] = None
    tile_size: Optional[tuple[int, int, int]] = None
    features: Optional[tuple[int, ...]] = None
    prompt: Optional[dict] = None
    postprocess: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    origin: str = ""
    notes: list[str] = field(default_factory=list)  # said in the training log (merged names)
    # labelmaps without --labels: the check pass adds every case's values (label_learning.py)
    learn_label_values: bool = False

    @property
    def label_names(self) -> list[str]:
        return [label.name for label in self.labels]

    def label_sources(self) -> str:
        """Provenance of the labels, one phrase per source ("expert", "model output", ...)."""
        seen: list[str] = []
        for source in self.sources:
            if source.label_source and source.label_source not in seen:
                seen.append(source.label_source)
        return "; ".join(seen)


def normalized_name(name: str) -> str:
    """A segment or label name compared without case, '_' or repeated spaces."""
    return " ".join(name.lower().replace("_", " ").split())


def default_normalization(modality: str, window: Optional[Sequence[float]] = None) -> dict:
    """The manifest normalisation for a modality: a CT window, or the MR z-score."""
    if modality.upper() == "CT":
        low, high = window or DEFAULT_CT_WINDOW
        return {"kind": "ct", "window": [float(low), float(high)]}
    return {"kind": "mr"}


def patient_id(case_id: str, regex: Optional[str]) -> str:
    """The patient a case belongs to: the regex's 'patient' group, group 1 or whole match;
    the case id where the regex does not match or that group is empty or took no part."""
    if not regex:
        return case_id
    match = re.search(regex, case_id)
    if match is None:
        return case_id
    if "patient" in match.groupdict():
        found = match.group("patient")
    else:
        found = match.group(1) if match.groups() else match.group(0)
    return found or case_id


def collect_case(problems: Optional[list[str]], make, *args) -> Optional[CaseFiles]:
    """``make(*args)``, or None with its error appended to ``problems`` (when given)."""
    try:
        return make(*args)
    except UNetPlusPlusError as error:
        if problems is None:
            raise
        problems.append(str(error))
        return None

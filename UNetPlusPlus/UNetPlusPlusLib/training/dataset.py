"""Dataset descriptions and case discovery.

A dataset is described either by a ``dataset.json`` (see docs/TRAINING_DATASETS.md: channel and
label file patterns relative to DATA_DIR, a label mapping per source, a patient-id regex for the
split), or, with no description at all, by a folder of 3D Slicer exports::

    <case>.nrrd                  one channel   (or <case>_<channel>.nrrd, one file per channel)
    <case>.seg.nrrd              segmentation with segment names and terminology
    <case>-label.nrrd + .ctbl    or a labelmap with a Slicer colour table

Patterns are paths relative to DATA_DIR in which ``{case}`` stands for the case id (its first
occurrence captures it, later ones must repeat it), ``*`` for any run of characters within one
folder and ``**/`` for any number of folders.

This module holds :func:`find_cases`, which gathers the cases of every source; the rest lives in
one module per job, and callers import each name from the module that defines it:

- :mod:`.dataset_types`: the records (``DatasetDescription``, ``CaseFiles``, ...), shared rules
- :mod:`.dataset_json`: reading and checking ``dataset.json``
- :mod:`.dataset_patterns`: case discovery from the file patterns of ``dataset.json``
- :mod:`.dataset_slicer`: describing a folder of Slicer exports and finding its cases
- :mod:`.dataset_labels`: label selection, same-name merging, segment names
- :mod:`.dataset_images`: the modality guess and the median spacing from image files
"""

from __future__ import annotations

import re
from typing import Optional

from ..errors import UNetPlusPlusError
from .dataset_patterns import find_pattern_cases
from .dataset_slicer import find_slicer_cases
from .dataset_types import SLICER_EXPORT, CaseFiles, DatasetDescription

__all__ = ["find_cases"]


def find_cases(
    dataset: DatasetDescription, problems: Optional[list[str]] = None
) -> list[CaseFiles]:
    """Every case of the dataset, sorted by case id; missing files raise naming the case.

    With a ``problems`` list, a case with missing files is left out and its problem appended
    instead (``dataset_check`` reports them all at once).
    """
    root = dataset.root
    if not root.is_dir():
        raise UNetPlusPlusError(f"Data folder {root} does not exist.")
    cases: list[CaseFiles] = []
    for source in dataset.sources:
        if source.layout == SLICER_EXPORT:
            cases.extend(find_slicer_cases(dataset, source, problems))
        else:
            cases.extend(find_pattern_cases(dataset, source, problems))
    ids = [case.case_id for case in cases]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise UNetPlusPlusError(
            f"Dataset '{dataset.name}' has two cases called '{duplicates[0]}'; case ids must be "
            "unique across sources."
        )
    if not cases and not problems:
        patterns = "; ".join(s.images[0] for s in dataset.sources)
        raise UNetPlusPlusError(
            f"No training cases found in {root} (looked for {patterns}); check DATA_DIR and the "
            "dataset description."
        )
    regex = dataset.patient_regex
    if regex and cases and not any(re.search(regex, case.case_id) for case in cases):
        raise UNetPlusPlusError(
            f"The patient regex {regex} matches none of the {len(cases)} case ids (e.g. "
            f"{cases[0].case_id}): the split by patient would not happen; give one that finds "
            "the patient in a case id (--patient-regex, dataset.json's patient_regex)."
        )
    return sorted(cases, key=lambda c: c.case_id)

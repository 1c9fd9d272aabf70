"""Label mapping helpers: choosing labels, merging same-named segments, reading segment names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..errors import UNetPlusPlusError
from .dataset_types import DatasetDescription, normalized_name


def select_labels(dataset: DatasetDescription, names: Sequence[str]) -> DatasetDescription:
    """Keep only the named labels (in the order given), renumbered 1..K."""
    by_name = {label.name.lower(): label for label in dataset.labels}
    chosen = []
    for name in names:
        label = by_name.get(name.strip().lower())
        if label is None:
            raise UNetPlusPlusError(
                f"Dataset '{dataset.name}' has no label {name!r}; its labels: "
                f"{', '.join(dataset.label_names)}."
            )
        chosen.append(label)
    sources = [
        replace(s, label_map={label.name: s.label_map[label.name] for label in chosen})
        for s in dataset.sources
    ]
    return replace(dataset, labels=chosen, sources=sources)


def merge_same_names(names: Sequence[str], case_id: str) -> tuple[list[str], list[str]]:
    """Segment names that differ only by case, '_' or spaces become one label (first spelling);
    each merge is returned as a note for the training log."""
    kept: dict[str, list[str]] = {}
    for name in names:
        kept.setdefault(normalized_name(name), []).append(name)
    notes = [
        f"segments {', '.join(repr(n) for n in group)} of case '{case_id}' differ only by case "
        f"or spacing: merged into one label {group[0]!r}"
        for group in kept.values()
        if len(group) > 1
    ]
    return [group[0] for group in kept.values()], notes


def segment_names(label_file: Path, case_id: str) -> list[str]:
    """Segment names of a .seg.nrrd (or colour-table names of a labelmap) in file order."""
    from .cases import read_label_metadata

    return [entry.name for entry in read_label_metadata(label_file, case_id, None)]

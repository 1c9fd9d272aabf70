"""Label values learnt over every training case of a folder of labelmaps (no ``--labels``).

The dataset description starts from the first case's non-zero values; the check pass
(:func:`~.dataset_check.check_dataset`) reads every case once and adds, per case, the values
no model label selects yet, so the labels are the union over the training cases. A value held
by only some cases is named in a warning. When every case holds exactly one learnt value but
the cases do not agree on it (0/1 masks beside 0/255 ones, the usual slip of one structure
saved two ways), the folder is refused (:func:`mixed_binary_problem`): learning two classes,
each from a part of the cases and as background in the others, would train a confidently wrong
model.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .dataset_types import DEFAULT_COLORS, CaseFiles, DatasetDescription, LabelDescription

#: At most this many case ids are named per list in a warning.
_NAMED_CASES = 8


def learn_values(
    case: CaseFiles,
    dataset: DatasetDescription,
    entries: Sequence,
    array: np.ndarray,
    table: np.ndarray,
    warnings: Optional[list] = None,
) -> None:
    """Add a model label for each non-zero value of ``array`` (a (z, y, x) labelmap of
    non-negative ints) that ``table`` (value -> class, 0 for none) maps to no class, and set
    ``table`` for it in place. A value is named by the case's colour table ``entries`` (selected
    by that name) or ``'label N'`` (selected by value N, said in ``warnings``)."""
    unmapped = np.flatnonzero(table[1:] == 0) + 1
    if unmapped.size == 0:
        return
    present = np.bincount(array.ravel(), minlength=table.size) > 0
    new = [int(v) for v in unmapped if present[v]]
    if not new:
        return
    names = {e.value: e.name for e in entries}
    source = case.source
    unnamed = []
    for value in new:
        name = names.get(value)
        if name is None or name in source.label_map:
            name = f"label {value}"
            unnamed.append(value)
        selectors = [value] if name.startswith("label ") else [name]
        source.label_map[name] = selectors
        color = DEFAULT_COLORS[len(dataset.labels) % len(DEFAULT_COLORS)]
        dataset.labels.append(LabelDescription(name, color))
        table[value] = len(dataset.labels)
    if unnamed and warnings is not None:
        shown = ", ".join(map(str, unnamed))
        warnings.append(
            f"Case '{case.case_id}': {case.label.name} holds the value(s) {shown}, which no "
            f"earlier case holds; learnt as {', '.join(repr(f'label {v}') for v in unnamed)} "
            "(name them with a colour table, or pick values with --labels)."
        )


def partial_label_warnings(dataset: DatasetDescription, held: dict[str, set[int]]) -> list[str]:
    """Warnings for the learnt classes (numbered 1..K) that only some of the cases hold;
    ``held``: case id -> the classes its labels hold (cases with labels only)."""
    out = []
    for value, label in enumerate(dataset.labels, start=1):
        holders = [c for c, classes in held.items() if value in classes]
        lacking = [c for c in held if c not in holders]
        if not holders or not lacking:
            continue
        what = _selected_by(dataset, label)
        out.append(
            f"label '{label.name}' ({what}) is in {len(holders)} of {len(held)} case(s) "
            f"({_named(holders)}), not in {_named(lacking)}: a value only some cases hold is "
            "often a mistake (e.g. a 0/255 mask among 0/1 ones); check those label files, or "
            "pick the values to learn with --labels."
        )
    return out


def mixed_binary_problem(dataset: DatasetDescription, held: dict[str, set[int]]) -> Optional[str]:
    """The problem of a folder whose labelmaps are all binary masks (one learnt class each,
    numbered 1..K as in ``dataset.labels``) with different foreground values; None otherwise.
    ``held``: case id -> the classes its labels hold (cases with labels only)."""
    if len(held) < 2 or any(len(classes) != 1 for classes in held.values()):
        return None
    by_class: dict[int, list[str]] = {}
    for case, classes in held.items():
        by_class.setdefault(next(iter(classes)), []).append(case)
    if len(by_class) < 2:
        return None
    parts = []
    for value in sorted(by_class):
        what = _selected_by(dataset, dataset.labels[value - 1])
        parts.append(f"{what} in {_named(by_class[value])}")
    return (
        "every labelmap is a binary mask, but their foreground values differ ("
        + "; ".join(parts)
        + "): usually one structure saved two ways, which would be learnt as separate classes, "
        "each as background in the other cases; make the label files consistent, or pick the "
        "values to learn with --labels"
    )


def _selected_by(dataset: DatasetDescription, label: LabelDescription) -> str:
    """What selects ``label`` in the labelmaps: ``value N`` or a colour-table name."""
    selectors = dataset.sources[0].label_map.get(label.name, [label.name])
    return ", ".join(f"value {s}" if isinstance(s, int) else repr(s) for s in selectors)


def _named(cases: list[str]) -> str:
    shown = ", ".join(cases[:_NAMED_CASES])
    return shown + (f" and {len(cases) - _NAMED_CASES} more" if len(cases) > _NAMED_CASES else "")

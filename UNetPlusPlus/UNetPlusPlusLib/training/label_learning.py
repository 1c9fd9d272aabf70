"""Label values learnt over every training case of a folder of labelmaps (no ``--labels``).

The dataset description starts from the first case's non-zero values; the check pass
(:func:`~.dataset_check.check_dataset`) reads every case once and adds, per case, the values
no model label selects yet, so the labels are the union over the training cases. A value held
by only some cases is named in a warning (a 0/255 mask among 0/1 ones is a common slip).
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
        selectors = dataset.sources[0].label_map.get(label.name, [label.name])
        what = ", ".join(f"value {s}" if isinstance(s, int) else repr(s) for s in selectors)
        out.append(
            f"label '{label.name}' ({what}) is in {len(holders)} of {len(held)} case(s) "
            f"({_named(holders)}), not in {_named(lacking)}: a value only some cases hold is "
            "often a mistake (e.g. a 0/255 mask among 0/1 ones); check those label files, or "
            "pick the values to learn with --labels."
        )
    return out


def _named(cases: list[str]) -> str:
    shown = ", ".join(cases[:_NAMED_CASES])
    return shown + (f" and {len(cases) - _NAMED_CASES} more" if len(cases) > _NAMED_CASES else "")

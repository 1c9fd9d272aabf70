"""Label values learnt over every training case of a folder of labelmaps (no ``--labels``).

The check pass (:func:`~.dataset_check.check_dataset`) reads every case once and adds, per
case in case order, the values no model label selects yet (the first case's in value order),
so the labels are the union over the training cases; the dataset description reads no
labelmap for it (before, it read the first one a second time). A value is named by its case's
colour table, else ``'label N'`` with a warning. A value held by only some cases is named in a
warning. When every case holds exactly one learnt value but the cases do not agree on it (0/1
masks beside 0/255 ones, the usual slip of one structure saved two ways), the folder is refused
(:func:`mixed_binary_problem`): learning two classes, each from a part of the cases and as
background in the others, would train a confidently wrong model. More than :data:`MAX_CLASSES`
classes are refused, naming the case and the first value that does not fit.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .dataset_types import DEFAULT_COLORS, CaseFiles, DatasetDescription, LabelDescription

#: At most this many case ids are named per list in a warning.
_NAMED_CASES = 8
#: At most this many values are listed in a warning.
_NAMED_VALUES = 12
#: Model classes are stored as 8-bit values (0 = background): at most 255 labels.
MAX_CLASSES = 255


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
    by that name; its colour and terminology kept) or ``'label N'`` (selected by value N, said
    in ``warnings``). Raises UNetPlusPlusError, changing nothing, when the labels would exceed
    :data:`MAX_CLASSES`."""
    unmapped = np.flatnonzero(table[1:] == 0) + 1
    if unmapped.size == 0:
        return
    present = np.bincount(array.ravel(), minlength=table.size) > 0
    new = [int(v) for v in unmapped if present[v]]
    if not new:
        return
    room = MAX_CLASSES - len(dataset.labels)
    if len(new) > room:
        raise UNetPlusPlusError(
            f"Case '{case.case_id}': {case.label.name} holds the value {new[room]}, which would "
            f"be label {MAX_CLASSES + 1}: a model has at most {MAX_CLASSES} labels (stored as "
            f"8-bit classes), and the cases read so far hold {len(dataset.labels) + len(new)} "
            "distinct non-zero values; pick the values to learn with --labels."
        )
    first = not dataset.labels
    by_value = {e.value: e for e in entries}
    source = case.source
    unnamed = []
    added: dict[str, int] = {}  # a table naming several values alike: one label
    for value in new:
        entry = by_value.get(value)
        name = entry.name if entry is not None else None
        if name in added:
            table[value] = added[name]
            continue
        if name is None or name in source.label_map:
            name = f"label {value}"
            unnamed.append(value)
        source.label_map[name] = [value] if name == f"label {value}" else [name]
        label = LabelDescription(name, DEFAULT_COLORS[len(dataset.labels) % len(DEFAULT_COLORS)])
        if entry is not None and name == entry.name:
            label.color = entry.color or label.color
            label.terminology = entry.terminology
        dataset.labels.append(label)
        table[value] = added[name] = len(dataset.labels)
    if unnamed and warnings is not None:
        warnings.append(_unnamed_warning(case, unnamed, first))


def _unnamed_warning(case: CaseFiles, values: list[int], first: bool) -> str:
    """The warning for the values of ``case`` learnt as 'label N' (no colour-table name)."""
    shown = ", ".join(map(str, values[:_NAMED_VALUES]))
    shown += f" and {len(values) - _NAMED_VALUES} more" if len(values) > _NAMED_VALUES else ""
    learnt = ", ".join(repr(f"label {v}") for v in values[:_NAMED_VALUES])
    learnt += ", ..." if len(values) > _NAMED_VALUES else ""
    where = "it has no colour table for them"
    if case.color_table is not None:
        where = f"its colour table {case.color_table.name} does not name them"
    label = case.label.name
    base = label[: -len(".nrrd")] if label.lower().endswith(".nrrd") else label.split(".")[0]
    return (
        f"Case '{case.case_id}': {label} holds the value(s) {shown}"
        f"{'' if first else ', which no earlier case holds'}; {where}: learnt as {learnt}. Name "
        f"them with a colour table beside it ({base}.ctbl: 'value name r g b a' per line), or "
        f"pick values with --labels (e.g. --labels {values[0]})."
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
            f"({_named(holders)}), not in {_named(lacking)}: a structure those cases lack (a "
            "tumour some livers do not have) trains right, but a mistake (a value saved for "
            "another, or 255 marking voxels to ignore) trains a wrong class; check those label "
            "files, or pick the values to learn with --labels."
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

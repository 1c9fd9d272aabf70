"""What a label selector picks in one case's label file (``--labels`` or ``label_map``).

The rule (docs/TRAINING_DATASETS.md):

- a **number** (``--labels 1``, ``--labels "label 1"``, or an integer in ``label_map``) is a
  label value: in a labelmap, the voxels of that value; in a ``.seg.nrrd``, the segment whose
  label value it is (in its layer), or, when no segment has it, the voxels of that value that
  no segment names (layer 0);
- a **name** is a segment name (or a colour-table name for a labelmap), case and '_' ignored,
  or a terminology code (``SCT:10200004``); the segment names learnt without ``--labels`` are
  names even when they are numbers (:class:`SegmentName`).

A number typed as text (``--labels 1``) that a segment or colour-table entry also bears as its
*name*, for another value, is ambiguous and refused; so is a value held by several segments
(of different layers), and, for a typed number, a value that nothing in a ``.seg.nrrd`` holds.
Before, ``--labels 1`` on ``.seg.nrrd`` files picked a segment *named* "1" (whatever its
value) and otherwise failed with "segment '1' not found".
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .dataset_types import Selector, normalized_name


class SegmentName(str):
    """A segment name read from a file (all segments learnt, no ``--labels``): a name even when
    it is a number, since nobody typed it as a label value."""


def selector_value(selector: Selector) -> Optional[int]:
    """The label value a selector means: an int, or text '255' / 'label 255' (not a
    :class:`SegmentName`); else None."""
    if isinstance(selector, SegmentName):
        return None
    if isinstance(selector, int):
        return selector
    text = selector.strip().lower().removeprefix("label").strip()
    return int(text) if text.isdigit() else None


def _codes(entry) -> set[str]:
    if not entry.terminology or "type" not in entry.terminology:
        return set()
    code = entry.terminology["type"]
    return {code["code"].lower(), f"{code['scheme']}:{code['code']}".lower()}


def match_entries(entries: Sequence, selectors: Sequence[Selector]) -> list:
    """Entries selected by name (case and '_' ignored) or, failing that, terminology code."""
    names = {normalized_name(s) for s in selectors if isinstance(s, str)}
    by_name = [e for e in entries if normalized_name(e.name) in names]
    if by_name:
        return by_name
    codes = {s.lower() for s in selectors if isinstance(s, str)}
    return [e for e in entries if _codes(e) & codes]


def _named(entries: Sequence, selector: str) -> list:
    return [e for e in entries if normalized_name(e.name) == normalized_name(selector)]


def _segments(entries: Sequence) -> str:
    return ", ".join(f"{e.name!r} (value {e.value}, layer {e.layer})" for e in entries) or "none"


def segment_selection(
    selectors: Sequence[Selector],
    entries: Sequence,
    layer0: np.ndarray,
    case_id: str,
    label_file: Path,
) -> tuple[list, list[int]]:
    """The segments ``selectors`` pick in a ``.seg.nrrd`` (``entries``: its LabelEntry list),
    and the values whose voxels of ``layer0`` (the first layer) no segment names but a number
    picks. Raises UNetPlusPlusError for names that match nothing (with no number beside them),
    a number that is ambiguous or, typed as text, matches nothing."""
    chosen: list = []
    loose: list[int] = []
    names = [s for s in selectors if selector_value(s) is None]
    if names:
        matched = match_entries(entries, names)
        if not matched and len(names) == len(selectors):
            raise UNetPlusPlusError(
                f"Case '{case_id}': segment {' / '.join(map(repr, names))} not found in "
                f"{label_file.name} (its segments: {', '.join(repr(e.name) for e in entries)}); "
                "rename the segment in Slicer or pick another with --labels."
            )
        chosen += matched
    for selector in selectors:
        value = selector_value(selector)
        if value is None:
            continue
        by_value = [e for e in entries if e.value == value]
        where = f"Case '{case_id}': {label_file.name}"
        if len(by_value) > 1:
            raise UNetPlusPlusError(
                f"{where} has several segments of label value {value} (in different layers: "
                f"{_segments(by_value)}), so the number {selector!r} is ambiguous; pick the "
                "segment by name with --labels."
            )
        by_name = _named(entries, selector) if isinstance(selector, str) else []
        if by_name and by_name != by_value:
            held = f"segment {by_value[0].name!r}" if by_value else "no segment"
            other = by_name[0]
            raise UNetPlusPlusError(
                f"{where}: --labels {selector!r} is ambiguous: a number selects a label value, "
                f"and label value {value} is {held}, but segment {other.name!r} (label value "
                f"{other.value}) bears that number as its name; rename segment {other.name!r} "
                f"in Slicer, or pick it by its label value (--labels {other.value})."
            )
        if by_value:
            chosen += by_value
        elif (layer0 == value).any():
            loose.append(value)
        elif isinstance(selector, str):
            raise UNetPlusPlusError(
                f"{where} has no segment of label value {value} (its segments: "
                f"{_segments(entries)}); a number selects a label value: pick another, or a "
                "segment by name, with --labels."
            )
    return chosen, loose


def labelmap_values(
    selectors: Sequence[Selector],
    entries: Sequence,
    case_id: str,
    where: str,
) -> list[int]:
    """The label values ``selectors`` pick in a labelmap whose colour table lists ``entries``
    ([] without one; ``where`` names the table or the file in messages). Raises
    UNetPlusPlusError for a name the table lacks, or a number typed as text that the table
    gives as the name of another value."""
    values: list[int] = []
    for selector in selectors:
        value = selector_value(selector)
        if value is None:
            matched = match_entries(entries, [selector])
            if not matched:
                have = ", ".join(repr(e.name) for e in entries)
                raise UNetPlusPlusError(
                    f"Case '{case_id}': segment {selector!r} not found in {where}"
                    + (
                        f" (its labels: {have}); pick one of those, or label values by number"
                        if have
                        else "; pick label values by number instead"
                    )
                    + " (--labels 1)."
                )
            values += [e.value for e in matched]
            continue
        other = [e for e in _named(entries, selector) if e.value != value] if entries else []
        if isinstance(selector, str) and other:
            raise UNetPlusPlusError(
                f"Case '{case_id}': --labels {selector!r} is ambiguous: a number selects a label "
                f"value ({value}), but {where} names the value {other[0].value} {selector!r}; "
                f"pick by value (--labels {other[0].value}) or rename the entry of the table."
            )
        values.append(value)
    return values

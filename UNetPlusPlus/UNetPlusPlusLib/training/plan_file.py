"""The form of a run's ``plan.json``, checked before ``--resume`` trusts it (tester 16: a cut
file, a list, an unknown or missing field, a spacing of "x" or a split of 5 were internal
errors, some after the dataset was read). Only what the run reads is checked: the fields, their
types, the split's case ids; the values are the run's own."""

from __future__ import annotations

from typing import Any, Optional

#: Fields without a default in ``Plan``.
REQUIRED = ("spacing", "tile_size", "features", "batch_size")
_COUNTS = ("batch_size", "iterations_per_epoch", "epochs", "val_every", "validation_cases")
_OBJECTS = ("sources", "reasons", "device", "fingerprint", "measured", "estimate", "split")
_LISTS = ("refits", "resumes")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def plan_problem(data: Any, fields: set[str]) -> Optional[str]:
    """What makes the parsed ``data`` of a plan.json unusable, or None. ``fields``: the names
    of ``Plan``'s fields."""
    if not isinstance(data, dict):
        return "not a JSON object"
    unknown = sorted(set(data) - fields - {"version"})
    if unknown:
        return f"unknown field '{unknown[0]}'"
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        return f"no '{missing[0]}'"
    for key, size in (("spacing", 3), ("tile_size", 3), ("features", None)):
        value = data[key]
        if not (isinstance(value, list) and value and all(_number(v) for v in value)):
            return f"'{key}' is not a list of numbers"
        if size is not None and len(value) != size:
            return f"'{key}' does not hold {size} numbers"
    for key in _COUNTS:
        if key in data and (type(data[key]) is not int or data[key] < 0):
            return f"'{key}' is not a count"
    for key in ("lr", "budget_s"):
        if data.get(key) is not None and not _number(data[key]):
            return f"'{key}' is not a number"
    if not isinstance(data.get("precision", ""), str):
        return "'precision' is not a string"
    for key, kind, name in [(k, dict, "object") for k in _OBJECTS] + [
        (k, list, "list") for k in _LISTS
    ]:
        if key in data and not isinstance(data[key], kind):
            return f"'{key}' is not a JSON {name}"
    if not all(isinstance(entry, dict) for entry in data.get("resumes", [])):
        return "an entry of 'resumes' is not a JSON object"
    split = data.get("split", {})
    for side in ("training", "validation", "excluded"):  # and 'parent', a fine-tune's record
        ids = split.get(side, [])
        if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
            return f"the split's '{side}' is not a list of case ids"
    if split and not ("training" in split and "validation" in split):
        return "the split lists no training or no validation cases"
    return None

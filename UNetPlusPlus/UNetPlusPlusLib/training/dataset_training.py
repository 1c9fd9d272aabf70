"""The ``training`` field of ``dataset.json`` (training defaults), checked when the file is read.

``training`` is an object of defaults for `unetpp train` options (``{"batch_size": 2,
"foreground_fraction": 0.5}``); the command line and a resumed checkpoint win over it. Each
value gets the check of its command-line option (``train_args``, ``cli_args``), so a bad one is
one error naming the description and the field before any case is read or planned. Before, a
misspelt key (``"epoch"``) was ignored without a word, a bad value (``"batch_size": "two"``)
failed after the dataset checks with a traceback, and a list of cases (the Medical Segmentation
Decathlon's ``"training": [{"image": ..., "label": ...}]``) ended the run with an AttributeError.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any, Callable

from ..errors import UNetPlusPlusError

#: dataset.json keys, each read as the default of the `unetpp train` option of the same name
#: (``batch_size`` -> ``--batch-size``), except ``augment`` (true/false; ``--no-augment``).
TRAINING_KEYS = (
    "epochs",
    "iterations_per_epoch",
    "batch_size",
    "val_every",
    "lr",
    "weight_decay",
    "schedule",
    "foreground_fraction",
    "seed",
    "val_fraction",
    "max_cases",
    "max_val_cases",
    "train_fraction",
    "depth_tolerance",
    "overlap",
    "weights_dtype",
    "norm",
    "augment",
)

#: Top-level keys of the Medical Segmentation Decathlon's and nnU-Net's ``dataset.json``, which
#: unetpp's description never has: such a file is named as what it is.
FOREIGN_KEYS = ("modality", "channel_names", "numTraining", "file_ending", "tensorImageSize")

Fail = Callable[[str, str], UNetPlusPlusError]


def foreign_format_error(data: dict, source: str) -> UNetPlusPlusError | None:
    """The error for a Decathlon / nnU-Net ``dataset.json`` (any of :data:`FOREIGN_KEYS`; its
    first unknown field was named as a spelling mistake), else None."""
    found = [key for key in FOREIGN_KEYS if key in data]
    if not found:
        return None
    return UNetPlusPlusError(
        f"Dataset description {source} is a Medical Segmentation Decathlon / nnU-Net "
        f"dataset.json ({', '.join(repr(k) for k in found)}), which unetpp does not read: its "
        "description names 'channels' and 'labels' and finds the cases by file patterns, e.g. "
        "'sources': [{'images': ['imagesTr/{case}_0000.nii.gz'], 'label': "
        "'labelsTr/{case}.nii.gz', 'label_map': {...}}] (docs/TRAINING_DATASETS.md)."
    )


def check_training_defaults(value: Any, fail: Fail) -> dict:
    """``value`` of the ``training`` field, checked: an object whose keys are
    :data:`TRAINING_KEYS`, each value valid for its option. Returns a copy with the values as
    the options give them (``2.0`` -> 2 for counts). ``fail(field, problem)`` makes the error.
    Raises :class:`UNetPlusPlusError` naming the field (and, for a list of cases, its entry)."""
    if value is None:
        return {}
    if isinstance(value, list):
        raise fail("training", _list_problem(value))
    if not isinstance(value, dict):
        raise fail("training", f"must be an object of training defaults, got {value!r}")
    checks = _option_checks()
    out = {}
    for key, item in value.items():
        where = f"training.{key}"
        if key not in TRAINING_KEYS:
            close = difflib.get_close_matches(str(key).lower(), TRAINING_KEYS, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise fail(where, f"is not a training default{hint}; known: {', '.join(TRAINING_KEYS)}")
        out[key] = _checked(item, checks[key], where, fail)
    return out


def _list_problem(value: list) -> str:
    """Why a list is no ``training`` field, naming its first entry's keys when it looks like
    the Decathlon's list of cases."""
    first = value[0] if value else None
    keys = f" (entry 0 has {', '.join(sorted(map(str, first)))})" if isinstance(first, dict) else ""
    return (
        "must be an object of training defaults (epochs, batch_size, ...), not a list of "
        f"cases{keys}: unetpp finds the cases by the file patterns of 'sources' "
        "(docs/TRAINING_DATASETS.md)"
    )


def _option_checks() -> dict[str, argparse.Action]:
    """Each training key's `unetpp train` option (type and choices), from the train parser."""
    from .train_args import add_train_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_train_arguments(parser)
    actions = {action.dest: action for action in parser._actions}
    return {key: actions.get(key) for key in TRAINING_KEYS}


def _checked(item: Any, action: argparse.Action | None, where: str, fail: Fail) -> Any:
    """``item`` as its option ``action`` reads it; ``augment`` (no option): true or false."""
    if action is None or action.type is None and not action.choices:  # augment
        if not isinstance(item, bool):
            raise fail(where, f"must be true or false, got {item!r}")
        return item
    if action.choices:
        if item not in action.choices:
            raise fail(where, f"must be one of {', '.join(map(str, action.choices))}, got {item!r}")
        return item
    if isinstance(item, bool) or not isinstance(item, (int, float)):
        raise fail(where, f"must be a number, got {item!r}")
    text = str(int(item)) if isinstance(item, float) and item.is_integer() else str(item)
    try:
        return action.type(text)
    except (argparse.ArgumentTypeError, ValueError) as error:
        raise fail(where, str(error)) from None

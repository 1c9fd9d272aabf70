"""The training / validation split, by patient."""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from ..errors import UNetPlusPlusError
from .dataset_types import CaseFiles


def split_cases(
    cases: Sequence[CaseFiles], fraction: float, seed: int, explicit: Sequence[str] = ()
) -> tuple[list[CaseFiles], list[CaseFiles]]:
    """Training and validation cases, split by patient so no patient is on both sides.

    ``explicit`` (case or patient ids, or regexes matching them) overrides ``fraction``.
    """
    if explicit:
        patients = explicit_patients(cases, explicit)
        validation = [c for c in cases if c.patient_id in patients]
    else:
        patients = sorted({c.patient_id for c in cases})
        count = 0 if len(patients) < 2 else max(1, round(fraction * len(patients)))
        held_out = seeded_patients(patients, min(count, len(patients) - 1), seed)
        validation = [c for c in cases if c.patient_id in held_out]
    training = [c for c in cases if c not in validation]
    if not training:
        raise UNetPlusPlusError(
            "Every case ended up in the validation set; leave some patients for training."
        )
    return training, validation


def explicit_patients(cases: Sequence[CaseFiles], explicit: Sequence[str]) -> set[str]:
    """The patients of ``cases`` that ``explicit`` (``--val-cases``: case or patient ids, or
    regexes matching either in full) names. Raises UNetPlusPlusError when it names none."""
    patterns = [re.compile(p) for p in explicit]
    chosen = {
        c.patient_id
        for c in cases
        if any(p.fullmatch(c.case_id) or p.fullmatch(c.patient_id) for p in patterns)
    }
    if not chosen:
        raise UNetPlusPlusError(
            f"The validation cases {', '.join(explicit)} match no case or patient id."
        )
    return chosen


def subset_patients(cases: Sequence[CaseFiles], fraction: float, seed: int) -> list[CaseFiles]:
    """A seeded share ``fraction`` (0 < f <= 1) of the patients of ``cases``, whole patients only
    (at least one), in the cases' order: for learning curves (``unetpp train --train-fraction``),
    with the validation split left unchanged. Raises UNetPlusPlusError for a fraction out of range.
    """
    if not 0.0 < fraction <= 1.0:
        raise UNetPlusPlusError(f"--train-fraction must be in (0, 1], not {fraction}.")
    patients = sorted({c.patient_id for c in cases})
    kept = seeded_patients(patients, max(1, round(fraction * len(patients))), seed + 1)
    return [c for c in cases if c.patient_id in kept]


def seeded_patients(patients: Sequence[str], count: int, seed: int) -> set[str]:
    """``count`` (>= 0) of the sorted ``patients``, drawn by a seeded permutation."""
    order = np.random.default_rng(seed).permutation(len(patients))
    return {patients[i] for i in order[:count]}

"""A CT whose values lie far below air: Hounsfield units shifted, e.g. the intercept applied twice.

Air is about -1000 HU, and scanners clip or pad below it with one value (-1024, -2048, -3024
outside the reconstruction circle). A volume whose rescale intercept (-1024) was applied twice
has its air near -2048, its lung near -1900 and its soft tissue near -1000: it passed the CT
checks (it holds "air") and gave a confident wrong result (tester 8, session 7: the example CT
shifted that way gave 0.594 ml of liver instead of 1031.6 ml, silently).

Measured on the shared data (``scripts/ct_range_margins.py ../shared/data``;
``Testing/test_ct_range.py`` checks a sample of it): the share
of the strided sample below :data:`BELOW_AIR_HU`, leaving out its single most frequent value
there (the padding), is 0 in every shared CT (7 liver CTs, the 3 LIDC DICOM slabs, every
8th of the 814 LIDC crops); shifted by -1024 HU the same files give 0.11 (a partial field of
view) to 0.48. Limit: a shifted CT whose air was clipped to one value and which holds little lung
keeps only its lung below the line and may pass.
"""

from __future__ import annotations

import numpy as np

#: Below this (HU) a CT holds only padding, one value; air is about -1000 HU.
BELOW_AIR_HU = -1200.0
#: Share of the sample below :data:`BELOW_AIR_HU` (the padding value left out) that refuses.
MAX_BELOW_AIR_SHARE = 0.02


def below_air_problem(sample: np.ndarray, name: str) -> str:
    """Why channel ``name`` (its strided sample, HU) cannot be a CT in Hounsfield units because
    too much of it lies far below air, or "" when it can."""
    below = sample[sample < BELOW_AIR_HU]
    if below.size == 0:
        return ""
    values, counts = np.unique(below, return_counts=True)
    padding = values[int(np.argmax(counts))]
    share = float(np.count_nonzero(below != padding)) / float(sample.size)
    if share <= MAX_BELOW_AIR_SHARE:
        return ""
    return (
        f"Input '{name}' is not a CT in Hounsfield units: {100 * share:.0f}% of it lies below "
        f"{BELOW_AIR_HU:g} HU, far below air (about -1000 HU), beyond one padding value. Its "
        "values look shifted, for example by a rescale intercept applied twice (air near -2048): "
        "convert it to Hounsfield units first (then HU = value + 1024)."
    )


#: Bone, metal or contrast in a CT lie above this (HU); air and lung below -:data:`DENSE_HU`.
DENSE_HU = 500.0
#: Trabecular bone and the partial-volume rim of bone lie between this and :data:`DENSE_HU`.
BAND_LOW_HU = 150.0
#: A CT with more voxels above +500 HU than at or below -500 HU passes when it holds at least
#: this many times as many between :data:`BAND_LOW_HU` and +500 HU (see :func:`inverted_problem`).
BAND_FACTOR = 1.25


def inverted_problem(sample: np.ndarray, name: str) -> str:
    """Why channel ``name`` (its strided sample, HU) cannot be a CT in Hounsfield units because
    its values look inverted (more of it above +500 HU than at or below -500 HU), or "".

    A CT saved as its negative (a NIfTI ``scl_slope`` of -1, an image saved inverted) keeps
    values below -500 (its bone, negated), so it passed the air check: the example CT gave
    'liver 5612.463 ml' (1031.6 ml as it is) with no warning (tester 10). Measured on every shared
    CT, the 814 LIDC crops and the 3 LIDC DICOM slabs
    (``scripts/ct_range_margins.py ../shared/data --every 1``): the share above +500 HU is at
    most 0.57 of the share at or below -500 HU (LIDC-IDRI-0477_R_2, a crop by the ribs; every
    liver CT at most 0.14); negated, at least 1.75 of it.

    A real CT with little air (cropped to an organ, a small field of view, the air outside the
    body padded with 0) can hold more bone than air too: s0009 cropped to its liver, or with its
    outside air 0, was refused (tester 11). Its bone comes with more voxels between
    +:data:`BAND_LOW_HU` and +500 HU (trabecular bone, the partial-volume rim) than above +500 HU;
    an inverted CT's "dense" part is negated air and lung, with few such voxels. Measured on
    crops of the shared CTs (to the liver, a half or third of the field of view, the outside
    air set to 0; tester 11, cases in ``Testing/test_ct_range.py``; the central half and third
    again with ``scripts/ct_range_margins.py ../shared/data``: 5 crops refused by the share
    rule, 1.48 to 8.98; 112 negated volumes, at most 0.78): the real
    ones refused by the share rule alone hold 1.47 to 9.7 times their dense count there;
    negated whole CTs 0.02 to 0.20, negated crops to the liver or half the field of view 0.11
    to 0.75; of the 821 negated shared CTs and LIDC crops the share rule refuses, the most is
    1.09 (LIDC-IDRI-0477_R_2): all 821 are still refused at :data:`BAND_FACTOR`. Limit: an
    inverted CT whose outside air was padded with 0 may pass (0.67 to 2.37)."""
    dense = float(np.count_nonzero(sample >= DENSE_HU))
    air = float(np.count_nonzero(sample <= -DENSE_HU))
    if dense <= air:
        return ""
    band = float(np.count_nonzero((sample >= BAND_LOW_HU) & (sample < DENSE_HU)))
    if band >= BAND_FACTOR * dense:  # bone with its trabecular part and rim: little air
        return ""
    return (
        f"Input '{name}' is not a CT in Hounsfield units: its values look inverted, with "
        f"{100 * dense / sample.size:.0f}% of it above +{DENSE_HU:g} HU (bone or metal in a "
        f"CT) and only {100 * air / sample.size:.1f}% at or below -{DENSE_HU:g} HU (air and "
        "lung): for example a negative rescale slope, or an image saved as its negative. "
        "Convert it to Hounsfield units first (air about -1000 HU)."
    )

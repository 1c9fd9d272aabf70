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


def inverted_problem(sample: np.ndarray, name: str) -> str:
    """Why channel ``name`` (its strided sample, HU) cannot be a CT in Hounsfield units because
    its values look inverted (more of it above +500 HU than at or below -500 HU), or "".

    A CT saved as its negative (a NIfTI ``scl_slope`` of -1, an image saved inverted) keeps
    values below -500 (its bone, negated), so it passed the air check: the example CT gave
    'liver 5612.463 ml' (1031.6 ml as it is) with no warning (tester 10). Measured on every shared
    CT, the 814 LIDC crops and the 3 LIDC DICOM slabs
    (``scripts/ct_range_margins.py ../shared/data --every 1``): the share above +500 HU is at
    most 0.57 of the share at or below -500 HU (LIDC-IDRI-0477_R_2, a crop by the ribs; every
    liver CT at most 0.14); negated, at least 1.75 of it."""
    dense = float(np.count_nonzero(sample >= DENSE_HU))
    air = float(np.count_nonzero(sample <= -DENSE_HU))
    if dense <= air:
        return ""
    return (
        f"Input '{name}' is not a CT in Hounsfield units: its values look inverted, with "
        f"{100 * dense / sample.size:.0f}% of it above +{DENSE_HU:g} HU (bone or metal in a "
        f"CT) and only {100 * air / sample.size:.1f}% at or below -{DENSE_HU:g} HU (air and "
        "lung): for example a negative rescale slope, or an image saved as its negative. "
        "Convert it to Hounsfield units first (air about -1000 HU)."
    )

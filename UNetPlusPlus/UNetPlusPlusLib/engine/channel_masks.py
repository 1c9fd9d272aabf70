"""Do the channels of a skull-stripped MR input cover one brain? (a warning, numpy only)

The BraTS sequences of one patient are skull-stripped with one mask, so their non-zero voxels
coincide; every BraTS case lies on the same atlas grid, so a sequence from another patient
passes the grid check and gave a confident, wrong segmentation with no warning (tester 8:
Brats18_2013_11_1 with the FLAIR of Brats18_CBICA_ABM_1, or its T2). Two channels are flagged
when their non-zero regions overlap by less than :data:`MIN_IOU` (intersection over union) and
the smaller is not inside the larger either (less than :data:`MIN_INSIDE` of it): one study's
sequences with a partial channel (Brats18_2013_20_1: overlap 0.66, 0.997 inside) pass.

Measured on the 18 shared BraTS 2018 cases, on the strided samples the checks use
(``sanity.channel_samples``): no case in its own sequences is flagged (overlap at least 0.966
or inside at least 0.992); of the 1224 inputs with one sequence from another of these patients,
1007 are (82 %).
"""

from __future__ import annotations

import itertools
from typing import Sequence

import numpy as np

#: Below this intersection over union of two channels' non-zero voxels, and below MIN_INSIDE:
#: different brains (one patient's channels: 0.966 or more unless one lies inside the other).
MIN_IOU = 0.95
#: Share of the smaller non-zero region inside the larger (one patient's channels: 0.992+).
MIN_INSIDE = 0.98
#: Fewer non-zero sample voxels in a channel than this: no check (nothing to compare).
MIN_VOXELS = 1000


def different_brains_warning(samples: Sequence[np.ndarray], names: Sequence[str]) -> list[str]:
    """One warning naming the channel pairs whose non-zero voxels are not one brain, or [].

    ``samples``: the C strided samples (same voxel positions in every channel) of a
    zero-background MR input; ``names``: the channel names. Never raises."""
    masks = [np.asarray(sample) != 0 for sample in samples]
    if len(masks) < 2 or min(int(m.sum()) for m in masks) < MIN_VOXELS:
        return []
    pairs = []
    for (a, mask_a), (b, mask_b) in itertools.combinations(zip(names, masks), 2):
        both = int(np.count_nonzero(mask_a & mask_b))
        iou = both / max(1, int(np.count_nonzero(mask_a | mask_b)))
        inside = both / max(1, min(int(mask_a.sum()), int(mask_b.sum())))
        if iou < MIN_IOU and inside < MIN_INSIDE:
            pairs.append(f"'{a}' and '{b}' (overlap {iou:.2f}, {inside:.2f} inside)")
    if not pairs:
        return []
    return [
        "The input volumes do not cover the same brain: their non-zero (skull-stripped) regions "
        f"differ, {'; '.join(pairs)}. Give the sequences of one patient's study, co-registered "
        "and skull-stripped with one mask: a sequence from another patient or study gives a "
        "confident but wrong result."
    ]

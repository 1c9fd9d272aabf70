"""How much lung surrounds a liver segment at its own levels: a "liver" in the chest.

The liver lies under the lungs: on the axial slices that hold it, lung takes little of the
body's cross-section (only the lung bases beside and behind the dome). A false "liver" on the
heart of a chest slab lies on slices where lung fills a large part of the chest. The "between
the lungs" rule (``anatomy_check.py``) misses it where one lung is outside the image or lung
does not flank the segment on both sides: the shipped model found 150 ml on the heart of the
upper half of ``aorta_ct_cropped.nii.gz`` and 106-145 ml on the left halves (one lung) of the
TotalSegmentator chest crops, with no warning (docs/INPUT_CHECKS.md, "A liver in the chest").

:func:`lung_level_share`: over the segment's cells, the mean share of lung in the chest's
cross-section (lung and trunk cells) of the cell's slice; on ``anatomy_check``'s coarse LPS grid
(z: feet to head). Measured on the shared CTs (``scripts/slab_margins.py``): real livers and
slabs of them 0.00-0.19, the liver's dome at the bottom of the chest crops 0.11-0.13, false
"livers" on the heart 0.39-0.61. numpy only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: A segment whose cells lie, on average, on slices where lung is at least this share of the
#: chest's cross-section lies in the chest, above the liver.
MAX_LUNG_LEVEL_SHARE = 0.3


def lung_level_share(segment: np.ndarray, lung: np.ndarray, trunk: np.ndarray) -> Optional[float]:
    """Mean over the ``segment``'s cells of (lung cells) / (lung or trunk cells) on the cell's
    axial slice; boolean (z, y, x) arrays on the coarse LPS grid. None for an empty segment.
    Raises ValueError when the shapes differ."""
    if not segment.shape == lung.shape == trunk.shape:
        raise ValueError(f"shapes differ: {segment.shape}, {lung.shape}, {trunk.shape}")
    cells = np.count_nonzero(segment, axis=(1, 2))
    total = int(cells.sum())
    if not total:
        return None
    lung_cells = np.count_nonzero(lung, axis=(1, 2))
    chest = np.count_nonzero(lung | trunk, axis=(1, 2))
    share = lung_cells / np.maximum(chest, 1)
    return float((cells * share).sum() / total)


def in_chest_reason(share: float) -> str:
    """The reason for ``anatomy_check.liver_warning`` of a segment at lung level ``share``."""
    return (
        f"it lies in the chest: lung fills {share:.0%} of the body's cross-section at its "
        f"levels (under {MAX_LUNG_LEVEL_SHARE:.0%} for a liver, which lies below the lungs: "
        "0-19% in the shared test cases); the image may show the heart and not the liver"
    )

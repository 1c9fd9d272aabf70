"""Whether a liver segment lies on the body's midline, measured from the skeleton.

The liver lies in the right upper abdomen: its centre is several cm right of the midline.
``anatomy_check``'s "left of the midline" rule takes the midline from the body's left and right
ends, and has none where the image cuts the body at its sides, as in the pelvis of the demo CT:
its lower third (slices 0-36) gave **321 ml of "liver" on the bladder**, on the midline, with no
warning (docs/INPUT_CHECKS.md, "A liver on the midline"). The skeleton is symmetric about the
midline on every axial slice (spine, ribs, pelvis), also where the image cuts the body's sides,
so :func:`bone_midline_offset` measures the segment's centre against the centre of the bone
cells (at least :data:`BONE_HU` on the 4 mm coarse grid) inside the trunk on its slices.

Measured on the shared CTs (``scripts/slab_margins.py``; labels: LiTS expert, s0009
clinician-corrected, the others TotalSegmentator output): real livers and the model's results on
them 47-94 mm right of it (47: the 20 DICOM slices at the dome; 18-65 mm on their thirds and
halves, 6-10 slices of 2 mm; 12-17 mm on some slabs of 4-6 of them), the liver's dome in the
right halves of the chest crops 35-43 mm; the bladder 3 mm (the lower half of the demo CT
10 mm), false "livers" on the heart 1 mm right to 6 mm left. A segment within
:data:`MIDLINE_MM` of it fails "on_midline" (a farther left one is "left_side"'s business,
where the body shows its midline), unless it spans less than 20 mm head to feet
(:data:`MIN_LEVELS`). numpy only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .coarse_cells import STEP_MM

#: Coarse cells (4 mm, block-averaged HU) at least this dense are bone.
BONE_HU = 200.0
#: A slice needs at least this many bone cells in the trunk to give a midline.
MIN_BONE_CELLS = 3
#: A segment whose centre lies within this distance (mm) of the skeleton's midline is on it
#: (the model's results on 7-8 slices through the liver's dome, where the left lobe reaches
#: across the midline: 18 and 25 mm; the bladder 3 mm).
MIDLINE_MM = 15.0
#: A segment on fewer axial levels of the coarse grid than this (4 mm each: under about 20 mm
#: head to feet) is not judged: a thin slab shows one level of the liver, and at the dome's
#: levels its centre lies near the midline (the model on 4 and 6 slices of 2 mm of the DICOM
#: series, at the dome: 12.8 and 11.9 mm, "on the midline" at 15 mm; on 8 slices 22-58 mm, on
#: 10 and more 18-65 mm). Every bladder, pelvis and heart result it caught is still caught
#: (``scripts/slab_margins.py``, rerun).
MIN_LEVELS = 5


def bone_midline_offset(segment: np.ndarray, hu: np.ndarray, trunk: np.ndarray) -> Optional[float]:
    """The segment's centre x minus the skeleton's midline x (mm; + is the patient's left),
    averaged over the segment's axial slices that hold bone, weighted by its cells there.
    ``segment``, ``trunk``: boolean, ``hu``: float, (z, y, x) on the coarse LPS grid (x from
    the patient's right to left). None when those slices hold less than half of the segment,
    or when it lies on fewer than :data:`MIN_LEVELS` of them (a thin slab)."""
    bone = (hu >= BONE_HU) & trunk
    offsets, weights = [], []
    levels = np.nonzero(segment.any(axis=(1, 2)))[0]
    if len(levels) < MIN_LEVELS:
        return None
    for z in levels:
        bone_x = np.nonzero(bone[z])[1]
        if len(bone_x) < MIN_BONE_CELLS:
            continue
        xs = np.nonzero(segment[z])[1]
        offsets.append((xs.mean() - bone_x.mean()) * STEP_MM)
        weights.append(len(xs))
    if sum(weights) < 0.5 * np.count_nonzero(segment):
        return None
    return float(np.average(offsets, weights=weights))


def on_midline(offset: Optional[float]) -> bool:
    """Whether a :func:`bone_midline_offset` puts the segment on the midline."""
    return offset is not None and abs(offset) <= MIDLINE_MM


def on_midline_reason(offset: float) -> str:
    """The reason for ``anatomy_check.liver_warning`` of a segment on the midline."""
    return (
        f"its centre lies on the body's midline ({abs(offset):.0f} mm from the skeleton's "
        "midline), where the bladder, bowel or heart lie; a liver's centre lies several cm to "
        "the patient's right (47-94 mm in the shared test cases)"
    )

"""Where a liver segment lies in the body: in the trunk, inside the rib cage, not a sliver,
not in the chest, not on the midline.

``anatomy_check.py`` asks whether a liver segment lies between the lungs, on the left or far
below the lungs. A chest slab above the liver gives none of these: the shipped model found an
11 ml "liver" in the right shoulder muscles of LIDC-IDRI-0002 (15 mm thick, lung apices) and
24 ml in the left one of LIDC-IDRI-0003, lateral to the ribs, with only the thin-input
warning. Five more facts of anatomy catch them (docs/INPUT_CHECKS.md, "Anatomy of the
result"); all work on ``anatomy_check``'s coarse LPS grid (x: patient right to left, z: feet
to head, :data:`.coarse_cells.STEP_MM` cells):

- **in the trunk**: on each axial slice the trunk is the largest connected piece of body; an
  arm beside it is another piece. A segment mostly outside the trunk (an arm, or air) is not a
  liver.
- **inside the rib cage**: where both lungs are seen at the segment's level (within
  :data:`LEVEL_MM` above or below), the liver lies under the lungs, no farther out than the
  lungs' lateral edges (the costophrenic recesses reach down beside it). A segment mostly more
  than :data:`LATERAL_MM` lateral to both lungs is in the chest wall, the shoulder or an arm.
- **not a sliver**: the liver's largest axial cross-section is a large part of the trunk's at
  that level (:data:`MIN_AREA_SHARE`; measured on the real livers of the shared data). A
  segment whose largest cross-section is far smaller is a false positive or a liver cut by the
  image's edge to its very tip.
- **not in the chest**: the liver lies under the lungs; a segment on slices where lung fills a
  large part of the chest is on the heart (``liver_lung_level.py``).
- **not on the midline**: the liver's centre lies several cm right of the skeleton's midline
  (``liver_side.py``); a segment on it is the bladder, bowel or heart.

The rules warn, never refuse: the result is still written (the user decides; a false alarm on
a real liver must not cost its segment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .coarse_cells import STEP_MM, regions
from .liver_lung_level import MAX_LUNG_LEVEL_SHARE, in_chest_reason, lung_level_share
from .liver_side import bone_midline_offset, on_midline, on_midline_reason

#: A share of the segment at least this large outside the trunk fails "in the trunk".
OUTSIDE_TRUNK_SHARE = 0.5
#: Lung within this distance (mm) above or below a segment cell's slice gives its level's
#: lateral lung edges.
LEVEL_MM = 40.0
#: A segment cell more than this (mm) lateral to the lungs' edges is outside the rib cage.
LATERAL_MM = 20.0
#: A share of the (seen) segment at least this large outside the rib cage fails the rule.
LATERAL_SHARE = 0.5
#: Each of the two largest lung regions must hold at least this share of the lung for "both
#: lungs seen" (one lung, or a merged pair, leaves the rib-cage rule unapplied).
LUNG_PAIR_SHARE = 0.2
#: The segment's largest axial cross-section below this share of the trunk's at that level
#: fails "not a sliver".
MIN_AREA_SHARE = 0.05


@dataclass
class Position:
    """What the position check measured (None where a rule could not be applied)."""

    outside_trunk_share: Optional[float] = None  # share of the segment outside the trunk
    lateral_share: Optional[float] = None  # share (of the seen part) lateral to the lungs
    lateral_mm: Optional[float] = None  # median distance (mm) lateral to the lungs' edges
    area_share: Optional[float] = None  # largest cross-section / the trunk's at that level
    lung_level_share: Optional[float] = None  # lung in the chest's section at its levels
    bone_midline_mm: Optional[float] = None  # centre x - the skeleton's midline x (+: left)
    #: "outside_trunk", "outside_ribs", "sliver", "in_chest" (liver_lung_level.py),
    #: "on_midline" (liver_side.py)
    failed: list = field(default_factory=list)


def _trunk(body: np.ndarray) -> np.ndarray:
    """The largest 2-D connected piece (faces) of each axial slice of ``body`` (z, y, x)."""
    trunk = np.zeros_like(body, dtype=bool)
    for z in np.nonzero(body.any(axis=(1, 2)))[0]:
        trunk[z] = regions(body[z]) == 1
    return trunk


def _both_lungs(lung: np.ndarray) -> bool:
    """Whether ``lung`` (z, y, x) holds two separate lungs (:data:`LUNG_PAIR_SHARE`)."""
    total = int(np.count_nonzero(lung))
    if not total:
        return False
    sizes = np.bincount(regions(lung).ravel())[1:3]
    return len(sizes) == 2 and bool(sizes.min() >= LUNG_PAIR_SHARE * total)


def _lateral(segment: np.ndarray, lung: np.ndarray) -> tuple[Optional[float], Optional[float]]:
    """(share, median mm) of segment cells lateral to the lungs' edges at their level by more
    than :data:`LATERAL_MM`, among the cells with lung at their level; (None, None) when such
    cells hold less than a third of the segment or both lungs are not seen."""
    if not _both_lungs(lung):
        return None, None
    reach = int(round(LEVEL_MM / STEP_MM))
    per_slice = lung.any(axis=1)  # (z, x): lung columns of each slice
    distances = []
    for z in np.nonzero(segment.any(axis=(1, 2)))[0]:
        columns = np.nonzero(per_slice[max(0, z - reach) : z + reach + 1].any(axis=0))[0]
        if not len(columns):
            continue
        xs = np.nonzero(segment[z])[1]
        out = np.maximum(columns[0] - xs, xs - columns[-1]) * STEP_MM
        distances.append(np.maximum(out, 0.0))
    seen = np.concatenate(distances) if distances else np.zeros(0)
    if len(seen) < np.count_nonzero(segment) / 3.0:
        return None, None
    return float(np.mean(seen > LATERAL_MM)), float(np.median(seen))


def measure_position(
    segment: np.ndarray,
    lung: np.ndarray,
    body: np.ndarray,
    whole_image: bool = True,
    hu: Optional[np.ndarray] = None,
) -> Position:
    """Measure a liver segment's position; boolean (z, y, x) arrays on the coarse LPS grid:
    the ``segment``, the ``lung`` and the ``body`` (``anatomy_check.lung_and_body``). Without
    ``whole_image`` (a result restricted to a ROI, which may cut the liver) the sliver and
    midline rules are not applied; ``hu``: the coarse CT (HU, same grid) for the midline rule
    (None: not applied). Returns :class:`Position`, ``failed`` naming the rules broken; an empty
    segment breaks none."""
    found = Position()
    total = int(np.count_nonzero(segment))
    if not total:
        return found
    trunk = _trunk(body)
    found.outside_trunk_share = float(np.count_nonzero(segment & ~trunk)) / total
    found.lateral_share, found.lateral_mm = _lateral(segment, lung)
    areas = np.count_nonzero(segment, axis=(1, 2))
    z = int(np.argmax(areas))
    trunk_area = int(np.count_nonzero(trunk[z]))
    if trunk_area and whole_image:
        found.area_share = float(areas[z]) / trunk_area
    if found.outside_trunk_share >= OUTSIDE_TRUNK_SHARE:
        found.failed.append("outside_trunk")
    if found.lateral_share is not None and found.lateral_share >= LATERAL_SHARE:
        found.failed.append("outside_ribs")
    if found.area_share is not None and found.area_share < MIN_AREA_SHARE:
        found.failed.append("sliver")
    found.lung_level_share = lung_level_share(segment, lung, trunk)
    if found.lung_level_share is not None and found.lung_level_share >= MAX_LUNG_LEVEL_SHARE:
        found.failed.append("in_chest")
    if hu is not None and whole_image:  # a ROI may hold the liver's left lobe only
        found.bone_midline_mm = bone_midline_offset(segment, hu, trunk)
    if on_midline(found.bone_midline_mm):
        found.failed.append("on_midline")
    return found


def position_reasons(found: Position) -> list[str]:
    """The reasons, one per rule ``found`` breaks, for ``anatomy_check.liver_warning``."""
    reasons = []
    if "outside_trunk" in found.failed:
        reasons.append(
            f"{found.outside_trunk_share:.0%} of it lies outside the trunk, in an arm or outside "
            "the body"
        )
    if "outside_ribs" in found.failed:
        reasons.append(
            f"it lies outside the rib cage, {found.lateral_mm:.0f} mm (median) beyond the outer "
            "edge of the lungs at its level, in the chest wall, shoulder or arm"
        )
    if "sliver" in found.failed:
        reasons.append(
            f"its largest cross-section is only {found.area_share:.0%} of the trunk's at that "
            f"level (a liver's is over {MIN_AREA_SHARE:.0%}: 22-34 % in the shared test cases); "
            "check that the image covers the upper abdomen and not only the chest"
        )
    if "in_chest" in found.failed:
        reasons.append(in_chest_reason(found.lung_level_share))
    if "on_midline" in found.failed:
        reasons.append(on_midline_reason(found.bone_midline_mm))
    return reasons

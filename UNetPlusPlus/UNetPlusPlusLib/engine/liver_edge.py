"""A liver segment cut by the image's edge: its volume is a lower bound (a warning).

A CT that shows only part of the liver gives a result whose volume is not the liver's, in
silence: the middle third (in z) of the demo CT gave 100 ml of "liver" (Dice 0.16 against the
reference cut to the same slab, which holds 9 ml: the liver's lower tip), and the demo CT itself
stops inside the liver (its top slice cuts the liver at 90 % of its largest cross-section: the
dome is outside the image). :func:`edge_cut` names the sides of the image (patient sides:
"superior", "right", ...) that the segment reaches with at least ``point_box.MIN_CONTACT`` of
its largest section parallel to that side, the share ``roi_edge.py`` uses for a ROI's sides (a
liver's tip or a few voxels grazing the edge do not count); padding beyond the data (a CT
resampled onto a rotated grid) is outside the image, and an edge oblique to the grid is named
once. :func:`edge_warning` says
which sides, that the volume is a lower bound, and that the segmentation is **unreliable** where
the model was measured to be (``scripts/slab_margins.py``, docs/INPUT_CHECKS.md, "A liver cut by
the image's edge"): a slab cut at both its top and bottom ends, or a cut segment whose largest
cross-section is less than :data:`SMALL_AREA_SHARE` of the trunk's (a liver's tip, or not the
liver). numpy only; it warns and never refuses.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import numpy as np

from .fov_padding import PADDING_HU
from .point_box import MIN_CONTACT
from .roi_edge import face_side
from .volume import Grid

#: A cut segment whose largest axial cross-section is below this share of the trunk's at that
#: level (``liver_position``'s ``area_share``) is called unreliable: the demo CT's middle third
#: gave 0.05 (Dice 0.16), the whole cut livers of the shared CTs 0.22-0.33.
SMALL_AREA_SHARE = 0.15
#: Opposite patient sides: a segment cut at both is a slab through the organ.
_OPPOSITE = {"superior": "inferior", "right": "left", "anterior": "posterior"}
#: How the warning names the ends of the scan along the body's long axis.
_END_NAMES = {"superior": "top (head end)", "inferior": "bottom (feet end)"}


@dataclass
class EdgeCut:
    """Where a segment meets the image's edge: ``sides`` (patient sides, e.g. "superior"),
    ``section_share`` (per side: the segment's section on the image's last plane there over
    its largest section parallel to it) and whether the result is ``unreliable``."""

    sides: list = field(default_factory=list)
    section_share: dict = field(default_factory=dict)
    unreliable: bool = False


def _last_index(lines: np.ndarray, forward: bool) -> np.ndarray:
    """Per line of the boolean ``lines`` (the line along index 0), the index of its last True
    in the direction (forward: up index 0), -1 (forward) or ``len(lines)`` (backward) where it
    has none. Plane by plane from the far end, until every line with a True has it: an argmax
    along a strided axis copies the whole array (0.28 s for a CT's 300 x 225 x 309 voxels)."""
    n = lines.shape[0]
    found = np.full(lines.shape[1:], -1 if forward else n, dtype=np.intp)
    todo = lines.any(axis=0)
    for k in range(n - 1, -1, -1) if forward else range(n):
        if not todo.any():
            break
        hit = lines[k] & todo
        found[hit] = k
        todo &= ~hit
    return found


def _edge_voxels(
    mask: np.ndarray, data: Optional[np.ndarray], box: tuple, axis: int, forward: bool
) -> np.ndarray:
    """Flat indices (into ``mask``, (z, y, x)) of the last voxel, in that direction along
    ``axis`` (0, 1, 2), of each line of ``mask`` beyond which lies no ``data`` (the image's
    voxels that are not padding; None: all are) up to the grid's end. ``box``: the mask's
    bounding box (slices, (z, y, x)); only its lines are looked at."""
    across = list(box)
    across[axis] = slice(None)  # the whole line, beyond the box too
    part = np.moveaxis(mask[box], axis, 0)
    last = _last_index(part, forward) + (box[axis].start or 0)
    n = mask.shape[axis]
    if data is None:
        end = np.full(last.shape, n - 1 if forward else 0)
    else:
        end = _last_index(np.moveaxis(data[tuple(across)], axis, 0), forward)
    has = part.any(axis=0)
    cut = has & ((last >= end) if forward else (last <= end))
    index = list(np.nonzero(cut))
    index.insert(axis, last[cut])
    for a in range(3):
        if a != axis:
            index[a] = index[a] + (box[a].start or 0)
    return np.ravel_multi_index(tuple(index), mask.shape)


def _bounding_box(mask: np.ndarray) -> tuple:
    """The (z, y, x) slices of the non-empty boolean ``mask``'s bounding box."""
    zs = np.nonzero(mask.any(axis=(1, 2)))[0]
    z = slice(int(zs[0]), int(zs[-1]) + 1)
    plane = mask[z].any(axis=0)
    ys, xs = np.nonzero(plane.any(axis=1))[0], np.nonzero(plane.any(axis=0))[0]
    return z, slice(int(ys[0]), int(ys[-1]) + 1), slice(int(xs[0]), int(xs[-1]) + 1)


#: Patient sides in a fixed order: equal shares are named (and kept, for an oblique edge met
#: along two axes) in this order, whatever the image's storage order.
_SIDE_ORDER = ("superior", "inferior", "right", "left", "anterior", "posterior")


def edge_cut(
    mask: np.ndarray,
    grid: Grid,
    area_share: Optional[float] = None,
    ct: Optional[np.ndarray] = None,
) -> EdgeCut:
    """The image sides a (z, y, x) boolean ``mask`` on ``grid`` is cut by (see the module's
    docstring): along each index axis and direction, the lines of the mask that end at the
    image's edge, at least ``point_box.MIN_CONTACT`` of its largest section across that axis.
    ``ct``: the image's HU on the same grid, whose padding (below ``fov_padding.PADDING_HU``
    all the way to the grid's end, as in the corners of a CT resampled onto a rotated grid) is
    beyond the edge; None: the grid's faces are the edge. A data edge oblique to the grid is
    met along two or three axes by the same voxels: a direction whose edge voxels are mostly
    those of another axis' direction with a larger share is the same cut, and not named again
    (the two ends of one axis are two cuts, also where they share every voxel: an image one
    slice thick is cut at its top and its bottom), nor is a side already named. Sides of equal
    share are named in a fixed patient order (:data:`_SIDE_ORDER`), the same for any storage
    order of the image's axes. A share is at most 1: on an oblique edge more lines can end
    at it than the largest section holds (the demo CT rotated 30 degrees about y: 1.12, which
    the warning called "112% of its largest cross-section"). ``area_share``: the segment's
    largest cross-section over the trunk's (``liver_position.Position.area_share``; None:
    unknown). Raises ValueError when the mask's or the CT's shape is not the grid's."""
    mask = np.asarray(mask)
    mask = mask if mask.dtype == bool else mask != 0  # no copy of a boolean mask
    for array in (mask,) if ct is None else (mask, ct):
        if array.shape != grid.shape_zyx:
            raise ValueError(f"mask shape {array.shape} does not match grid {grid.shape_zyx}")
    found = EdgeCut()
    if not mask.any():
        return found
    box = _bounding_box(mask)
    data = None if ct is None else np.asarray(ct) >= PADDING_HU
    candidates = []
    for axis, name in enumerate("kji"):
        across = tuple(a for a in range(3) if a != axis)  # the sections parallel to its faces
        largest = float(np.count_nonzero(mask[box], axis=across).max())
        for forward in (False, True):
            voxels = _edge_voxels(mask, data, box, axis, forward)
            if len(voxels) >= MIN_CONTACT * largest:
                side = face_side(grid, name + "+-"[not forward])
                candidates.append((len(voxels) / largest, side, axis, voxels))
    kept: list = []
    for share, side, axis, voxels in sorted(
        candidates, key=lambda c: (-c[0], _SIDE_ORDER.index(c[1]))
    ):
        if side in found.sides or any(
            a != axis and np.isin(voxels, other).mean() > 0.5 for a, other in kept
        ):
            continue  # the same oblique cut, met along another axis
        kept.append((axis, voxels))
        found.sides.append(side)
        found.section_share[side] = round(min(share, 1.0), 3)
    slab = any(_OPPOSITE.get(side) in found.sides for side in found.sides)
    small = area_share is not None and area_share < SMALL_AREA_SHARE
    found.unreliable = bool(found.sides) and (slab or small)
    return found


def _side_name(side: str) -> str:
    return _END_NAMES.get(side, f"{side} side")


def edge_warning(cut: EdgeCut, name: str, volume_ml: float) -> Optional[str]:
    """The warning for a segment ``name`` of ``volume_ml`` (ml) that ``cut`` says reaches the
    image's edge, or None when it reaches no side."""
    if not cut.sides:
        return None
    where = " and ".join(
        f"{_side_name(side)} ({cut.section_share[side]:.0%} of its largest cross-section)"
        for side in cut.sides
    )
    text = (
        f"The '{name}' segment is cut by the edge of the image at its {where}: the scan does "
        f"not contain the whole organ, so its volume ({volume_ml:.0f} ml) is a lower bound, not "
        "the organ's volume."
    )
    if cut.unreliable:
        text += (
            " The segmentation itself is unreliable here: the image shows only a slab or a "
            "small part of the organ, where the model was measured to miss it or to find it "
            "elsewhere (Dice 0.16 on the demo CT's middle third, 0.40-0.87 on slabs through "
            "the liver, against 0.91-0.96 on whole abdominal scans). Check every slice before "
            "using it."
        )
    else:
        text += " Scan the whole organ to measure it."
    return text


def check_edges(
    labels: np.ndarray,
    grid: Grid,
    name: str,
    value: int,
    summary: dict,
    ct: Optional[np.ndarray] = None,
) -> list[str]:
    """The edge warning (at most one) for the segment ``value`` of the (z, y, x) ``labels`` on
    ``grid``, the whole image's result (``ct``: its HU on the same grid, see :func:`edge_cut`;
    None: the grid's faces are the image's edge); adds the figures to the anatomy ``summary``
    (``anatomy_check.check_result``'s) as ``summary["edge"]``, and for an unreliable result
    "cut_unreliable" to its ``failed`` with ``passed`` False. [] when no side cuts it."""
    mask = labels == value
    area_share = (summary.get("position") or {}).get("area_share")
    cut = edge_cut(mask, grid, area_share, ct)
    summary["edge"] = asdict(cut)
    if cut.unreliable:
        summary["failed"] = list(summary.get("failed", [])) + ["cut_unreliable"]
        summary["passed"] = False
    voxel_ml = float(np.prod(np.asarray(grid.spacing, dtype=np.float64))) / 1000.0
    warning = edge_warning(cut, name, float(np.count_nonzero(mask)) * voxel_ml)
    return [warning] if warning else []

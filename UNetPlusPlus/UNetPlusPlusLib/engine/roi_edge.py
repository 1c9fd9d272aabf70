"""A whole-structure result cut off by the user's region of interest (a warning).

With ``--roi`` (or a Slicer ROI) the labels outside the box are cleared. A box that ends
inside the organ silently returns part of it: the demo CT's liver with a box ending at
z = 400 mm (its top 9 slices, the liver dome, outside) gave 552 ml instead of 1033 ml, Dice
0.50, and said nothing (tester 15). :func:`roi_edge_warning` names the sides of the box,
inside the image, that the labels touch with at least ``point_box.MIN_CONTACT`` of their
largest section parallel to that side (a vessel or a few voxels grazing it do not count).
Lung-nodule clicks have their own warning (``point_box.ROI_EDGE_WARNING``). numpy only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .point_box import box_limits, touched_faces
from .volume import Box, Grid, box_to_index_slices

#: LPS axis names, (negative, positive) direction.
_LPS_SIDES = (("right", "left"), ("anterior", "posterior"), ("inferior", "superior"))
_INDEX_AXIS = {"i": 0, "j": 1, "k": 2}


def face_side(grid: Grid, face: str) -> str:
    """The patient side ("left", "superior", ...) a box face of ``touched_faces`` ("k+",
    "i-", ...) looks towards, from ``grid``'s direction (the nearest LPS axis)."""
    column = np.asarray(grid.direction, dtype=float).reshape(3, 3)[:, _INDEX_AXIS[face[0]]]
    axis = int(np.abs(column).argmax())
    positive = (column[axis] > 0) == (face[1] == "+")
    return _LPS_SIDES[axis][int(positive)]


def roi_edge_warning(labels: np.ndarray, grid: Grid, roi: Box) -> Optional[str]:
    """The warning for (z, y, x) ``labels`` on ``grid`` (zero outside the ``roi``) that reach
    a side of the ROI lying inside the image, or None. Never raises."""
    slices = box_to_index_slices(grid, roi)
    region = labels[slices]
    if not region.any():
        return None
    faces = touched_faces(region, slices, box_limits(grid))
    if not faces:
        return None
    sides = ", ".join(dict.fromkeys(face_side(grid, face) for face in faces))
    return (
        f"The segmentation reaches the edge of the region of interest on its {sides} side: "
        "the structure probably continues beyond it and is cut off there, so its outline and "
        "volume are incomplete. Enlarge the region of interest (or leave it out) to segment it "
        "whole."
    )

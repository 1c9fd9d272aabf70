"""The markups ROI that restricts inference: is it usable, and "Fit ROI to volume".

An ROI node made by the panel's selector ("Create new ROI") has no control point and zero size,
so the engine would get an empty box. The panel fits such an ROI to the input volume (as Slicer's
Crop Volume module does with "Fit to Volume"); the user then shrinks it with its handles.
MRML only (no Qt); world coordinates are RAS, in mm.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..engine.oriented_box import OrientedBox, clear_outside_oriented_box
from ..engine.volume import LabelVolume
from .geometry import ras_to_lps


def roi_is_empty(roi_node) -> bool:
    """Whether the ROI's world (RAS) box has no volume: no control point placed yet, or a zero
    size along some axis."""
    if roi_node.GetNumberOfControlPoints() == 0:
        return True
    bounds = [0.0] * 6
    roi_node.GetRASBounds(bounds)
    low, high = np.array(bounds[0::2]), np.array(bounds[1::2])
    return bool(np.any(high <= low))


def fit_roi_to_volume(roi_node, volume_node) -> None:
    """Make ``roi_node`` the axis-aligned world (RAS) bounding box of ``volume_node``'s voxels
    (parent transforms included), so that it holds the whole volume.

    Uses ``vtkMRMLMarkupsROINode.SetCenterWorld`` / ``SetSizeWorld`` (Slicer 5.0+). Raises
    ``ValueError`` when the volume has no voxels.
    """
    bounds = [0.0] * 6
    volume_node.GetRASBounds(bounds)
    low, high = np.array(bounds[0::2]), np.array(bounds[1::2])
    if np.any(high < low):
        raise ValueError(f"volume '{volume_node.GetName()}' has no voxels")
    centre, size = (low + high) / 2.0, high - low
    was_modifying = roi_node.StartModify()
    try:
        roi_node.SetCenterWorld(*[float(v) for v in centre])
        roi_node.SetSizeWorld(*[float(v) for v in size])
    finally:
        roi_node.EndModify(was_modifying)


def roi_state(roi_node) -> tuple:
    """What :func:`restore_roi` needs to put ``roi_node`` back: its centre (None without a
    control point) and its size, in the ROI's own coordinates (mm)."""
    placed = roi_node.GetNumberOfControlPoints() > 0
    return (tuple(roi_node.GetCenter()) if placed else None), tuple(roi_node.GetSize())


def restore_roi(roi_node, state: tuple) -> None:
    """Put back an ROI as :func:`roi_state` saw it (a Segment refused after
    :func:`fit_if_empty` fitted it leaves the scene as it was)."""
    centre, size = state
    was_modifying = roi_node.StartModify()
    try:
        if centre is None:
            roi_node.RemoveAllControlPoints()
        else:
            roi_node.SetCenter(*centre)
        roi_node.SetSize(*size)
    finally:
        roi_node.EndModify(was_modifying)


def fit_if_empty(roi_node, volume_node) -> bool:
    """Fit an ROI that was never placed (see :func:`roi_is_empty`) to ``volume_node``; return
    whether it was fitted. A placed ROI is left exactly as it is. Segment calls this, so an ROI
    made by the selector and never placed runs on the whole volume (with a warning from the
    caller) instead of stopping at "ROI is empty"."""
    if roi_node is None or volume_node is None or not roi_is_empty(roi_node):
        return False
    fit_roi_to_volume(roi_node, volume_node)
    return True


#: ROI axes within this of the world axes (or a swap or flip of them) make an axis-aligned box.
_AXIS_TOLERANCE = 1e-6


def oriented_box(roi_node) -> Optional[OrientedBox]:
    """A rotated ROI (its axes not the world's: rotated with its handles, or under a rotating
    transform) as the engine's LPS :class:`.oriented_box.OrientedBox` (centre, unit axes, half
    sizes in world mm); None for an axis-aligned one. The engine runs on the ROI's axis-aligned
    world box (:func:`.geometry.roi_corners_ras`), which holds more than a rotated ROI:
    :func:`clear_outside` clears those corners.

    Slicer keeps the columns of the ROI's object-to-world matrix orthogonal; a scaling parent
    transform lengthens them, and the half sizes are scaled with them (the ROI's size is in
    object units)."""
    matrix = roi_node.GetObjectToWorldMatrix()  # parent transforms included
    object_to_world = np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])
    lengths = np.linalg.norm(object_to_world[:3, :3], axis=0)
    axes_ras = object_to_world[:3, :3] / lengths
    if np.allclose(np.abs(axes_ras).max(axis=0), 1.0, rtol=0, atol=_AXIS_TOLERANCE):
        return None
    half_mm = np.array(roi_node.GetSize(), dtype=np.float64) / 2.0 * lengths
    centre_lps = ras_to_lps(object_to_world[:3, 3])
    axes_lps = ras_to_lps(axes_ras.T).T  # flip the rows: each column is a vector
    return OrientedBox(centre_lps, axes_lps, half_mm)


def clear_outside(labels: LabelVolume, box: Optional[OrientedBox]) -> int:
    """Set to background, in place, the labelled voxels of ``labels`` whose centres lie outside
    the rotated ROI ``box`` (:func:`oriented_box`; None: nothing to do). Returns how many were
    cleared (:func:`.oriented_box.clear_outside_oriented_box`)."""
    if box is None:
        return 0
    return clear_outside_oriented_box(labels.array, labels.grid, box)


def clear_outside_roi(
    labels: LabelVolume,
    box: Optional[OrientedBox],
    roi_name: str,
    warnings: Optional[list],
) -> int:
    """:func:`clear_outside`, and when that leaves nothing labelled, a warning appended to
    ``warnings`` (when given) naming the ROI: the model found something only in the corners of
    the rotated ROI's axis-aligned box, so the empty result is not "nothing there" in silence.
    Returns how many voxels were cleared."""
    cleared = clear_outside(labels, box)
    if cleared and warnings is not None and not np.any(labels.array):
        note = (
            f"Nothing was found inside ROI '{roi_name}': what the model found lies only in the "
            f"corners of the ROI's axis-aligned box, outside the rotated ROI ({cleared} "
            "voxel(s)), and was left as background. Rotate the ROI back or enlarge it if the "
            "structure lies there."
        )
        if note not in warnings:
            warnings.append(note)
    return cleared

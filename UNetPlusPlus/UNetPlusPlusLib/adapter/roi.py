"""The markups ROI that restricts inference: is it usable, and "Fit ROI to volume".

An ROI node made by the panel's selector ("Create new ROI") has no control point and zero size,
so the engine would get an empty box. The panel fits such an ROI to the input volume (as Slicer's
Crop Volume module does with "Fit to Volume"); the user then shrinks it with its handles.
MRML only (no Qt); world coordinates are RAS, in mm.
"""

from __future__ import annotations

import numpy as np


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

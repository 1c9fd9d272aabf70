"""Clearing a label array outside a box in physical (LPS) space: one function for every box.

:func:`clear_outside_oriented_box` sets to 0 the voxels whose centre lies outside an
:class:`OrientedBox` (any rotation, on a grid of any direction). The positions come from
:meth:`.volume.Grid.index_to_physical`, the grid's own mapping, slab by slab over the labelled
voxels only (no whole-grid array of coordinates). Users: the Slicer adapter, for a rotated
markups ROI (adapter/roi.py, converted from RAS there), and :func:`clear_outside_box`, for the
engine's axis-aligned ROI on an oblique grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .volume import Box, Grid

#: How far (mm) a voxel centre may lie outside a box and still count as inside (rounding).
BOX_TOLERANCE_MM = 1e-6

#: How far from orthonormal (max |A^T A - I|) an OrientedBox's axes may be.
_AXES_TOLERANCE = 1e-6


@dataclass(frozen=True, eq=False)
class OrientedBox:
    """A box in LPS space, in mm: its ``centre`` (x, y, z), ``axes`` (3, 3) whose column ``a``
    is the unit LPS direction of box axis ``a``, and ``half_size`` (3,), the half extent along
    each box axis. Raises ``ValueError`` for axes that are not orthonormal or a negative size.

    A point ``p`` (LPS) lies inside when ``p @ axes`` is within :attr:`frame_bounds`, the box's
    faces as coordinates along its axes (``centre @ axes -/+ half_size``; for
    :meth:`aligned`, its corners exactly, so a voxel centre on a face is not decided by the
    rounding of centre and half size)."""

    centre: np.ndarray
    axes: np.ndarray
    half_size: np.ndarray
    frame_bounds: Optional[tuple[np.ndarray, np.ndarray]] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        centre = np.asarray(self.centre, dtype=np.float64).reshape(-1)
        axes = np.asarray(self.axes, dtype=np.float64)
        half = np.asarray(self.half_size, dtype=np.float64).reshape(-1)
        if centre.shape != (3,) or half.shape != (3,) or axes.shape != (3, 3):
            raise ValueError(
                f"an oriented box needs a centre (3,), axes (3, 3) and half sizes (3,), got "
                f"{centre.shape}, {axes.shape}, {half.shape}"
            )
        if not np.all(np.isfinite(centre)) or not np.all(np.isfinite(half)):
            raise ValueError(f"oriented box centre and half sizes must be finite: {centre}, {half}")
        if np.any(half < 0):
            raise ValueError(f"oriented box half sizes must not be negative, got {half.tolist()}")
        if not np.allclose(axes.T @ axes, np.eye(3), rtol=0, atol=_AXES_TOLERANCE):
            raise ValueError(f"oriented box axes must be orthonormal, got {axes.tolist()}")
        bounds = self.frame_bounds
        if bounds is None:
            bounds = (centre @ axes - half, centre @ axes + half)
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "half_size", half)
        object.__setattr__(self, "frame_bounds", tuple(np.asarray(b, np.float64) for b in bounds))

    @classmethod
    def aligned(cls, lower: Sequence[float], upper: Sequence[float]) -> OrientedBox:
        """The axis-aligned LPS box from corner ``lower`` to ``upper`` (x, y, z), in mm."""
        low, high = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        low, high = np.minimum(low, high), np.maximum(low, high)
        return cls((low + high) / 2.0, np.eye(3), (high - low) / 2.0, (low, high))

    def outside(self, points_xyz: Any, tolerance_mm: float = 0.0) -> np.ndarray:
        """Which LPS points (N, 3) lie more than ``tolerance_mm`` outside the box, (N,) bool."""
        along = np.asarray(points_xyz, dtype=np.float64) @ self.axes
        low, high = self.frame_bounds
        return np.any((along < low - tolerance_mm) | (along > high + tolerance_mm), axis=1)


def clear_outside_oriented_box(
    array_zyx: np.ndarray,
    grid: Grid,
    box: OrientedBox,
    tolerance_mm: float = BOX_TOLERANCE_MM,
) -> int:
    """Set to 0, in place, the non-zero voxels of ``array_zyx`` (z, y, x, on ``grid``) whose
    centre lies outside ``box``: more than ``tolerance_mm`` beyond one of its faces. Returns
    how many voxels were cleared. Raises ``ValueError`` when the array's shape is not the
    grid's."""
    if array_zyx.shape != grid.shape_zyx:
        raise ValueError(f"array shape {array_zyx.shape} does not match grid {grid.shape_zyx}")
    cleared = 0
    for k in range(array_zyx.shape[0]):
        slab = array_zyx[k]
        j, i = np.nonzero(slab)
        if not i.size:
            continue
        index_xyz = np.stack([i, j, np.full_like(i, k)], axis=1)
        outside = box.outside(grid.index_to_physical(index_xyz), float(tolerance_mm))
        if outside.any():
            slab[j[outside], i[outside]] = 0
            cleared += int(outside.sum())
    return cleared


def clear_outside_box(array_zyx: np.ndarray, grid: Grid, box: Box) -> int:
    """Set to 0, in place, the voxels of ``array_zyx`` (on ``grid``) whose footprint misses the
    axis-aligned physical ``box``: the voxel centre lies farther outside the box, along a
    patient axis, than half the voxel's extent along it. On an axis-aligned grid these are
    exactly the voxels outside :func:`.volume.box_to_index_slices` (nothing is done); on an
    oblique grid that bounding box in index space is larger than the box, and its corners are
    cleared here. Strict, as before the move: a voxel centre exactly on the grown box's face is
    kept. Returns how many voxels were cleared."""
    matrix = np.asarray(grid.direction, dtype=np.float64) @ np.diag(grid.spacing)
    if np.count_nonzero(np.abs(matrix) > 1e-9 * np.abs(matrix).max()) == 3:
        return 0  # axis-aligned (a signed permutation): the index slices are the box already
    footprint = 0.5 * np.abs(matrix).sum(axis=1)  # half a voxel's extent along x, y, z (mm)
    grown = OrientedBox.aligned(box.lower - footprint, box.upper + footprint)
    return clear_outside_oriented_box(array_zyx, grid, grown, tolerance_mm=0.0)

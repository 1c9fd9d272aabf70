"""Where labels can be non-background after resampling: resample and argmax only there.

The predictor puts class probabilities (K, z, y, x) from the model grid back onto the input
grid with linear interpolation (nearest-neighbour extrapolation outside the model grid), then
takes the argmax. On a 512x512x300 CT the organ fills a small part of the input grid, and
resampling every class onto all of it cost ~4 s of a ~11 s run (docs/BENCHMARK.md, "End to
end"). This module finds the input-grid box outside which the argmax is certainly background,
so that only the box is resampled; the labels are identical.

Why it is exact: linear interpolation at a point is a weighted mean, with the same non-negative
weights for every class, of the model-grid voxels whose index is floor(c) or floor(c) + 1 on
each axis (c the point's continuous index; clamped at the edges), and the nearest-neighbour
extrapolator returns one clamped voxel. If background wins (ties included) at every one of
those voxels, p0 - pk >= 0 there for every class k, so the weighted mean of p0 - pk is >= 0 and
the argmax (ties to the lower class) is background. Those voxels all lie within one voxel of
the box of model-grid voxels where background does not win, so the input voxels outside that
box grown by one voxel (to infinity where it reaches the grid's edge) are background.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..errors import UNetPlusPlusError
from .volume import Box, Grid, box_to_index_slices

_FAR = 1e6  # voxels: "to infinity" for a box side that reaches the model grid's edge

Slices = tuple[slice, slice, slice]


def non_background_box(probabilities: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(lower, upper) (z, y, x) voxel indices of the voxels of (K, z, y, x) ``probabilities``
    where background does not win the argmax; None when background wins everywhere."""
    best_other = probabilities[1:].max(axis=0)
    mask = probabilities[0] < best_other
    if not mask.any():
        return None
    lower, upper = [], []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        lower.append(hits[0])
        upper.append(hits[-1])
    return np.array(lower), np.array(upper)


def candidate_slices(probabilities: np.ndarray, grid: Grid, reference: Grid) -> Optional[Slices]:
    """(z, y, x) slices of ``reference`` outside which the resampled argmax is background.

    ``probabilities`` (K, z, y, x) lie on ``grid``. None when no voxel can be foreground.
    """
    box = non_background_box(probabilities)
    if box is None:
        return None
    shape = np.array(grid.shape_zyx)
    lower, upper = box[0] - 1.0, box[1] + 1.0
    lower[box[0] - 1 <= 0] = -_FAR
    upper[box[1] + 1 >= shape - 1] = _FAR
    corners_zyx = np.array([[z, y, x] for z in (lower[0], upper[0]) for y in (lower[1], upper[1])
                            for x in (lower[2], upper[2])])  # fmt: skip
    points = grid.index_to_physical(corners_zyx[:, ::-1])
    try:
        slices = box_to_index_slices(reference, Box(points.min(axis=0), points.max(axis=0)))
    except UNetPlusPlusError:  # the box misses the reference grid
        return None
    size = reference.shape_zyx
    return tuple(slice(max(0, s.start - 1), min(n, s.stop + 1)) for s, n in zip(slices, size))  # type: ignore[return-value]


def sub_grid(reference: Grid, slices: Slices) -> Grid:
    """The part of ``reference`` selected by (z, y, x) ``slices``, with the same geometry."""
    start_xyz = [s.start for s in reversed(slices)]
    size_xyz = [s.stop - s.start for s in reversed(slices)]
    origin = reference.index_to_physical(start_xyz)
    return Grid(size_xyz, reference.spacing, tuple(origin), reference.direction.copy())

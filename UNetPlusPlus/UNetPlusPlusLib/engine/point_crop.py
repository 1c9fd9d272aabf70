"""Point-prompt results kept small: the smallest extent holding a label, on the input's voxels.

A nodule click infers on a crop around the point (``prompt_boxes.py``); everything after the
network (argmax, the component at the click, writing) stays inside that crop, and the written
labelmap has the smallest extent that holds the result, with its own origin on the input grid
(same spacing and direction). ``grid_offset`` checks that a read-back labelmap lies exactly on
the input's voxels.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .label_extent import sub_grid
from .volume import GEOMETRY_TOLERANCE, Grid

Slices = tuple[slice, slice, slice]


def content_slices(array_zyx: np.ndarray) -> Optional[Slices]:
    """(z, y, x) slices of the bounding box of the non-zero voxels; None when there are none."""
    box = []
    for axis in range(3):
        others = tuple(a for a in range(3) if a != axis)
        hits = np.flatnonzero(np.asarray(array_zyx).any(axis=others))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)  # type: ignore[return-value]


def smallest_extent(
    region_labels: np.ndarray, region_slices: Slices, grid: Grid
) -> tuple[np.ndarray, Grid]:
    """The labels of a region (``region_slices`` of ``grid``) cut to their non-zero box.

    Returns (labels (z, y, x), their grid: a part of ``grid``, same spacing and direction).
    An empty result keeps the whole region (a labelmap needs at least one voxel)."""
    inner = content_slices(region_labels)
    if inner is None:
        inner = tuple(slice(0, n) for n in region_labels.shape)
    absolute = tuple(
        slice(r.start + i.start, r.start + i.stop) for r, i in zip(region_slices, inner)
    )
    return np.ascontiguousarray(region_labels[inner]), sub_grid(grid, absolute)


def grid_offset(
    part: Grid, reference: Grid, tolerance: float = GEOMETRY_TOLERANCE
) -> Optional[tuple[int, int, int]]:
    """(x, y, z) index in ``reference`` of ``part``'s first voxel, when ``part`` lies exactly on
    ``reference``'s voxels: same spacing and direction (relative ``tolerance``), origin on a
    voxel centre (within ``tolerance`` of a voxel) and every voxel inside; else None."""
    if not np.allclose(part.spacing, reference.spacing, rtol=tolerance, atol=0):
        return None
    if not np.allclose(part.direction, reference.direction, rtol=0, atol=tolerance):
        return None
    index = reference.physical_to_index(np.asarray(part.origin, dtype=np.float64))
    start = np.rint(index)
    if np.any(np.abs(index - start) > tolerance * 10):
        return None
    stop = start + np.asarray(part.size_xyz)
    if np.any(start < 0) or np.any(stop > np.asarray(reference.size_xyz)):
        return None
    return tuple(int(v) for v in start)  # type: ignore[return-value]

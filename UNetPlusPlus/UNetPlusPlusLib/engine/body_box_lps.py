"""The body's box on the model grid of an oblique CT, from where its voxels lie in LPS.

``body_crop.py`` infers a CT only on the box of its body. For an input stored along the patient
axes (the direction a signed permutation) the box of the body's voxel indices maps onto the
model grid (LPS axes) as a box of the same size. For an oblique input (a gantry tilt, a rotated
acquisition) the index box is a rotated box, and its LPS bounding box also holds the rotated
box's empty corners: on the demo CT resampled 25 degrees about x, the body's box needed as many
tiles as the whole model grid, so no crop was made, and the network ran on a grid of 192 x 189
x 123 voxels, mostly air, that gave 5 % less liver than the same voxels on their own grid
(docs/BENCHMARK_E2E.md, "Oblique CTs"; the instance normalisation of each tile sees the air).

Here the box is the LPS bounding box of the body's voxel centres themselves, grown by the reach
of linear interpolation (one input voxel along each index axis, in mm per LPS axis), so it is
exact as the index box is (``body_crop.py``): a model voxel outside it reads only voxels at or
below the threshold, which normalise to the padding value. The extremes of a linear function
of the index over a mask are found per row (its first and last voxel), in one pass.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .nonzero_crop import grid_slices
from .volume import Grid

Slices = tuple[slice, slice, slice]


def is_oblique(direction: np.ndarray, tolerance: float = 1e-6) -> bool:
    """Whether a 3 x 3 ``direction`` is not a signed permutation (its axes not LPS axes)."""
    rounded = np.round(np.asarray(direction, dtype=np.float64))
    return not np.allclose(direction, rounded, atol=tolerance)


def lps_extent(mask_zyx: np.ndarray, grid: Grid) -> Optional[tuple[np.ndarray, np.ndarray]]:
    """(low, high) LPS coordinates (mm, x y z) of the voxel centres of the boolean (z, y, x)
    ``mask`` on ``grid``; None when the mask is empty."""
    rows = mask_zyx.any(axis=2)  # (z, y)
    if not rows.any():
        return None
    nx = mask_zyx.shape[2]
    first = np.argmax(mask_zyx, axis=2)[rows].astype(np.float64)
    last = (nx - 1 - np.argmax(mask_zyx[:, :, ::-1], axis=2))[rows].astype(np.float64)
    k, j = (part.astype(np.float64) for part in np.nonzero(rows))
    matrix = grid.direction @ np.diag(grid.spacing)  # index (x, y, z) -> mm
    origin = np.asarray(grid.origin, dtype=np.float64)
    low, high = np.empty(3), np.empty(3)
    for axis in range(3):
        a, b, c = matrix[axis]
        rest = b * j + c * k
        ends = (a * first + rest, a * last + rest)
        low[axis] = origin[axis] + min(ends[0].min(), ends[1].min())
        high[axis] = origin[axis] + max(ends[0].max(), ends[1].max())
    return low, high


def model_box(
    mask_zyx: np.ndarray, source: Grid, full: Grid, tile_zyx: Sequence[int], margin: int = 0
) -> Optional[Slices]:
    """(z, y, x) slices of the model grid ``full`` (LPS axes) holding every model voxel whose
    linear interpolation reads a voxel of ``mask`` (on ``source``), plus ``margin`` voxels and
    grown to at least a tile (``tile_zyx``) where the grid allows; None for an empty mask."""
    extent = lps_extent(mask_zyx, source)
    if extent is None:
        return None
    reach = np.abs(source.direction @ np.diag(source.spacing)).sum(axis=1)  # mm per LPS axis
    low = full.physical_to_index(extent[0] - reach)
    high = full.physical_to_index(extent[1] + reach)
    index_low, index_high = np.minimum(low, high), np.maximum(low, high)
    return grid_slices(index_low, index_high, full, tile_zyx, margin)

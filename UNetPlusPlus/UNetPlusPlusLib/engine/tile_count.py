"""How many tiles a run infers, known before any work: the tile starts along an axis, and a
warning that states the work when a header makes the image larger than any scan.

A 50 mm slice spacing in the 3 mm demo CT's header makes it 5.6 m long: at the liver model's
3 mm the run infers 624 tiles instead of 36 (102 s instead of 8 s here) and said so only at the
end (tester 12). :func:`long_run_warning` says it before the model is loaded. numpy only (the
CLI runs it before it imports torch).
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np

from .header_warnings import MAX_SCAN_LENGTH_MM, MAX_SCAN_WIDTH_MM
from .volume import Grid, canonical_grid


def tile_starts(size: int, tile: int, overlap: float = 0.25) -> list[int]:
    """Start indices of tiles of length ``tile`` covering ``size`` voxels along one axis.

    Neighbouring tiles overlap by at least ``overlap * tile``; the starts are spread evenly
    from 0 to ``size - tile`` so the last tile ends exactly at the border. Raises ValueError
    for ``tile < 1`` or an overlap outside [0, 1).
    """
    if tile < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < 1, got {tile}, {overlap}")
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1.0 - overlap)))
    count = math.ceil((size - tile) / step) + 1
    return [int(round(i * (size - tile) / (count - 1))) for i in range(count)]


def tile_count(shape_zyx: Sequence[int], tile_zyx: Sequence[int], overlap: float) -> int:
    """The number of tiles (``tiling.tile_boxes``) over a (z, y, x) grid of ``shape_zyx``."""
    return math.prod(len(tile_starts(int(n), int(t), overlap)) for n, t in zip(shape_zyx, tile_zyx))


def long_run_warning(grid: Grid, manifest) -> Optional[str]:
    """The work of a whole-image run on ``grid`` (the input's, mm) when its extent is larger
    than any scan's (``header_warnings``: more than 0.9 m across or 2.5 m long, so its spacing
    is probably wrong): the model grid's size and the tiles it takes at the model's spacing,
    tile size and overlap. None for an image of plausible size. Never raises."""
    field = np.abs(np.asarray(grid.direction, float)) @ (
        np.asarray(grid.size_xyz, float) * np.asarray(grid.spacing, float)
    )  # as header_warnings.implausible_geometry measures it
    if max(field[0], field[1]) <= MAX_SCAN_WIDTH_MM and field[2] <= MAX_SCAN_LENGTH_MM:
        return None
    model = canonical_grid(grid, manifest.spacing)
    tiles = tile_count(model.shape_zyx, manifest.tile_size_zyx, manifest.overlap)
    spacing = " x ".join(f"{v:.3g}" for v in manifest.spacing)
    size = " x ".join(str(n) for n in model.size_xyz)
    given = " x ".join(str(n) for n in grid.size_xyz)
    given_mm = " x ".join(f"{v:.3g}" for v in grid.spacing)
    return (
        f"With this header the model works on a {size} voxel model grid ({spacing} mm; the "
        f"input grid is {given} voxels of {given_mm} mm), {tiles} tiles of inference: the run "
        "will take correspondingly long. If the spacing is wrong, cancel, fix the header and "
        "run again."
    )

"""Infer a skull-stripped MR case only around its non-zero voxels (as nnU-Net crops every case).

Outside a skull-stripped brain every channel is exactly 0, and the MR normalisation keeps zeros
at 0 (``normalize.py``): the network would spend most of its tiles on an empty box. When a
model's channels are all ``"mr"`` and no ROI or point is given, the Predictor infers on the
bounding box of the voxels that are non-zero in any channel, grown by :data:`MARGIN_VOXELS`
model voxels and to at least one tile, and puts background outside it.

The crop is a part of the very grid the whole volume would be inferred on (the canonical grid
of ``volume.canonical_grid``), so every model voxel inside it gets exactly the interpolated
value it gets without the crop: the input is cut one input voxel wider than that part, and
model voxels outside the image get 0, the image's minimum (a volume with a negative voxel is not
cropped). The crop holds every model voxel that interpolation makes non-zero, so the MR z-score
statistics of the resampled crop (its non-zero voxels) are those of the whole resampled volume:
the normalised crop is the normalised whole volume's part (``Testing/test_nonzero_crop.py``).
What changes is only where the tiles lie (and what each tile's instance normalisation sees),
and that outside the crop is background.

Why no margin by default (:data:`MARGIN_VOXELS` = 0, as nnU-Net): the box already holds every
model voxel that interpolation can make non-zero (the non-zero input box grown by one input
voxel, rounded outwards), so the network sees all of the input, and its convolutions pad tiles
with 0, the value outside. Measured on the 4 held-out BraTS cases at L2
(``scripts/compare_nonzero_crop.py``): 34.8 k input voxels labelled otherwise than without the
crop (all cases together) with no margin, 41.0 k with 4 model voxels; 8 and 16 voxels moved
three cases further still. Some change is unavoidable: the tiles lie elsewhere and each tile's
instance normalisation sees other voxels; padding the input with 8 empty voxels changes the
uncropped run as much (docs/BENCHMARK_E2E.md, "End to end").
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from .label_extent import sub_grid
from .point_crop import content_slices
from .volume import Grid, Volume, canonical_grid

#: Model-grid voxels added on every side of the non-zero box (see the module docstring).
MARGIN_VOXELS = 0

Slices = tuple[slice, slice, slice]


@dataclass
class NonzeroCrop:
    """Where to infer: ``region`` (the input cut to ``slices``, (z, y, x) of the input grid)
    resampled onto ``grid`` (a part of the whole volume's canonical model grid), with 0 for
    model voxels outside the image."""

    region: Volume
    slices: Slices
    grid: Grid


def crop_enabled(manifest: Any, override: Optional[bool] = None) -> bool:
    """Whether a run without ROI or point is cropped to the non-zero box: ``override`` if
    given, else the manifest's ``inference.crop_nonzero`` (default true), and in any case only
    when every channel is normalised as ``"mr"`` (zeros stay zero)."""
    kinds = [str(c.normalization.get("kind", "")).lower() for c in manifest.channels]
    if not kinds or any(kind != "mr" for kind in kinds):
        return False
    if override is not None:
        return bool(override)
    return bool((getattr(manifest, "inference", None) or {}).get("crop_nonzero", True))


def nonzero_crop(
    volume: Volume,
    spacing_xyz: Sequence[float],
    tile_zyx: Sequence[int],
    margin: int = MARGIN_VOXELS,
) -> Optional[NonzeroCrop]:
    """The crop of ``volume`` (C, z, y, x) to infer on, or None when there is nothing to gain
    or it would not be exact: no non-zero voxel (the usual empty-input handling applies), a
    negative voxel (outside the image would not be 0) or a box that is the whole model grid.
    ``spacing_xyz``: the model's spacing (mm); ``tile_zyx``: its tile (voxels); ``margin``:
    model voxels added on every side (>= 0; ValueError otherwise)."""
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    array = volume.array
    if array.size == 0 or array.min() < 0:
        return None
    mask = array[0] != 0
    for c in range(1, array.shape[0]):
        mask |= array[c] != 0
    inside = content_slices(mask)
    del mask
    if inside is None:
        return None
    return crop_around(volume, inside, spacing_xyz, tile_zyx, margin)


def crop_around(
    volume: Volume,
    inside: Slices,
    spacing_xyz: Sequence[float],
    tile_zyx: Sequence[int],
    margin: int = MARGIN_VOXELS,
) -> Optional[NonzeroCrop]:
    """The crop of ``volume`` to the part of its canonical model grid (``spacing_xyz``, mm)
    that covers the input voxels ``inside`` ((z, y, x) slices) as linear interpolation reads
    them, grown by ``margin`` model voxels and to at least one tile (``tile_zyx``) where the
    grid allows; None when that is the whole model grid. Shared by the MR non-zero crop and the
    CT body crop (``body_crop.py``). The crop's voxels are a read-only view of ``volume``'s."""
    full = canonical_grid(volume, spacing_xyz)
    model_slices = _model_box(volume.grid, inside, full, tile_zyx, margin)
    return crop_to_model_slices(volume, full, model_slices)


def crop_to_model_slices(volume: Volume, full: Grid, model_slices: Slices) -> Optional[NonzeroCrop]:
    """The crop of ``volume`` to ``model_slices`` ((z, y, x)) of ``full``, its canonical model
    grid (``canonical_grid``), with the input voxels that linear interpolation reads there;
    None when the slices are the whole model grid. The crop's voxels are a read-only view of
    ``volume``'s."""
    if all(s.stop - s.start == n for s, n in zip(model_slices, full.shape_zyx)):
        return None
    grid = sub_grid(full, model_slices)
    slices = _input_box(volume.grid, grid)
    # a read-only view, not a copy: only the resampling reads it, and SimpleITK copies it into
    # its own image either way (the copy was 228 MB and 0.1-0.4 s on a 512x512x300 CT)
    part = volume.array[(slice(None),) + slices].view()
    part.flags.writeable = False
    region = Volume(
        part,
        volume.spacing,
        tuple(volume.grid.index_to_physical([s.start for s in reversed(slices)])),
        volume.direction.copy(),
        volume.channel_names,
    )
    return NonzeroCrop(region, slices, grid)


def _corners(start_xyz: np.ndarray, last_xyz: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of the index box from ``start_xyz`` to ``last_xyz``."""
    ends = np.stack([start_xyz, last_xyz])  # (2, 3)
    picks = itertools.product((0, 1), repeat=3)
    return np.array([[ends[p[axis], axis] for axis in range(3)] for p in picks], np.float64)


def _model_box(
    source: Grid, inside: Slices, full: Grid, tile_zyx: Sequence[int], margin: int
) -> Slices:
    """(z, y, x) slices of ``full`` covering the input voxels ``inside`` (grown by one input
    voxel, which linear interpolation reaches), plus ``margin``, at least a tile where the
    grid allows, within ``full``."""
    start = np.array([s.start for s in reversed(inside)], dtype=np.float64) - 1
    last = np.array([s.stop for s in reversed(inside)], dtype=np.float64)  # stop - 1, plus 1
    index = full.physical_to_index(source.index_to_physical(_corners(start, last)))
    return grid_slices(index.min(axis=0), index.max(axis=0), full, tile_zyx, margin)


def grid_slices(
    index_low: np.ndarray,
    index_high: np.ndarray,
    full: Grid,
    tile_zyx: Sequence[int],
    margin: int,
) -> Slices:
    """(z, y, x) slices of ``full`` holding the continuous (x, y, z) index box from
    ``index_low`` to ``index_high`` (every voxel it touches), plus ``margin`` voxels, grown
    about its centre to at least a tile (``tile_zyx``) where the grid allows, and slid back
    inside ``full``."""
    size = np.asarray(full.size_xyz)
    lo = np.floor(np.asarray(index_low) + 1e-6).astype(int) - margin
    hi = np.ceil(np.asarray(index_high) - 1e-6).astype(int) + margin + 1  # exclusive
    tile = np.minimum(np.asarray(tuple(tile_zyx)[::-1]), size)
    short = np.maximum(tile - (hi - lo), 0)
    lo, hi = lo - short // 2, hi + short - short // 2
    shift = np.maximum(-lo, 0) - np.maximum(hi - size, 0)  # slide back inside the grid
    lo, hi = np.maximum(lo + shift, 0), np.minimum(hi + shift, size)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))  # type: ignore[return-value]


def _input_box(source: Grid, grid: Grid) -> Slices:
    """(z, y, x) slices of the input voxels that linear interpolation at ``grid``'s voxels
    reads, one voxel wider on every side, within the input."""
    index = source.physical_to_index(grid.corner_points())
    size = np.asarray(source.size_xyz)
    lo = np.maximum(np.floor(index.min(axis=0)).astype(int) - 1, 0)
    hi = np.minimum(np.ceil(index.max(axis=0)).astype(int) + 2, size)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo[::-1], hi[::-1]))  # type: ignore[return-value]

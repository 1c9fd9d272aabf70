"""Where labels can be non-background after resampling: resample and argmax only there.

The predictor puts class probabilities (K, z, y, x) from the model grid back onto the input
grid with linear interpolation (nearest-neighbour extrapolation outside the model grid), then
takes the argmax. On a 512x512x300 CT the organ fills a small part of the input grid, and
resampling every class onto all of it cost ~4 s of a ~11 s run (docs/BENCHMARK_E2E.md, "End to
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

The argument holds for any set of boxes that covers those voxels, so :func:`candidate_boxes`
takes one box per connected group of them (the organ, and each small false positive far from
it that the largest-component step removes later) instead of one box around all: on the
512x512x300 CT that resamples 2.4 times fewer voxels (docs/BENCHMARK_E2E.md, "End to end").
"""

from __future__ import annotations

import itertools
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..errors import UNetPlusPlusError
from .volume import Box, Grid, _resampler, array_to_sitk, box_to_index_slices

_FAR = 1e6  # voxels: "to infinity" for a box side that reaches the model grid's edge
#: More groups than this (noise): one box around all of them (fewer resampler calls).
MAX_BOXES = 64

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
    return None if box is None else _reference_slices(box[0], box[1], grid, reference)


def candidate_boxes(probabilities: np.ndarray, grid: Grid, reference: Grid) -> list[Slices]:
    """(z, y, x) slices of ``reference`` outside all of which the resampled argmax is
    background: one box per 26-connected group of model voxels where background does not win
    (two overlapping boxes merged where that adds no voxel). ``probabilities`` (K, z, y, x) lie
    on ``grid``; empty when no voxel can be foreground. Boxes may still overlap: a voxel in two
    gets the same interpolated values from either, up to ITK's rounding of its continuous index
    (the same as between one box and the whole grid)."""
    mask = probabilities[0] < probabilities[1:].max(axis=0)
    if not mask.any():
        return []
    groups = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.view(np.uint8)), True)
    shapes = sitk.LabelShapeStatisticsImageFilter()
    shapes.Execute(groups)
    if shapes.GetNumberOfLabels() > MAX_BOXES:
        one = candidate_slices(probabilities, grid, reference)
        return [] if one is None else [one]
    boxes = []
    for label in shapes.GetLabels():
        x, y, z, sx, sy, sz = shapes.GetBoundingBox(label)
        lower = np.array([z, y, x])
        box = _reference_slices(lower, lower + [sz - 1, sy - 1, sx - 1], grid, reference)
        boxes += [] if box is None else [box]
    return _merge_overlapping(boxes)


def _merge_overlapping(boxes: list[Slices]) -> list[Slices]:
    """Replace two overlapping boxes by their bounding box where that adds no voxel to resample
    (a chain of merges would grow one box around distant groups again); other overlaps stay."""

    def size(box: Slices) -> int:
        return int(np.prod([s.stop - s.start for s in box]))

    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        for i, j in itertools.combinations(range(len(boxes)), 2):
            a, b = boxes[i], boxes[j]
            if not all(p.start < q.stop and q.start < p.stop for p, q in zip(a, b)):
                continue
            union = tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b))
            if size(union) <= size(a) + size(b):  # type: ignore[arg-type]
                boxes[i] = union  # type: ignore[assignment]
                del boxes[j]
                merged = True
                break
    return boxes


def _reference_slices(
    lower_zyx: np.ndarray, upper_zyx: np.ndarray, grid: Grid, reference: Grid
) -> Optional[Slices]:
    """Slices of ``reference`` holding every voxel whose interpolation stencil meets the
    model-grid box ``lower_zyx..upper_zyx`` (inclusive); None when the box misses it."""
    box = (np.asarray(lower_zyx), np.asarray(upper_zyx))
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


def argmax_on_reference(probabilities: np.ndarray, grid: Grid, reference: Grid) -> np.ndarray:
    """The argmax over classes of (K, z, y, x) ``probabilities`` on ``grid`` resampled
    linearly onto ``reference`` (nearest-neighbour extrapolation), ties to the lower class, as
    ``np.argmax`` of the whole resampled array: (z, y, x) uint8 (uint16 beyond 256 classes).

    Only :func:`candidate_boxes` are resampled, the classes one at a time against a running
    maximum, each class's image made once for all boxes."""
    dtype = np.uint8 if probabilities.shape[0] <= 256 else np.uint16
    labels = np.zeros(reference.shape_zyx, dtype=dtype)
    boxes = candidate_boxes(probabilities, grid, reference)
    if not boxes:
        return labels
    sources = [array_to_sitk(np.ascontiguousarray(p, np.float32), grid) for p in probabilities]
    for slices in boxes:
        resampler = _resampler(sub_grid(reference, slices), "linear", 0.0)
        resampler.SetOutputPixelType(sitk.sitkFloat32)
        resampler.SetUseNearestNeighborExtrapolator(True)
        best = sitk.GetArrayFromImage(resampler.Execute(sources[0]))
        inside = np.zeros(best.shape, dtype=dtype)
        for k in range(1, len(sources)):
            candidate = sitk.GetArrayViewFromImage(image := resampler.Execute(sources[k]))
            better = candidate > best  # ties keep the lower class, as np.argmax does
            inside[better] = k
            np.maximum(best, candidate, out=best)
            del candidate, image  # the view first, then its image
        labels[slices] = inside
    return labels

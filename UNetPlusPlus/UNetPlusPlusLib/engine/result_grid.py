"""The Predictor's result back on the input grid: the argmax on the region's grid, the region's
labels placed into the whole grid, and the class probabilities on the whole grid.

Pure numpy on ``volume.Grid`` geometry; no torch. A region outside ``slices`` is background.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .label_extent import argmax_on_reference
from .volume import Grid, Volume


def region_labels(
    probabilities: np.ndarray,
    grid: Grid,
    region: Grid,
    region_probs: Optional[np.ndarray],
    num_classes: int,
) -> np.ndarray:
    """Argmax over classes on the region's grid, (z, y, x) uint8 (uint16 above 256 classes).

    ``probabilities``: (K, z, y, x) on the model ``grid``. With ``region_probs`` (K, z, y, x)
    already on ``region``, their argmax. Without, only the boxes where a label can win are
    resampled (``label_extent.py``: exact), and the classes one at a time against a running
    maximum: a few bytes per input voxel instead of a (K, volume) float32 array and an int64
    argmax (docs/BENCHMARK_E2E.md, memory and end to end)."""
    dtype = np.uint8 if num_classes <= 256 else np.uint16
    if region_probs is not None:
        return np.argmax(region_probs, axis=0).astype(dtype)
    return argmax_on_reference(probabilities, grid, region).astype(dtype, copy=False)


def assemble_labels(grid: Grid, labels: np.ndarray, slices: Optional[tuple]) -> np.ndarray:
    """The region's (z, y, x) ``labels`` at ``slices`` of a background array shaped like
    ``grid``; the labels themselves when ``slices`` is None (the region is the whole grid)."""
    if slices is None:
        return labels
    whole = np.zeros(grid.shape_zyx, dtype=labels.dtype)
    whole[slices] = labels
    return whole


def full_probabilities(
    grid: Grid, region_probs: np.ndarray, slices: Optional[tuple], label_names: Sequence[str]
) -> Volume:
    """The (K, z, y, x) float32 class probabilities on ``grid``: ``region_probs`` at ``slices``,
    certain background (1, 0, ...) elsewhere. Channels: "background" then ``label_names``."""
    if slices is None:
        full = region_probs.astype(np.float32)
    else:
        full = np.zeros((region_probs.shape[0],) + grid.shape_zyx, dtype=np.float32)
        full[0] = 1.0
        full[(slice(None),) + tuple(slices)] = region_probs
    return Volume(
        array=full,
        spacing=tuple(grid.spacing),
        origin=tuple(grid.origin),
        direction=np.array(grid.direction, dtype=np.float64),
        channel_names=("background",) + tuple(label_names),
    )

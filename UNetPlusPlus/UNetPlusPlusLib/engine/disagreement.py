"""A review aid from the deep-supervision heads: where do the heads disagree?

UNet++ (Zhou et al., IEEE TMI 2019) has a segmentation head on each of X(0,1)..X(0,4); a
depth-k run computes heads 1..k anyway (the ensemble all four). Their disagreement costs no
extra network pass and points a reader at voxels worth checking.

- ``disagreement_map``: per voxel, the mean over head pairs of the total-variation distance
  between their class probabilities, ``0.5 * sum_k |p_a,k - p_b,k|``. 0 where the heads give
  the same probabilities, 1 where two confident heads pick different classes.
- ``segment_agreement``: per segment, the mean pairwise Dice between the heads' argmax masks
  of that segment (1.0 where the heads agree voxel for voxel, also when none of them finds it).

Both work on the model's grid (the predictor resamples the map onto the input grid).
"""

from __future__ import annotations

import itertools
from typing import Optional, Sequence

import numpy as np

from .manifest import LabelSpec
from .volume import Volume


def _check(heads: np.ndarray) -> None:
    if heads.ndim != 5 or heads.shape[0] < 2:
        raise ValueError(f"heads must be (H >= 2, K, z, y, x), got {heads.shape}")


def disagreement_map(heads: np.ndarray) -> np.ndarray:
    """Mean pairwise total-variation distance between heads, (z, y, x) float32 in [0, 1].

    ``heads``: (H, K, z, y, x) class probabilities of H >= 2 heads."""
    _check(heads)
    total = np.zeros(heads.shape[2:], dtype=np.float32)
    pairs = list(itertools.combinations(range(heads.shape[0]), 2))
    for a, b in pairs:
        total += 0.5 * np.abs(heads[a] - heads[b]).sum(axis=0, dtype=np.float32)
    total /= len(pairs)
    return np.clip(total, 0.0, 1.0, out=total)


def segment_agreement(heads: np.ndarray, labels: Sequence[LabelSpec]) -> dict[str, float]:
    """Mean pairwise Dice between the heads' argmax masks, per segment name, in [0, 1].

    ``heads``: (H, K, z, y, x) class probabilities, class index == label value."""
    _check(heads)
    votes = np.argmax(heads, axis=1)  # (H, z, y, x)
    pairs = list(itertools.combinations(range(heads.shape[0]), 2))
    agreement: dict[str, float] = {}
    for label in labels:
        masks = votes == label.value
        sizes = masks.reshape(masks.shape[0], -1).sum(axis=1)
        dices = []
        for a, b in pairs:
            denominator = int(sizes[a]) + int(sizes[b])
            overlap = int(np.logical_and(masks[a], masks[b]).sum())
            dices.append(1.0 if denominator == 0 else 2.0 * overlap / denominator)
        agreement[label.name] = round(float(np.mean(dices)), 4)
    return agreement


def outside_mask(shape: tuple, slices: Optional[tuple]) -> Optional[np.ndarray]:
    """Boolean mask of the voxels outside ``slices`` of a (z, y, x) ``shape``; None when there
    is nothing to mask (no slices)."""
    if slices is None:
        return None
    inside = np.zeros(shape, dtype=bool)
    inside[slices] = True
    return ~inside


def disagreement_volume(
    volume: Volume, region_map: np.ndarray, slices: Optional[tuple], outside_roi
) -> Volume:
    """The disagreement map (``region_map`` on ``slices`` of the volume's grid, or all of it)
    as a (1, z, y, x) Volume on the input grid: 0 outside the inferred region and the ROI."""
    full = np.zeros(volume.array.shape[1:], dtype=np.float32)
    full[tuple(slices) if slices is not None else Ellipsis] = region_map
    if outside_roi is not None:
        full[outside_roi] = 0.0
    return Volume(
        array=full[None],
        spacing=tuple(volume.spacing),
        origin=tuple(volume.origin),
        direction=np.array(volume.direction, dtype=np.float64),
        channel_names=("disagreement",),
    )

"""Random training patches with foreground oversampling.

A fraction of the patches (``foreground_fraction``) is centred near a labelled voxel of a
randomly chosen class present in the case, as nnU-Net does; the rest lie anywhere in the volume.
Small structures such as lung nodules would otherwise almost never be seen. Patches reaching
beyond the volume are filled with each channel's minimum (what the engine's sliding window pads
with) and background labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .preprocess import PreprocessedCase


@dataclass
class PatchRequest:
    """Where to cut a patch: case index and the (z, y, x) start of the tile."""

    case: int
    start: tuple[int, int, int]


class PatchSampler:
    """Chooses patch positions; ``crop`` cuts them with padding."""

    def __init__(
        self,
        cases: Sequence[PreprocessedCase],
        tile_zyx: Sequence[int],
        foreground_fraction: float = 0.33,
    ) -> None:
        if not cases:
            raise ValueError("no cases to sample from")
        self.cases = list(cases)
        self.tile = np.asarray(tile_zyx, dtype=int)
        self.foreground_fraction = float(foreground_fraction)

    def request(self, rng: np.random.Generator) -> PatchRequest:
        """A random patch position (foreground-centred with ``foreground_fraction``)."""
        index = int(rng.integers(len(self.cases)))
        case = self.cases[index]
        shape = np.asarray(case.shape_zyx)
        low = np.minimum(0, shape - self.tile)
        high = np.maximum(0, shape - self.tile)
        foreground = case.foreground
        if len(foreground) and rng.random() < self.foreground_fraction:
            classes = np.unique(foreground[:, 0])
            chosen = classes[rng.integers(len(classes))]
            rows = np.flatnonzero(foreground[:, 0] == chosen)
            point = foreground[rows[rng.integers(len(rows))], 1:]
            # the labelled voxel lands in the central half of the tile
            offset = rng.integers(self.tile // 4, self.tile - self.tile // 4 + 1)
            start = np.clip(point - offset, low, high)
        else:
            start = np.array([rng.integers(lo, hi + 1) for lo, hi in zip(low, high)])
        return PatchRequest(index, tuple(int(s) for s in start))  # type: ignore[arg-type]


def crop(
    case: PreprocessedCase, start_zyx: Sequence[int], size_zyx: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Image (C, *size) and labels (*size) from ``start``, padded beyond the volume."""
    start = np.asarray(start_zyx, dtype=int)
    size = np.asarray(size_zyx, dtype=int)
    shape = np.asarray(case.shape_zyx)
    lo = np.clip(start, 0, shape)
    hi = np.clip(start + size, 0, shape)
    channels = case.image.shape[0]
    image = np.empty((channels, *size), dtype=np.float32)
    image[:] = np.asarray(case.pad_values, dtype=np.float32).reshape(-1, 1, 1, 1)
    labels = np.zeros(tuple(size), dtype=np.uint8)
    if np.all(hi > lo):
        src = tuple(slice(a, b) for a, b in zip(lo, hi))
        dst = tuple(slice(a, b) for a, b in zip(lo - start, hi - start))
        image[(slice(None),) + dst] = case.image[(slice(None),) + src]
        labels[dst] = case.labels[src]
    return image, labels

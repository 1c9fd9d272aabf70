"""What a 3D UNet++ (``network.UNetPlusPlus3D``) accepts, without torch: its widths and its tile.

One source for the network's own checks and for ``unetpp train``'s argument checks, which run
before any case is read (``training/option_checks.py``): a width or tile the network would
refuse is refused when the command line is read, not after the dataset fingerprint.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

#: Levels 0..4 of the network: four 2x2x2 max-poolings (UNet++ L4).
LEVELS = 5
#: A tile edge is a multiple of this: every pooling halves it exactly.
TILE_MULTIPLE = 2 ** (LEVELS - 1)
#: The rule of the features, as the error messages give it.
FEATURES_RULE = (
    "six whole numbers f0 f1 f2 f3 f4 f_final (channels of levels 0..4 and of the last node), "
    "each at least 1 and f2..f4 at least 2 (their up-sampling halves them), e.g. 8 16 32 64 128 8"
)


def features_problem(features: Sequence[object]) -> Optional[str]:
    """Why ``features`` (f0..f4, f_final) cannot build the network, else None.

    Odd widths are accepted (the up-sampling into rows 1..3 keeps f_{i+1} // 2 channels, as
    MONAI's BasicUNetPlusPlus does)."""
    values = list(features)
    if len(values) != LEVELS + 1:
        return f"needs {FEATURES_RULE}; got {len(values)} value(s)"
    if any(isinstance(v, bool) or not isinstance(v, int) for v in values):
        return f"needs {FEATURES_RULE}; got {' '.join(map(str, values))}"
    low = [f"f{i}={v}" for i, v in enumerate(values[:LEVELS]) if v < 1]
    if values[LEVELS] < 1:
        low.append(f"f_final={values[LEVELS]}")
    low += [f"f{i}={values[i]}" for i in range(2, LEVELS) if values[i] == 1]
    if low:
        return f"needs {FEATURES_RULE}; got {' '.join(map(str, values))} ({', '.join(low)})"
    return None


def tile_problem(tile: Sequence[int], norm: str = "instance") -> Optional[str]:
    """Why a training tile ``tile`` (voxels, any axis order) cannot train a network with
    ``norm`` (instance, batch, none), else None: each edge a positive multiple of
    :data:`TILE_MULTIPLE`; with instance normalisation, at least 2 voxels at the deepest level
    (one voxel has no variance to normalise)."""
    edges = [int(t) for t in tile]
    shown = " ".join(map(str, edges))
    if any(t < 1 or t % TILE_MULTIPLE for t in edges):
        return (
            f"tile {shown} must be a positive multiple of {TILE_MULTIPLE} on every axis "
            f"({LEVELS - 1} 2x poolings)"
        )
    if norm == "instance" and math.prod(t // TILE_MULTIPLE for t in edges) < 2:
        return (
            f"tile {shown} leaves one voxel at the deepest level, where instance normalisation "
            f"cannot train; use {2 * TILE_MULTIPLE} on at least one axis"
        )
    return None

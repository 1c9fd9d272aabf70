"""Absurd voxels of an MR channel: values no MR signal can have, kept out of the z-score.

The MR normalisation (``normalize.py``) z-scores each channel by the mean and standard
deviation of its non-zero voxels. One voxel at 3e38 (a conversion error) makes that deviation
astronomically large, the whole image collapses to 0 and the brain-tumour model's oedema went
from 106 ml to 49 ml with only a warning. A voxel is *absurd* when it lies more than
:data:`RANGE_FACTOR` times the channel's 0.5-99.5 percentile range beyond that range: in the 76
shared BraTS 2018 / BRATS 2012 channels the largest voxel lies at most 2.28 ranges above the
99.5th percentile and the smallest 0.53 below the 0.5th (``scripts/mr_absurd_voxels.py
--margins``), so a clean channel has none and is normalised bit for bit as before. Absurd
voxels are left out of the mean and deviation and clipped to the largest (smallest) plausible
value of the channel; ``mr_outliers.channel_warning`` names how many and where. Up to half a
percent of the non-zero voxels can be set apart this way (beyond that the percentiles
themselves move); a larger cluster beyond an empty gap in the intensities is refused by
:mod:`.mr_cluster` (docs/INPUT_CHECKS_MR.md). numpy only.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

#: The percentiles whose range scales the bound, and how many ranges beyond them a voxel may be.
PERCENTILES = (0.5, 99.5)
RANGE_FACTOR = 10.0
#: The percentiles are taken from about this many of the non-zero voxels (strided).
SAMPLE_SIZE = 200_000


def plausible_range(values: np.ndarray) -> tuple[float, float]:
    """(low, high): the values an MR channel's non-zero voxels ``values`` (1-D) can hold, i.e.
    its 0.5-99.5 percentile range (of a strided sample of SAMPLE_SIZE) widened by RANGE_FACTOR
    times its width on each side. (-inf, inf) when the range is empty (fewer than two values or
    a near-constant channel)."""
    if values.size < 2:
        return -np.inf, np.inf
    step = max(1, values.size // SAMPLE_SIZE)
    low, high = (float(v) for v in np.percentile(values[::step], PERCENTILES))
    spread = high - low
    if not spread > 0:
        return -np.inf, np.inf
    return low - RANGE_FACTOR * spread, high + RANGE_FACTOR * spread


def robust_statistics(
    values: np.ndarray,
) -> tuple[float, float, Optional[tuple[float, float]]]:
    """(mean, std, clip) of an MR channel's non-zero voxels ``values`` (1-D float64): the mean
    and standard deviation of the plausible ones (:func:`plausible_range`), and the (smallest,
    largest) plausible value to clip to when some are absurd, else None (then the mean and
    deviation are those of every value, computed exactly as before)."""
    low, high = plausible_range(values)
    if not (np.isfinite(low) and np.isfinite(high)):  # no range: every value, as before
        return float(values.mean()), float(values.std()), None
    if values.size == 0 or (values.min() >= low and values.max() <= high):  # no mask to build
        return float(values.mean()), float(values.std()), None
    kept = values[(values >= low) & (values <= high)]
    if kept.size == 0:  # cannot happen with the percentiles inside the range; be safe
        return float(values.mean()), float(values.std()), None
    return float(kept.mean()), float(kept.std()), (float(kept.min()), float(kept.max()))


def plausible(values: np.ndarray) -> np.ndarray:
    """The boolean mask of the values (1-D, an MR channel's non-zero voxels) inside their
    :func:`plausible_range`, as :func:`robust_statistics` keeps them; all True without a
    range."""
    low, high = plausible_range(values)
    if not (np.isfinite(low) and np.isfinite(high)):
        return np.ones(values.shape, bool)
    return (values >= low) & (values <= high)


def absurd_voxels(
    array_zyx: np.ndarray,
    values: Optional[np.ndarray] = None,
    extremes: Optional[tuple[float, float]] = None,
) -> tuple[np.ndarray, tuple[float, float], float]:
    """The absurd voxels of one (z, y, x) MR channel: their (n, 3) (z, y, x) indices (in
    array order), the (smallest, largest) plausible non-zero value they are clipped to, and
    the most extreme absurd value; ((0, 3) indices, (0.0, 0.0), 0.0) when there are none.
    ``values``: the channel's non-zero voxels as float64 in row-major order, if the caller
    has them (``mr_outliers.nonzero_values``); ``extremes``: their (min, max) if known."""
    array = np.asarray(array_zyx)
    if values is None:
        values = array[array != 0].astype(np.float64)
    low, high = plausible_range(values)
    none = np.zeros((0, 3), dtype=np.int64), (0.0, 0.0), 0.0
    if not (np.isfinite(low) and np.isfinite(high)):  # no range (NaN in the sample too)
        return none
    if values.size == 0:
        return none
    smallest, largest = extremes if extremes is not None else (values.min(), values.max())
    if smallest >= low and largest <= high:
        return none
    outside = ~((values >= low) & (values <= high))  # as robust_statistics keeps them
    if outside.all() or not outside.any():
        return none
    wrong, kept = values[outside], values[~outside]
    magnitude = np.abs(wrong)
    magnitude[np.isnan(magnitude)] = -1.0  # a NaN is named only when nothing else is absurd
    extreme = float(wrong[np.argmax(magnitude)])
    flat = np.flatnonzero(array != 0)[outside]  # row-major, as array[mask] orders the values
    where = np.stack(np.unravel_index(flat, array.shape), axis=1)
    return where, (float(kept.min()), float(kept.max())), extreme

"""Extreme voxels that dominate an MR channel's z-score normalisation (a warning).

The MR normalisation (``normalize.py``) divides each channel by the standard deviation of its
non-zero voxels. A few extreme voxels (a hot pixel of a reconstruction or conversion error, a
spike of a bias correction) inflate that deviation, so the whole image is compressed towards 0
and the model sees another image: one FLAIR voxel set to 1e6 (the channel's maximum is 497)
turned the brain-tumour result of ``Brats18_2013_11_1`` from 20.7 / 88.9 / 7.8 ml (core /
oedema / enhancing) into 0.0 / 56.9 / 0.3 ml, without a word (tester 14).
:func:`outlier_warnings` compares the deviation with that of the voxels clipped to their
0.1-99.9 percentiles: at most 1.018 times it in the 76 shared BraTS channels, 13.6 times with
that voxel. numpy only.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: The non-zero voxels' standard deviation may be at most this many times that of the same
#: voxels clipped to CLIP_PERCENTILES (shared BraTS 2018 and 2012 channels: at most 1.018).
MAX_STD_RATIO = 1.25
CLIP_PERCENTILES = (0.1, 99.9)
#: The percentiles are taken from about this many of the non-zero voxels (strided).
SAMPLE_SIZE = 200_000


def std_ratio(array: np.ndarray) -> tuple[float, float, float, float]:
    """(ratio, low, high, extreme) of a channel's non-zero voxels: their standard deviation
    over that of the voxels clipped to the CLIP_PERCENTILES ``low``..``high`` (of a strided
    sample of SAMPLE_SIZE), and the value
    farthest outside that range. (1, 0, 0, 0) when fewer than two voxels are non-zero or the
    clipped voxels are constant."""
    values = np.asarray(array)[np.asarray(array) != 0].astype(np.float64)
    if values.size < 2:
        return 1.0, 0.0, 0.0, 0.0
    step = max(1, values.size // SAMPLE_SIZE)  # the percentiles of a strided sample
    low, high = np.percentile(values[::step], CLIP_PERCENTILES)
    clipped = float(np.clip(values, low, high).std())
    if clipped <= 0:
        return 1.0, float(low), float(high), 0.0
    smallest, largest = float(values.min()), float(values.max())
    extreme = largest if largest - high >= low - smallest else smallest
    return float(values.std()) / clipped, float(low), float(high), extreme


def outlier_warnings(manifest, arrays: Sequence[np.ndarray]) -> list[str]:
    """One warning per channel normalised as ``mr`` (with no fixed mean and std in the
    manifest) whose extreme voxels inflate its standard deviation more than MAX_STD_RATIO
    times. ``arrays``: the C (z, y, x) channels in the manifest's order. Never raises."""
    warnings = []
    for array, channel in zip(arrays, manifest.channels):
        spec = channel.normalization
        if str(spec.get("kind", "")).lower() != "mr" or ("mean" in spec and "std" in spec):
            continue
        warning = channel_warning(channel.name, array)
        warnings += [warning] if warning else []
    return warnings


def channel_warning(name: str, array: np.ndarray) -> Optional[str]:
    """The warning of one MR channel ``name`` (its (z, y, x) voxels) whose extreme voxels
    inflate its standard deviation more than MAX_STD_RATIO times, or None. Never raises."""
    ratio, low, high, extreme = std_ratio(array)
    if ratio <= MAX_STD_RATIO:
        return None
    return (
        f"Input '{name}' holds extreme voxels (up to {extreme:.4g}, while 99.8% of "
        f"its non-zero voxels lie between {low:.4g} and {high:.4g}): they make its standard "
        f"deviation {ratio:.1f} times larger, so the MR normalisation (z-score) compresses "
        "the whole image and the result is unreliable. They may be hot pixels or a "
        "conversion error: clip the image to its normal range (or replace those voxels) "
        "and run again."
    )

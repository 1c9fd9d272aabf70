"""Extreme voxels that dominate an MR channel's z-score normalisation (a warning).

The MR normalisation (``normalize.py``) divides each channel by the standard deviation of its
non-zero voxels. A few extreme voxels (a hot pixel of a reconstruction or conversion error, a
spike of a bias correction) inflate that deviation, so the whole image is compressed towards 0
and the model sees another image: one FLAIR voxel set to 1e6 (the channel's maximum is 497)
turned the brain-tumour result of ``Brats18_2013_11_1`` from 20.7 / 88.9 / 7.8 ml (core /
oedema / enhancing) into 0.0 / 56.9 / 0.3 ml, without a word (tester 14).
:func:`outlier_warnings` compares the deviation with that of the voxels clipped to their
0.1-99.9 percentiles: at most 1.018 times it in the 76 shared BraTS channels, 13.6 times with
that voxel. A hot cluster of more than 0.1 % of the voxels lies beyond those percentiles
itself and was not seen (tester 15: a 15^3-voxel block at 1e5, 0.22 % of that FLAIR, turned the
result into 11.5 / 47.8 / 2.0 ml with only the sequence-order check's doubt), so the deviation
is also compared with that of the voxels clipped to their 1-99 and 5-95 percentiles
(:data:`CLIP_LEVELS`; ``scripts/mr_outlier_margins.py``: at most 1.145 and 1.552 times it in the
76 shared channels, at least 16.6, 32.9 and 74.3 times it with a block of 0.05 %, 0.2 % and 0.9 %
of the voxels; a block of 3 %: 118 times at 5-95). Absurd voxels (far beyond the channel's
percentile range, :mod:`.mr_robust`: the 1e6 voxel, a 3e38 one, that block) are left out of the
normalisation's statistics and clipped, so they no longer change the result; the warning then
names how many there are and where, and the ratios are measured without them. A larger
cluster of absurd voxels (beyond an empty gap in the intensities, more than 0.4 % of the
voxels) is refused first (:mod:`.mr_cluster`). numpy only.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .mr_cluster import check_cluster
from .mr_robust import absurd_voxels, plausible
from .normalize import needs_volume_statistics

#: The non-zero voxels' standard deviation may be at most this many times that of the same
#: voxels clipped to CLIP_PERCENTILES (shared BraTS 2018 and 2012 channels: at most 1.018).
MAX_STD_RATIO = 1.25
CLIP_PERCENTILES = (0.1, 99.9)
#: Each clip level's percentiles and the largest ratio allowed there (shared BraTS channels:
#: at most 1.018, 1.145 and 1.552).
CLIP_LEVELS = (CLIP_PERCENTILES, (1.0, 99.0), (5.0, 95.0))
MAX_RATIOS = (MAX_STD_RATIO, 1.5, 2.5)
#: The percentiles are taken from about this many of the non-zero voxels (strided).
SAMPLE_SIZE = 200_000
#: An absurd-voxel warning lists the indices of at most this many voxels.
LISTED = 3


def std_ratio(
    array: np.ndarray, percentiles: tuple[float, float] = CLIP_PERCENTILES
) -> tuple[float, float, float, float]:
    """(ratio, low, high, extreme) of a channel's non-zero voxels: their standard deviation
    over that of the voxels clipped to the ``percentiles`` ``low``..``high`` (of a strided
    sample of SAMPLE_SIZE), and the value farthest outside that range. (1, 0, 0, 0) when
    fewer than two voxels are non-zero or the clipped voxels are constant."""
    return std_ratios(array, (percentiles,))[0]


def std_ratios(
    array: np.ndarray, levels: Sequence[tuple[float, float]] = CLIP_LEVELS
) -> list[tuple[float, float, float, float]]:
    """:func:`std_ratio` at each clip level of ``levels``, from one pass over the voxels."""
    return value_ratios(nonzero_values(array), levels)


def nonzero_values(array: np.ndarray) -> np.ndarray:
    """The non-zero voxels of a (z, y, x) channel (NaN included) as float64, in row-major
    order: what :func:`std_ratios` and :func:`.mr_robust.absurd_voxels` measure."""
    array = np.asarray(array)
    return array[array != 0].astype(np.float64)


def value_ratios(
    values: np.ndarray, levels: Sequence[tuple[float, float]] = CLIP_LEVELS
) -> list[tuple[float, float, float, float]]:
    """:func:`std_ratios` of a channel's non-zero voxels ``values`` (1-D float64,
    :func:`nonzero_values`). Each level's clipped deviation comes from the values beyond its
    bounds alone (:func:`clipped_std`), not from a clipped copy of every value."""
    if values.size < 2:
        return [(1.0, 0.0, 0.0, 0.0)] * len(levels)
    step = max(1, values.size // SAMPLE_SIZE)  # the percentiles of a strided sample
    bounds = np.percentile(values[::step], [p for level in levels for p in level])
    pairs = list(zip(bounds[0::2].tolist(), bounds[1::2].tolist()))
    mean = values.mean()
    squares = values - mean
    np.multiply(squares, squares, out=squares)
    total = float(squares.sum())  # n * variance, as numpy's std sums it
    del squares
    spread = float(np.sqrt(total / values.size))  # == values.std(), bit for bit
    # every level's clipped values lie beyond the innermost bounds: two passes find them all,
    # and the extremes among them (unless a side holds none, or a NaN is there)
    below = values[values < max(low for low, _ in pairs)]
    above = values[values > min(high for _, high in pairs)]
    smallest = float((below if below.size and total == total else values).min())
    largest = float((above if above.size and total == total else values).max())
    results = []
    for low, high in pairs:
        clipped = clipped_std(values, float(mean), total, low, high, below, above)
        if clipped <= 0:
            results.append((1.0, low, high, 0.0))
            continue
        extreme = largest if largest - high >= low - smallest else smallest
        results.append((spread / clipped, low, high, extreme))
    return results


#: A clipped variance below this share of the variance it is derived from is computed from a
#: clipped copy instead (the derivation would lose more than about 1e-9 of its precision).
_DERIVED_SHARE = 1e-6


def clipped_std(
    values: np.ndarray,
    mean: float,
    total: float,
    low: float,
    high: float,
    below: np.ndarray,
    above: np.ndarray,
) -> float:
    """The standard deviation of ``values`` (1-D float64; ``mean``, and ``total``: the sum of
    their squared deviations from it) clipped to ``low`` .. ``high``, from the values beyond
    those bounds alone: ``below`` (holding every value under ``low``) and ``above`` (every
    value over ``high``). Equal to ``np.clip(values, low, high).std()`` to within 1e-9
    relative (about 1e-15 unless clipping removes nearly all of the variance); a clipped
    variance under :data:`_DERIVED_SHARE` of the values' (or a constant or non-finite one) is
    computed from that clipped copy instead."""
    count = values.size
    under, over = below[below < low], above[above > high]
    moved = float(low * under.size - under.sum() + high * over.size - over.sum())
    square = total - float(np.square(under - mean).sum() + np.square(over - mean).sum())
    square += under.size * (low - mean) ** 2 + over.size * (high - mean) ** 2
    shift = moved / count  # the clipped mean minus ``mean``
    variance = square / count - shift * shift
    if not variance > _DERIVED_SHARE * max(total, square) / count:
        return float(np.clip(values, low, high).std())
    return float(np.sqrt(variance))


def check_clusters(manifest, arrays: Sequence[np.ndarray]) -> list[str]:
    """Refuse the first channel normalised as ``mr`` from the image's own statistics whose
    absurd voxels form a cluster too large to set apart (:func:`.mr_cluster.check_cluster`);
    return the warnings about smaller clusters the normalisation keeps. ``arrays``: the C
    (z, y, x) channels in the manifest's order. Raises UNetPlusPlusError."""
    warnings = []
    for array, channel in zip(arrays, manifest.channels):
        if needs_volume_statistics(channel.normalization):
            warning = check_cluster(channel.name, array)
            warnings += [warning] if warning else []
    return warnings


def outlier_warnings(
    manifest, arrays: Sequence[np.ndarray], clusters_checked: bool = False
) -> list[str]:
    """One warning per channel normalised as ``mr`` from the image's own statistics
    (``normalize.needs_volume_statistics``) whose extreme voxels inflate its standard
    deviation more than MAX_RATIOS allow (:func:`channel_warning`). ``arrays``: the C
    (z, y, x) channels in the manifest's order. Raises UNetPlusPlusError for a cluster of
    absurd voxels too large to set apart, unless ``clusters_checked`` (:func:`check_clusters`
    already ran)."""
    warnings = []
    for array, channel in zip(arrays, manifest.channels):
        if not needs_volume_statistics(channel.normalization):
            continue
        warning = channel_warning(channel.name, array, not clusters_checked)
        warnings += [warning] if warning else []
    return warnings


def channel_warning(name: str, array: np.ndarray, cluster_check: bool = True) -> Optional[str]:
    """The warning of one MR channel ``name`` (its (z, y, x) voxels), or None: a small
    cluster beyond an empty gap that the normalisation keeps (:func:`.mr_cluster.check_cluster`;
    not checked with ``cluster_check=False``), its absurd voxels
    (:func:`.mr_robust.absurd_voxels`: how many, where, what the normalisation did with them),
    and, measured without them, extreme voxels that inflate its standard deviation more than
    MAX_RATIOS allow at any of CLIP_LEVELS. Raises UNetPlusPlusError only when a cluster of
    absurd voxels is too large to set apart."""
    values = nonzero_values(array)  # one extraction serves the three measurements
    extremes = (values.min(), values.max()) if values.size else None  # and one min / max
    kept = check_cluster(name, array, values, extremes) if cluster_check else None
    where, clip, worst = absurd_voxels(array, values, extremes)
    said = [kept] if kept else []
    said += [absurd_warning(name, where, clip, worst)] if len(where) else []
    if len(where):  # the ratios of the voxels the normalisation uses (the others set to 0)
        values = values[plausible(values)]
    found = zip(CLIP_LEVELS, MAX_RATIOS, value_ratios(values))
    hit = next(((level, ratios) for level, most, ratios in found if ratios[0] > most), None)
    if hit is not None:
        (bottom, top), (ratio, low, high, extreme) = hit
        said.append(
            f"Input '{name}' holds extreme voxels (up to {extreme:.4g}, while {top - bottom:g}% "
            f"of its non-zero voxels lie between {low:.4g} and {high:.4g}): they make its "
            f"standard deviation {ratio:.1f} times larger, so the MR normalisation (z-score) "
            "compresses the whole image and the result is unreliable. They may be hot pixels or "
            "a conversion error: clip the image to its normal range (or replace those voxels) "
            "and run again."
        )
    return " ".join(said) or None


def absurd_warning(
    name: str, where_zyx: np.ndarray, clip: tuple[float, float], worst: float
) -> str:
    """The warning for channel ``name``'s absurd voxels at the (n, 3) (z, y, x) indices
    ``where_zyx`` (n >= 1), clipped to ``clip`` (low, high); ``worst``: the most extreme."""
    ijk = where_zyx[:, ::-1]  # (i, j, k) = (x, y, z): the voxel index 3D Slicer shows
    listed = ", ".join(f"({i}, {j}, {k})" for i, j, k in ijk[:LISTED].tolist())
    count = len(ijk)
    if count > LISTED:
        first, last = ijk.min(axis=0).tolist(), ijk.max(axis=0).tolist()
        span = ", ".join(f"{a} {lo}-{hi}" for a, lo, hi in zip("ijk", first, last))
        listed += f" and {count - LISTED} more, within {span}"
    one = count == 1
    what = "1 voxel with an impossible value" if one else f"{count} voxels with impossible values"
    it, they = ("it", "it does") if one else ("them", "they do")
    return (
        f"Input '{name}' holds {what} (up to {worst:.4g}, far outside its other voxels' "
        f"{clip[0]:.4g} to {clip[1]:.4g}) at voxel index (i, j, k) {listed}: the MR "
        f"normalisation (z-score) left {it} out of its mean and standard deviation and clipped "
        f"{it} into {clip[0]:.4g}..{clip[1]:.4g}, so {they} not distort the rest of the image, "
        "but the result there is not to be trusted. A hot pixel or a conversion error? Check "
        "the image."
    )

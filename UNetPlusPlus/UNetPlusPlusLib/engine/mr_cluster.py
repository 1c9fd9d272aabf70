"""A cluster of absurd voxels in an MR channel, too large to set apart: refused.

:mod:`.mr_robust` sets apart absurd voxels (far beyond the 0.5-99.5 percentile range) and the
z-score goes on without them; that works while they are fewer than about 0.5 % of the non-zero
voxels. A larger cluster moves the percentiles themselves: ``Brats18_2013_11_1``'s T2 with 20 %
of its non-zero voxels set to 1e9 got no warning at all and the brain-tumour model returned
0 / 34.0 / 0.8 ml core / oedema / enhancing instead of 19.3 / 106.1 / 24.5 ml (tester 19).

This check does not rest on percentiles alone. On the sorted, finite non-zero voxels of a
strided sample it looks for an *empty gap*: a gap between two consecutive values more than
:data:`GAP_FACTOR` times wider than the larger of the distance from the sample's median to the
gap's near side and the body's spread about the median (:func:`median_scale`). The values
beyond the innermost such gap above the median (below it) form a separated cluster. A cluster
of half the voxels or more holds the median itself; it is found by the widest gap between the
10th and 90th percentiles against both groups' spreads (:func:`central_gap`). No clean MR
channel has one (the 76 shared BraTS 2018 / BRATS 2012 channels and the shared liver MR:
largest ratio 0.88; docs/INPUT_CHECKS_MR.md, ``scripts/mr_cluster_margins.py``). A cluster of
more than :data:`MAX_SET_APART_SHARE` of the non-zero voxels (counted over the whole channel)
is refused with one error naming the channel, the shares and the values; a smaller one is left
to :mod:`.mr_robust` (clipped, with a warning), and its voxels that mr_robust keeps (within
10 ranges of the channel's percentiles: a handful at 1e4 in a T2 reaching 1600) are warned
about here (:func:`check_cluster`), naming the channel, the count and where. The sample is
completed by the channel's voxels beyond its extremes when they could lie beyond an empty gap
(:func:`cluster_values`), so a handful of such voxels is seen even when the stride misses
them. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import UNetPlusPlusError
from .mr_robust import plausible_range

#: A gap is empty when it is this many times wider than the median's distance to its near side.
GAP_FACTOR = 3.0
#: Clusters of up to this share of the non-zero voxels are set apart by mr_robust (clip + warn).
MAX_SET_APART_SHARE = 0.004
#: The gap is searched in a strided sample of about this many voxels (zeros included).
SAMPLE_SIZE = 200_000
#: Percentile levels (below the median; their mirrors above) giving the body's scale.
LEVELS = (0.25, 0.1)
#: Fewer finite non-zero sampled values than this: no check.
MIN_VALUES = 100
#: A warning about a small cluster lists the indices of at most this many voxels.
LISTED = 3


@dataclass(frozen=True)
class Cluster:
    """Voxels of a channel beyond an empty gap: ``count`` of ``nonzero`` non-zero voxels, from
    ``low`` to ``high``; ``ratio``: the gap over the median's distance to its near side;
    ``rest_low`` .. ``rest_high``: the other non-zero voxels' finite range; ``where``: the
    cluster's (n, 3) (z, y, x) indices (row-major order) when it is small enough to be set
    apart (at most MAX_SET_APART_SHARE), else None."""

    count: int
    nonzero: int
    low: float
    high: float
    ratio: float
    rest_low: float = 0.0
    rest_high: float = 0.0
    where: Optional[np.ndarray] = field(default=None, compare=False, repr=False)

    @property
    def share(self) -> float:
        """The cluster's share of the non-zero voxels (0..1)."""
        return self.count / max(1, self.nonzero)


def gap_ratios(values: np.ndarray) -> tuple[float, Optional[float], Optional[float]]:
    """(largest ratio, upper cut, lower cut) of sorted finite 1-D ``values``: each gap between
    consecutive values over the distance from the median to its near side (at least the
    median's scale, :func:`median_scale`), and the midpoints of the innermost gaps above
    (below) the median whose ratio exceeds GAP_FACTOR, or None. (0, None, None) below
    MIN_VALUES values."""
    if values.size < MIN_VALUES:
        return 0.0, None, None
    middle = values.size // 2
    median = float(values[middle])
    gaps = np.diff(values)
    positive = gaps[gaps > 0]
    if positive.size == 0:
        return 0.0, None, None
    floor = median_scale(values, median, float(positive.min()))
    up = gaps[middle:] / np.maximum(values[middle:-1] - median, floor)  # gap above values[i]
    down = gaps[:middle] / np.maximum(median - values[1 : middle + 1], floor)
    largest = float(max(up.max(initial=0.0), down.max(initial=0.0)))
    upper = lower = None
    above = np.flatnonzero(up > GAP_FACTOR)
    if above.size:
        i = middle + int(above[0])
        upper = 0.5 * (float(values[i]) + float(values[i + 1]))
    below = np.flatnonzero(down > GAP_FACTOR)
    if below.size:
        i = int(below[-1])
        lower = 0.5 * (float(values[i]) + float(values[i + 1]))
    central, i = central_gap(values, gaps, float(positive.min()))
    largest = max(largest, central)
    if upper is None and lower is None and central > GAP_FACTOR:  # a cluster of half or more
        cut = 0.5 * (float(values[i]) + float(values[i + 1]))
        upper, lower = (cut, None) if i + 1 >= values.size - i - 1 else (None, cut)
    return largest, upper, lower


def central_gap(values: np.ndarray, gaps: np.ndarray, finest: float) -> tuple[float, int]:
    """(ratio, i) of the widest gap between the 10th and 90th percentile of sorted ``values``
    relative to the two groups it splits (gap ``i``: between ``values[i]`` and ``[i + 1]``):
    the gap over the sum of each group's 10-90 percentile range (at least ``finest``). Catches
    a cluster of half the values or more, where the median lies in the cluster itself."""
    size = values.size
    index = np.arange(size // 10, (9 * size) // 10)
    below, above = index + 1, size - index - 1  # the two groups' sizes
    width_below = values[(0.9 * below).astype(int)] - values[(0.1 * below).astype(int)]
    first = index + 1
    width_above = (
        values[first + (0.9 * above).astype(int)] - values[first + (0.1 * above).astype(int)]
    )
    ratios = gaps[index] / np.maximum(width_below + width_above, finest)
    k = int(np.argmax(ratios))
    return float(ratios[k]), int(index[k])


def median_scale(values: np.ndarray, median: float, finest: float) -> float:
    """The body's spread about the ``median`` of sorted ``values``: the nearer of its 25th and
    75th percentiles (of a cluster of less than a quarter of the values at either end, or of
    less than half at one end, the nearer lies in the body), else of the 10th and 90th; a
    distance of 0 (ties at the median) gives way to the other side; else ``finest``."""
    size = values.size
    for q in LEVELS:
        sides = (
            median - values[int(q * size)],
            values[min(size - 1, int((1 - q) * size))] - median,
        )
        positive = [float(d) for d in sides if d > 0]
        if positive:
            return min(positive)
    return finest


def sorted_sample(array_zyx: np.ndarray) -> np.ndarray:
    """The sorted finite non-zero values (float64) of a strided sample of about SAMPLE_SIZE
    voxels of one channel (any voxel type; contiguous arrays are not copied)."""
    flat = np.asarray(array_zyx).reshape(-1)
    sample = flat[:: max(1, flat.size // SAMPLE_SIZE)].astype(np.float64)
    sample = sample[(sample != 0) & np.isfinite(sample)]
    return np.sort(sample)


def cluster_values(
    array_zyx: np.ndarray,
    values: Optional[np.ndarray] = None,
    extremes: Optional[tuple[float, float]] = None,
) -> np.ndarray:
    """:func:`sorted_sample` of one (z, y, x) channel, completed by the channel's non-zero
    voxels beyond the sample's extremes when they could lie beyond an empty gap (the gap from
    the sample's largest value to the channel's maximum exceeds GAP_FACTOR times that value's
    distance from the median; mirrored below). A
    handful of hot voxels then counts even where the stride misses them; a clean channel pays
    its minimum and maximum only, taken from ``values`` (its non-zero voxels, 1-D, as
    ``mr_outliers.nonzero_values`` gives them: far cheaper) when the caller has them, or
    ``extremes`` ((min, max) of those) when it has these too."""
    sample = sorted_sample(array_zyx)
    if sample.size < MIN_VALUES:
        return sample
    whole = np.asarray(array_zyx) if values is None else np.asarray(values)
    median = float(sample[sample.size // 2])
    top, bottom = float(sample[-1]), float(sample[0])
    low, high = extremes if extremes is not None else (whole.min(), whole.max())
    low, high = float(low), float(high)  # NaN: no comparison holds
    # a gap beyond ``top`` is at most high - top and its ratio's divisor at least top - median
    # (gap_ratios): a cheaper bound than the exact one, which gap_ratios applies afterwards
    above = whole[whole > top] if high - top > GAP_FACTOR * (top - median) else whole[:0]
    below = whole[:0]
    if bottom - low > GAP_FACTOR * (median - bottom):
        below = whole[(whole < bottom) & (whole != 0)]
    if above.size == 0 and below.size == 0:
        return sample
    above, below = (np.sort(v[np.isfinite(v)].astype(np.float64)) for v in (above, below))
    return np.concatenate([below, sample, above])  # sorted: they lie beyond the sample's ends


def separated_cluster(
    array_zyx: np.ndarray,
    values: Optional[np.ndarray] = None,
    extremes: Optional[tuple[float, float]] = None,
) -> Optional[Cluster]:
    """The voxels of one (z, y, x) MR channel beyond an empty gap (:func:`gap_ratios` on
    :func:`cluster_values`; ``values``, ``extremes``: its non-zero voxels and their (min, max)
    if the caller has them), counted
    over the whole channel (both ends together), or None."""
    largest, upper, lower = gap_ratios(cluster_values(array_zyx, values, extremes))
    if upper is None and lower is None:
        return None
    array = np.asarray(array_zyx)
    nonzero = int(np.count_nonzero(array))
    beyond = np.zeros(array.shape, bool)
    if upper is not None:
        beyond |= array > upper
    if lower is not None:
        beyond |= array < lower
    beyond &= array != 0
    values = array[beyond].astype(np.float64)
    if values.size == 0:
        return None
    rest = array[~beyond & (array != 0)].astype(np.float64)
    rest = rest[np.isfinite(rest)]
    low, high = (float(rest.min()), float(rest.max())) if rest.size else (0.0, 0.0)
    where = None
    if values.size <= MAX_SET_APART_SHARE * nonzero:
        where = np.argwhere(beyond)
    return Cluster(
        int(values.size), nonzero, float(values.min()), float(values.max()), largest, low,
        high, where,
    )  # fmt: skip


def check_cluster(
    name: str,
    array_zyx: np.ndarray,
    values: Optional[np.ndarray] = None,
    extremes: Optional[tuple[float, float]] = None,
) -> Optional[str]:
    """Refuse MR channel ``name`` ((z, y, x) voxels) when more than MAX_SET_APART_SHARE of its
    non-zero voxels lie beyond an empty gap (:func:`separated_cluster`): the z-score cannot set
    them apart and the result would be wrong. A smaller cluster passes: its voxels that
    :mod:`.mr_robust` sets apart are warned about there; the warning about the others (kept
    in the normalisation, values no MR signal of this channel has) is returned, else None.
    ``values``, ``extremes``: the channel's non-zero voxels (1-D) and their (min, max) if the
    caller has them (cheaper). Raises
    UNetPlusPlusError."""
    cluster = separated_cluster(array_zyx, values, extremes)
    if cluster is None:
        return None
    if cluster.share <= MAX_SET_APART_SHARE:
        return kept_cluster_warning(name, array_zyx, cluster, values)
    raise UNetPlusPlusError(
        f"Input '{name}' has {cluster.share:.2%} of its non-zero voxels ({cluster.count}) at "
        f"values from {cluster.low:.4g} to {cluster.high:.4g} and the other "
        f"{1 - cluster.share:.2%} from {cluster.rest_low:.4g} to {cluster.rest_high:.4g}, two "
        f"groups apart by an empty gap {cluster.ratio:.3g} times wider than their spread: no "
        "MR signal looks like that (a conversion error or a corrupted file?), and more than "
        f"{MAX_SET_APART_SHARE:.1%} of the voxels cannot be set apart from the normalisation, "
        "so the result would be wrong. Check the image; nothing was segmented."
    )


def kept_cluster_warning(
    name: str, array_zyx: np.ndarray, cluster: Cluster, nonzero: Optional[np.ndarray] = None
) -> Optional[str]:
    """The warning about the voxels of a small ``cluster`` of channel ``name`` that
    :mod:`.mr_robust` keeps (inside its plausible range, from ``nonzero``: the channel's
    non-zero voxels, or extracted here), naming how many and where (voxel index (i, j, k):
    the first :data:`LISTED` and the box of the rest); None if it keeps none (it sets them
    all apart, and warns itself)."""
    array = np.asarray(array_zyx)
    where = cluster.where if cluster.where is not None else np.zeros((0, 3), np.int64)
    values = array[tuple(where.T)].astype(np.float64)
    if nonzero is None:
        nonzero = array[array != 0].astype(np.float64)
    low, high = plausible_range(nonzero)
    kept = where[(values >= low) & (values <= high)][:, ::-1]  # (i, j, k), as Slicer shows
    if len(kept) == 0:
        return None
    shown = values[(values >= low) & (values <= high)]
    listed = ", ".join(f"({i}, {j}, {k})" for i, j, k in kept[:LISTED].tolist())
    if len(kept) > LISTED:
        first, last = kept.min(axis=0).tolist(), kept.max(axis=0).tolist()
        span = ", ".join(f"{a} {lo}-{hi}" for a, lo, hi in zip("ijk", first, last))
        listed += f" and {len(kept) - LISTED} more, within {span}"
    what = "1 voxel" if len(kept) == 1 else f"{len(kept)} voxels"
    return (
        f"Input '{name}' holds {what} at {shown.min():.4g} to {shown.max():.4g}, apart from its "
        f"other non-zero voxels ({cluster.rest_low:.4g} to {cluster.rest_high:.4g}) by an "
        f"empty gap {cluster.ratio:.3g} times wider than their spread, at voxel index "
        f"(i, j, k) {listed}: values this channel's MR signal does not have (hot pixels or a "
        "conversion error?). They were kept in the MR normalisation (z-score); the result at "
        "and around them is not to be trusted. Check the image."
    )

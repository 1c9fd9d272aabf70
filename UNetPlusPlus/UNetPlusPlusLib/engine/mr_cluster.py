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
to :mod:`.mr_robust` (clipped, with a warning). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import UNetPlusPlusError

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


@dataclass(frozen=True)
class Cluster:
    """Voxels of a channel beyond an empty gap: ``count`` of ``nonzero`` non-zero voxels, from
    ``low`` to ``high``; ``ratio``: the gap over the median's distance to its near side;
    ``rest_low`` .. ``rest_high``: the other non-zero voxels' finite range."""

    count: int
    nonzero: int
    low: float
    high: float
    ratio: float
    rest_low: float = 0.0
    rest_high: float = 0.0

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


def separated_cluster(array_zyx: np.ndarray) -> Optional[Cluster]:
    """The voxels of one (z, y, x) MR channel beyond an empty gap (:func:`gap_ratios` on
    :func:`sorted_sample`), counted over the whole channel (both ends together), or None."""
    largest, upper, lower = gap_ratios(sorted_sample(array_zyx))
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
    return Cluster(
        int(values.size), nonzero, float(values.min()), float(values.max()), largest, low, high
    )


def check_cluster(name: str, array_zyx: np.ndarray) -> None:
    """Refuse MR channel ``name`` ((z, y, x) voxels) when more than MAX_SET_APART_SHARE of its
    non-zero voxels lie beyond an empty gap (:func:`separated_cluster`): the z-score cannot set
    them apart and the result would be wrong. Raises UNetPlusPlusError; a smaller cluster or
    none passes (mr_robust clips and warns)."""
    cluster = separated_cluster(array_zyx)
    if cluster is None or cluster.share <= MAX_SET_APART_SHARE:
        return
    raise UNetPlusPlusError(
        f"Input '{name}' has {cluster.share:.2%} of its non-zero voxels ({cluster.count}) at "
        f"values from {cluster.low:.4g} to {cluster.high:.4g} and the other "
        f"{1 - cluster.share:.2%} from {cluster.rest_low:.4g} to {cluster.rest_high:.4g}, two "
        f"groups apart by an empty gap {cluster.ratio:.3g} times wider than their spread: no "
        "MR signal looks like that (a conversion error or a corrupted file?), and more than "
        f"{MAX_SET_APART_SHARE:.1%} of the voxels cannot be set apart from the normalisation, "
        "so the result would be wrong. Check the image; nothing was segmented."
    )

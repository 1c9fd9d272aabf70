"""The decision rule of the ``fastest`` executor's probe (engine/executors.py).

The probe runs tiles on ours and on the library executor in interleaved pairs (ours, library,
ours, library, ...), each timed. On a shared machine single timings move by 10-50 % (other
processes, caches, frequency), and the two executors can differ by only 5-10 % (liver model, L3,
quiet machine: OpenVINO 8 % faster). The rule therefore:

- compares the two **per pair** (library / ours of two neighbouring tiles, which met nearly the
  same load), and takes the median of the pairs' log ratios, not the best of each alone;
- decides early only when that median and the ratio of the two best times agree and the median
  is clear of its noise (``z`` standard errors, the spread from the pairs' own deviations);
- decides after ``min_pairs`` pairs only a difference beyond ``close`` (10 %), after
  ``close_pairs`` any clear one, and keeps sampling while it is ambiguous, up to ``max_pairs``;
- at the cap (a tie within the noise), takes the library only if neither the median nor the
  best times say it is slower: ours is the reference path, whose labels equal torch's.

Sampling longer costs little: probe tiles are real tiles of the volume, and the extra pairs are
taken only while the two are close, i.e. when running the slower one costs only that difference.
``bench/probe_accuracy.py`` measures the fraction of right decisions against this rule's
predecessor (best of 2-4 each).
"""

from __future__ import annotations

import math
import statistics
from typing import Optional, Sequence

MIN_PAIRS = 2  # timed pairs before a clear (beyond CLOSE) difference is decided
CLOSE = 1.1  # differences below this need CLOSE_PAIRS pairs at least
CLOSE_PAIRS = 4
MAX_PAIRS = 12  # the cap: then the median decides, ties to ours
Z = 2.0  # robust standard errors the median must clear for an early decision
SPREAD_FLOOR = 0.01  # the smallest noise assumed per pair (log ratio), 1 %


def probe_decision(
    ours: Sequence[float],
    library: Sequence[float],
    min_pairs: int = MIN_PAIRS,
    close_pairs: int = CLOSE_PAIRS,
    max_pairs: int = MAX_PAIRS,
    close: float = CLOSE,
    z: float = Z,
) -> Optional[str]:
    """``"ours"``, ``"library"``, or None (take another pair) from the timed probe tiles.

    ``ours[i]`` and ``library[i]`` (seconds, > 0) are the i-th pair, run one after the other;
    an incomplete last pair is ignored. Raises ValueError for a time that is not positive.
    """
    n = min(len(ours), len(library))
    if n < min_pairs:
        return None
    if min(min(ours[:n]), min(library[:n])) <= 0:
        raise ValueError("probe times must be positive seconds")
    logs = [math.log(b / a) for a, b in zip(ours[:n], library[:n])]
    median = statistics.median(logs)
    best = math.log(min(library[:n]) / min(ours[:n]))
    # the pairs' noise: mean absolute deviation from the median (a median of deviations is 0
    # for 3 pairs of which 2 agree), scaled to a standard deviation
    spread = max(1.2533 * statistics.fmean(abs(x - median) for x in logs), SPREAD_FLOOR)
    # the median of n pairs has a standard error of about 1.25 spread / sqrt(n)
    clear = abs(median) > z * 1.25 * spread / math.sqrt(n) and median * best > 0
    if clear and (abs(median) >= math.log(close) or n >= close_pairs):
        return "library" if median < 0 else "ours"
    if n >= max_pairs:
        return "library" if median <= 0 and best <= 0 else "ours"
    return None

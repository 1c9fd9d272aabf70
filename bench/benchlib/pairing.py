"""The default executor and OpenVINO timed side by side in the ``executors`` job (issue 14).

The last line's ``shipped_vs_openvino_*`` keys compare two executors on a shared machine. Timed
as separate rows (each a best of rounds, in a fixed order), a cell compared two moments of
different load, and the default ran right after an OpenVINO tile whose threads still competed
(+7 % on the next tile, BENCHMARK_MODELS.md). Here, in every round, the two run on the same tile
back to back, which one first alternating (ABBA), each right after one untimed tile of its own
(the settle: the other's threads stop competing and its own caches are warm); a cell's ratio is
the median over rounds of that round's OpenVINO / default seconds.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Collection, Optional, Sequence

from . import interleave

OPENVINO = "openvino"

#: a plan entry as the job builds it: (config name, depth, executor name, runner, tile)
Entry = tuple


def pairs(
    entries: Sequence[Entry], default: Optional[str], configs: Optional[Collection[str]] = None
) -> dict[tuple, tuple[int, int]]:
    """{(config name, depth): (index of the default's entry, index of OpenVINO's)} for every
    config (of ``configs``; None: all) and depth where the plan has both; empty when
    ``default`` is None or OpenVINO."""
    if default in (None, OPENVINO):
        return {}
    found: dict[tuple, dict[str, int]] = {}
    for index, (cname, depth, name, *_rest) in enumerate(entries):
        if name in (default, OPENVINO) and (configs is None or cname in configs):
            found.setdefault((cname, depth), {})[name] = index
    return {cell: (n[default], n[OPENVINO]) for cell, n in found.items() if len(n) == 2}


def schedule(
    entries: Sequence[Entry],
    default: Optional[str],
    round_index: int,
    configs: Optional[Collection[str]] = None,
) -> list[tuple[int, bool]]:
    """One round's order: (index into ``entries``, settle first) per timed tile.

    A pair (``pairs``) runs back to back where its first member stands in the plan; which of
    the two goes first alternates from pair to pair and from round to round (pair k of round r:
    the default first when r + k is even), so over two rounds every cell is timed AB then BA.
    Both members settle (one untimed tile just before the timed one). Every other entry runs
    once, timed, in the plan's order, without a settle tile. ``configs``: as in ``pairs``.
    """
    cells = pairs(entries, default, configs)
    member = {index: cell for cell, both in cells.items() for index in both}
    order: list[tuple[int, bool]] = []
    done: set = set()
    for index in range(len(entries)):
        cell = member.get(index)
        if cell is None:
            order.append((index, False))
        elif cell not in done:
            first, second = interleave.rotated(cells[cell], round_index + len(done))
            order += [(first, True), (second, True)]
            done.add(cell)
    return order


def run_round(
    entries: Sequence[Entry],
    default: Optional[str],
    round_index: int,
    clock: Callable[[], float] = time.perf_counter,
    configs: Optional[Collection[str]] = None,
) -> list[tuple[int, float]]:
    """Run one round of ``schedule``: [(index into ``entries``, seconds of its timed tile)] in
    the order run. Each entry's runner is called as ``runner.run(tile, depth)``."""
    timings = []
    for index, settle in schedule(entries, default, round_index, configs):
        _cname, depth, _name, runner, tile = entries[index]
        if settle:
            runner.run(tile, depth)
        started = clock()
        runner.run(tile, depth)
        timings.append((index, clock() - started))
    return timings


def round_ratios(
    entries: Sequence[Entry],
    default: Optional[str],
    timings: Sequence[tuple[int, float]],
    configs: Optional[Collection[str]] = None,
) -> dict[tuple, float]:
    """{(config name, depth): OpenVINO seconds / the default's} of one round's ``timings``."""
    seconds = dict(timings)
    return {
        cell: seconds[ov] / seconds[ours]
        for cell, (ours, ov) in pairs(entries, default, configs).items()
        if seconds.get(ours, 0.0) > 0 and ov in seconds
    }


def median_ratio(per_round: Sequence[float]) -> float:
    """The cell's figure: the median of its per-round paired ratios (ValueError when empty)."""
    if not per_round:
        raise ValueError("no paired rounds")
    return float(statistics.median(per_round))

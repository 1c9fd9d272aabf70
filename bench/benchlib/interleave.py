"""The interleaved loop shared by the A/B bench jobs (``tile_ab``, ``norm_ab``, ``toggles_ab``,
``wait_policy_ab``, ``harness``, ``pairing``).

On a shared machine the load drifts during a run; timing variant A for a while and then B
compares two moments. Interleaving runs every variant once per round (rounds outer), so a drift
hits all of them alike; rotating the order inside a group from round to round removes the bias
of always running first (or right after the same neighbour). A figure is then the median over
rounds, and a ratio the median of the per-round ratios.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable, Hashable, Iterator, Mapping, Sequence, TypeVar

T = TypeVar("T")


def rotated(members: Sequence[T], shift: int) -> list[T]:
    """``members`` rotated left by ``shift`` (modulo their count): member ``shift % n`` first.

    With two members an odd shift swaps them (AB, BA, AB, ...: ABBA over two rounds)."""
    if not members:
        return []
    k = shift % len(members)
    return list(members[k:]) + list(members[:k])


def order(
    rounds: int, groups: Sequence[Sequence[T]], rotate: bool = False
) -> Iterator[tuple[int, T]]:
    """(round index, member) in the interleaved order: rounds outer, then every group in turn,
    every member of a group once (rotated by the round index when ``rotate``, so each member of
    a group of n runs first in every n-th round)."""
    for round_index in range(rounds):
        for group in groups:
            members = rotated(group, round_index) if rotate else group
            yield from ((round_index, member) for member in members)


def collect(
    rounds: int,
    groups: Sequence[Sequence[T]],
    measure: Callable[[T], object],
    rotate: bool = False,
) -> dict[T, list]:
    """{member: [``measure(member)`` of each round]} run in :func:`order`'s order."""
    samples: dict[T, list] = {}
    for _round, member in order(rounds, groups, rotate):
        samples.setdefault(member, []).append(measure(member))
    return samples


def time_cells(
    rounds: int,
    cells: Mapping[str, tuple],
    modes: Sequence[str],
    reps: int,
    select: Callable[[str], object] = lambda mode: None,
) -> dict[str, dict[str, list[float]]]:
    """{key: {mode: [seconds per round]}}: each round, for each cell ``key`` -> ``(depth, tile,
    runners)``, every mode's executor ``runners[mode]`` runs ``tile`` at ``depth`` ``reps`` times
    after ``select(mode)`` (e.g. swapping in the old code); a round's value is the median."""

    def measure(cell: tuple) -> float:
        key, mode = cell
        depth, tile, runners = cells[key]
        select(mode)
        took = []
        for _ in range(reps):
            started = time.perf_counter()
            runners[mode].run(tile, depth)
            took.append(time.perf_counter() - started)
        return statistics.median(took)

    groups = [[(key, mode) for mode in modes] for key in cells]
    times: dict = {}
    for (key, mode), values in collect(rounds, groups, measure).items():
        times.setdefault(key, {})[mode] = values
    return times


def summarize(
    times: Mapping[Hashable, Mapping[str, Sequence[float]]],
    reference: str,
    scale: float = 1.0,
    digits: int = 5,
    ratio_digits: int = 3,
) -> dict:
    """Per key: each mode's median over rounds (x ``scale``, rounded to ``digits``) and, for every
    other mode, ``"{mode}/{reference}"``: the median of the per-round ratios (rounded to
    ``ratio_digits``). ``times[key][mode]``: one value per round, rounds aligned across modes."""
    result: dict = {}
    for key, by_mode in times.items():
        result[key] = {m: round(statistics.median(v) * scale, digits) for m, v in by_mode.items()}
        for mode, values in by_mode.items():
            if mode != reference and reference in by_mode:
                ratios = (a / b for a, b in zip(values, by_mode[reference]))
                result[key][f"{mode}/{reference}"] = round(statistics.median(ratios), ratio_digits)
    return result

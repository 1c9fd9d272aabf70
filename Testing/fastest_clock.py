"""A FastestExecutor on a deterministic clock, for the probe tests (test_executors.py,
test_fastest_memory.py): torch eager stands in for the library, and each executor advances the
clock by a known time a tile, so the probe's decisions do not flake on a loaded machine."""

from __future__ import annotations

from UNetPlusPlusLib.engine import executors

#: The tile of the probe tests (FastestExecutor with torch eager standing in for the library):
#: the probe's rule does not depend on the tile's size, and torch eager takes 10x less CPU on
#: 16^3 than on 32^3.
PROBE_TILE = (1, 1, 16, 16, 16)


class Clock:
    """A deterministic clock (seconds) for FastestExecutor: only the executors advance it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Costly(executors.Executor):
    """Runs ``inner`` and advances ``clock`` by ``seconds``: an executor of known speed."""

    def __init__(self, inner: executors.Executor, clock: Clock, seconds: float) -> None:
        super().__init__(inner.model, inner.threads)
        self.inner, self.clock, self.seconds = inner, clock, seconds

    def run(self, tile, depth):
        self.clock.now += self.seconds
        return self.inner.run(tile, depth)


def timed_fastest(predictor, ours_s: float, library_s: float):
    """A FastestExecutor whose two executors (torch eager standing in for the library) take
    ``ours_s`` / ``library_s`` seconds a tile on a deterministic clock."""
    clock = Clock()
    fastest = executors.FastestExecutor(
        predictor.model, threads=2, candidate="torch", busy=lambda: False, clock=clock
    )
    fastest.ours = Costly(fastest.ours, clock, ours_s)
    fastest._library = Costly(executors.TorchEagerExecutor(fastest.model, 2), clock, library_s)
    fastest.OURS_FIRST = 1  # one tile on ours alone, then the warm-up: short sequences below
    return fastest


def decided_into(memory, predictor, ours_s: float, library_s: float, tile) -> str:
    """Probe once on the deterministic clock with ``memory``: a first tile, a warm-up, 2 pairs,
    then the choice, which is returned (and remembered)."""
    first = timed_fastest(predictor, ours_s=ours_s, library_s=library_s)
    first.memory = memory
    for _ in range(7):
        first.run(tile, 2)
    assert first.decided(tuple(tile.shape), 2)
    return first.chosen

"""Results computed once per segmentation run, for checks that two stages of a run both need.

``cli_segment.run_segment`` runs inside :func:`measured_once`. Within it, :func:`once` returns
the value computed first for the same object and key; outside it every call computes. Used by
``click_check``: the CLI refuses a click in outside air before torch loads, then
``point_box.segment_point`` needs the same measurement for its warnings (the click's slice's
connected components again: 20-40 ms of a 0.2-0.5 s warm nodule click, about twice that under
load; issue 14). The memo holds the run's objects only until the block ends, so an object
changed between runs (``unetpp serve`` keeps the volume) is measured again in the next run.
Imports neither numpy nor torch.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Callable, Hashable, Iterator, TypeVar

T = TypeVar("T")
_RUN = threading.local()  # .memo: {(id(owner), key): (owner, value)} inside measured_once()


@contextlib.contextmanager
def measured_once() -> Iterator[None]:
    """A block (one run, on this thread) inside which :func:`once` computes each value once."""
    previous = getattr(_RUN, "memo", None)
    _RUN.memo = {}
    try:
        yield
    finally:
        _RUN.memo = previous


def once(owner: object, key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()`` for ``owner`` (an object, compared by identity) and ``key``: computed once
    inside :func:`measured_once`, every time outside it."""
    memo = getattr(_RUN, "memo", None)
    if memo is None:
        return compute()
    slot = (id(owner), key)
    if slot in memo and memo[slot][0] is owner:
        return memo[slot][1]
    value = compute()
    memo[slot] = (owner, value)  # the owner itself: its id is not reused while held
    return value

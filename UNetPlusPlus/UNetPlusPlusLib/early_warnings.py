"""Warnings said as soon as they are known, each once.

A run on a bad header (50 mm slices in the 3 mm demo CT's header: 624 tiles instead of 36) said
nothing for minutes and printed its header warnings only at the end (tester 12). The front ends
now hand ``unetpp segment`` a ``warn(message)`` with their progress callback: the text CLI prints
``warning: ...`` on stderr, ``--progress-json`` writes ``{"warning": "..."}``, ``unetpp serve``
replies ``{"id": N, "warning": "..."}``. Every warning known before inference (output replaced,
header, CT range, MR bias field, channel order, the work a huge grid needs) is said before the
first tile; those about the result (anatomy, volume, clicks) when the run ends; none twice (the
final result still lists them all).
"""

from __future__ import annotations

from typing import Callable


class EarlyWarnings:
    """``warn(message)``: says ``message`` through ``say`` the first time only; ``said`` lists
    what was said, in order."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.said: list[str] = []

    def __call__(self, message: str) -> None:
        if message in self.said:
            return
        self.said.append(message)
        self._say(message)


def warner(progress: object) -> Callable[[str], None]:
    """The ``warn`` of a progress callback (a front end's), or one that says nothing (a caller
    without early warnings: they reach it in the result only)."""
    warn = getattr(progress, "warn", None)
    return warn if callable(warn) else (lambda message: None)
